-- A client that vanished is noticed, and what it held is freed, in minutes rather than hours.
-- A host that is cut off or loses power sends no FIN or RST: PostgreSQL is never told, and the
-- kernel gives up on such a socket after two hours and more with default keepalives. Until
-- then its session keeps everything it held: an open transaction's row locks (every other
-- host's step on the same file blocks on them), a session advisory lock (the reconciler's
-- leadership: no pass runs anywhere), a LISTEN (the notification queue cannot be trimmed past
-- it) and a connection slot.
--
-- * TCP keepalives: an idle connection is probed after 60 s, then every 10 s; with
--   tcp_user_timeout set, Linux drops it once it has been silent for 2 minutes with a probe
--   out (the probe count only applies without it), and drops one whose sent data stays
--   unacknowledged for 2 minutes (a notification or an answer sent to the vanished host). A
--   live client's kernel answers the probes whatever the process does, so a long-idle LISTEN
--   connection is safe.
-- * idle_in_transaction_session_timeout: behind a pooler, PostgreSQL's peer is the pooler,
--   alive and answering, so a transaction its vanished client left open is ended after
--   5 minutes of silence instead. A transaction of ours waits on nothing but its own
--   statements (objects are stored before the transaction that names them begins, answers
--   are streamed after it ends), with one exception: `inflight::clean` deletes an unnamed
--   object while it holds the key's pending row, so that a writer naming the key again waits
--   for the delete: at most two store calls, each bounded by TIMELINE_S3_STALL_SECS (60 s by
--   default) plus retries within 15 s. 5 minutes is well past them.
--
-- Set on the database, so they apply to every new session whatever the login role and
-- whichever way it connects (a pooler drops a session-level SET). A migrating role that may
-- not alter the database leaves them to the operator (docs/SCALING.md), with a warning.
DO $$
DECLARE
    setting text[];
BEGIN
    FOREACH setting SLICE 1 IN ARRAY ARRAY[
        ['tcp_keepalives_idle', '60'],
        ['tcp_keepalives_interval', '10'],
        ['tcp_keepalives_count', '6'],
        ['tcp_user_timeout', '2min'],
        ['idle_in_transaction_session_timeout', '5min']]
    LOOP
        EXECUTE format('ALTER DATABASE %I SET %s = %L',
                       current_database(), setting[1], setting[2]);
    END LOOP;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'settings for vanished clients not made on database %: %',
        current_database(), SQLERRM;
END
$$;
