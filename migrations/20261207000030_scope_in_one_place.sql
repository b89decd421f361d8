-- The scope of a request's transaction to its user, in one place. Three copies of the same
-- five set_config calls (db::users::scope_to_user, authenticate_as_owner and poll_job) meant
-- that a new request field, or a change of role, had to be made three times, and a copy left
-- behind would scope one path differently from the others.
--
-- scope_to_user: for the rest of the caller's transaction, role timeline_api (whose row-level
-- policies show only the rows of app.user_id) and the request's audit fields, read by the
-- audit trigger. Local to the transaction (set_config's third argument), so a pooled server
-- connection goes back unscoped. PL/pgSQL, never inlined: the switch of role happens when it
-- is called, and only then.
CREATE FUNCTION scope_to_user(
    _user uuid, _request_id text, _user_agent text, _client_ip text)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('role', 'timeline_api', true),
            set_config('app.user_id', _user::text, true),
            set_config('app.request_id', _request_id, true),
            set_config('app.user_agent', _user_agent, true),
            set_config('app.client_ip', _client_ip, true);
    RETURN _user::text;
END $$;

-- As 20261207000027, with the scope taken from scope_to_user. CASE evaluates only the branch
-- it takes, so a stale token's transaction is still left unscoped.
CREATE OR REPLACE FUNCTION authenticate_as_owner(
    _token_hash bytea, _record_every_secs double precision,
    _request_id text, _user_agent text, _client_ip text)
RETURNS TABLE (id uuid, user_id uuid, stale boolean, scoped text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT o.id, o.user_id, o.stale,
           CASE WHEN o.stale THEN NULL
                ELSE scope_to_user(o.user_id, _request_id, _user_agent, _client_ip)
           END
    FROM (SELECT t.id, t.user_id,
                 (t.last_used_at IS NULL
                  OR t.last_used_at < now() - make_interval(secs => _record_every_secs)) AS stale
          FROM api_tokens t JOIN users u ON u.id = t.user_id
          WHERE t.token_hash = _token_hash AND t.revoked_at IS NULL
            AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.is_active) o;
END $$;

-- As 20261207000028, with the scope taken from scope_to_user.
CREATE OR REPLACE FUNCTION poll_job(
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
        PERFORM scope_to_user(_owner.user_id, _request_id, _user_agent, _client_ip);
    END IF;
    -- As timeline_api from here: row-level security scopes the read to app.user_id.
    SELECT to_jsonb(j) INTO _found FROM job_with_errors(_job, _owner.user_id, _errors) j;
    RETURN jsonb_build_object('user_id', _owner.user_id, 'stale', false, 'job', _found);
END $$;
