-- A transaction left idle by a client that vanished ends after 5 minutes, and with it its
-- locks. A host that is cut off or loses power mid-transaction sends no FIN or RST: until
-- then PostgreSQL (or, behind a pooler, PgBouncer's server connection, whose peer is alive)
-- waits on the open transaction for as long as the kernel takes to give up on the socket, two
-- hours and more with default keepalives, and every other host's step on the same file blocks
-- on its row locks.
--
-- Why 5 minutes: a transaction of ours waits on nothing but its own statements (objects are
-- stored before the transaction that names them begins, answers are streamed after it ends),
-- with one exception: `inflight::clean` deletes an unnamed object while it holds the key's
-- pending row, so that a writer naming the key again waits for the delete. That is at most two
-- store calls, each bounded by TIMELINE_S3_STALL_SECS (60 s by default) plus retries within
-- 15 s. 5 minutes is well past them, and far short of hours.
--
-- Set on the database, so it applies to every new session whatever the login role and
-- whichever way it connects (a pooler drops a session-level SET). A migrating role that may
-- not alter the database leaves it to the operator (docs/SCALING.md), with a warning.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L',
                   current_database(), '5min');
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'idle_in_transaction_session_timeout not set on database %: %',
        current_database(), SQLERRM;
END
$$;
