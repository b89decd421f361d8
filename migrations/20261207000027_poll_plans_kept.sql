-- The two statements of a job poll, as PL/pgSQL functions. A server connection keeps the plans
-- of a PL/pgSQL function's statements from one call to the next, across transactions, where
-- an SQL statement sent through a transaction-mode pooler is parsed, analysed and planned
-- again at every poll (there it cannot stay prepared: the next transaction may run on another
-- server connection). Planning alone was half of PostgreSQL's time per pooled poll
-- (docs/SCALING.md). The pooler's reset must then spare plans (`DISCARD ALL` drops them; see
-- scripts/pgbouncer.sh). Straight to PostgreSQL, sqlx keeps the call itself prepared.
-- `#variable_conflict use_column`: the output columns share the tables' column names.

-- A request's first statement (see db::users::authenticate_as_owner): the owner of a valid
-- token hash and, unless its use is due to be recorded, the transaction scoped to that user.
-- CASE evaluates only the branch it takes and set_config is volatile (never folded), so a
-- stale token's transaction is left unscoped. Runs as the connecting role: the switch to
-- timeline_api is local to the caller's transaction.
CREATE FUNCTION authenticate_as_owner(
    _token_hash bytea, _record_every_secs double precision,
    _request_id text, _user_agent text, _client_ip text)
RETURNS TABLE (id uuid, user_id uuid, stale boolean, scoped text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT o.id, o.user_id, o.stale,
           CASE WHEN o.stale THEN NULL
                ELSE concat(set_config('role', 'timeline_api', true),
                            set_config('app.user_id', o.user_id::text, true),
                            set_config('app.request_id', _request_id, true),
                            set_config('app.user_agent', _user_agent, true),
                            set_config('app.client_ip', _client_ip, true))
           END
    FROM (SELECT t.id, t.user_id,
                 (t.last_used_at IS NULL
                  OR t.last_used_at < now() - make_interval(secs => _record_every_secs)) AS stale
          FROM api_tokens t JOIN users u ON u.id = t.user_id
          WHERE t.token_hash = _token_hash AND t.revoked_at IS NULL
            AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.is_active) o;
END $$;

-- A job and the first `_errors` of its failed files, in job order (see
-- db::jobs::get_with_errors). Runs as the caller: as timeline_api, row-level security scopes
-- both tables to app.user_id, read when the statement runs, so one cached plan serves every
-- user.
CREATE FUNCTION job_with_errors(_job uuid, _user uuid, _errors bigint)
RETURNS TABLE (id uuid, user_id uuid, job_type text, status text, progress smallint,
               input_data jsonb, output_data jsonb, error_message text,
               started_at timestamptz, completed_at timestamptz,
               created_at timestamptz, updated_at timestamptz,
               error_media_ids uuid[], error_filenames text[], error_messages text[])
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT j.id, j.user_id, j.job_type, j.status, j.progress, j.input_data, j.output_data,
           j.error_message, j.started_at, j.completed_at, j.created_at, j.updated_at,
           e.media_ids, e.filenames, e.messages
    FROM data_processing_jobs j
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(f.id ORDER BY f.position), '{}') AS media_ids,
               coalesce(array_agg(f.filename ORDER BY f.position), '{}') AS filenames,
               coalesce(array_agg(f.error_message ORDER BY f.position), '{}') AS messages
        FROM (SELECT m.id, m.filename, m.error_message, jm.position
              FROM data_processing_job_media jm
              JOIN media_files m ON m.id = jm.media_file_id
              WHERE jm.job_id = j.id AND jm.counted_status = 'failed'
              ORDER BY jm.position LIMIT _errors) f) e
    WHERE j.id = _job AND j.user_id = _user;
END $$;
-- Explicitly, as app_current_user_id() is granted: a database whose functions are not
-- executable by PUBLIC by default must still serve polls.
GRANT EXECUTE ON FUNCTION job_with_errors(uuid, uuid, bigint) TO timeline_api;
