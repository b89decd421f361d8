-- A job poll as one statement (see db::poll): the token check, the token's use recorded
-- when due, the scope to its user and the read of the job with its first failures. Sent as a
-- simple query outside any explicit transaction, it is one round trip and one implicit
-- transaction, where `BEGIN`, the two calls of 20261207000027 (two exchanges each through
-- sqlx, which parses before it binds) and `COMMIT` were six round trips, each forwarded by a
-- transaction pooler. The statements inside keep their plans per server connection, as
-- the functions they call do.
--
-- Answers NULL for a token that is unknown, revoked, expired or of an inactive user; else
-- {"user_id", "stale", "job"}: `stale` (only when `_record` is false, on a read replica) means
-- the token's use is due to be recorded, which only the primary can do, and nothing was read;
-- `job` is the row of job_with_errors, or null for a job this user cannot see.
CREATE FUNCTION poll_job(
    _token_hash bytea, _record_every_secs double precision, _record boolean,
    _request_id text, _user_agent text, _client_ip text,
    _job uuid, _errors bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    _owner record;
    _found jsonb;
BEGIN
    SELECT o.id, o.user_id, o.stale INTO _owner
    FROM authenticate_as_owner(_token_hash, _record_every_secs,
                               _request_id, _user_agent, _client_ip) o;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF _owner.stale THEN
        IF NOT _record THEN
            RETURN jsonb_build_object('user_id', _owner.user_id, 'stale', true, 'job', NULL);
        END IF;
        -- As db::users::record_token_use, before the scope (as the connecting role). A
        -- failure to record a use must neither refuse the poll nor abort it: the block's
        -- subtransaction is rolled back alone.
        BEGIN
            UPDATE api_tokens SET last_used_at = now()
            WHERE id = _owner.id
              AND (last_used_at IS NULL
                   OR last_used_at < now() - make_interval(secs => _record_every_secs));
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'could not record a token''s use: %', SQLERRM;
        END;
        PERFORM set_config('role', 'timeline_api', true),
                set_config('app.user_id', _owner.user_id::text, true),
                set_config('app.request_id', _request_id, true),
                set_config('app.user_agent', _user_agent, true),
                set_config('app.client_ip', _client_ip, true);
    END IF;
    -- As timeline_api from here: row-level security scopes the read to app.user_id.
    SELECT to_jsonb(j) INTO _found FROM job_with_errors(_job, _owner.user_id, _errors) j;
    RETURN jsonb_build_object('user_id', _owner.user_id, 'stale', false, 'job', _found);
END $$;
