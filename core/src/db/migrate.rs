//! Applies the schema: ours (`migrations/`, bookkeeping in `public._sqlx_migrations`) and the
//! queue's (apalis-postgres, bookkeeping in `apalis._sqlx_migrations`). The two migrators keep
//! separate tables, so neither sees the other's versions as "missing" (see docs/MIGRATIONS.md).

use sqlx::migrate::{MigrateDatabase, MigrateError, Migrator};
use sqlx::{PgPool, Postgres};

/// Our migrations, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Errors while preparing the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not create the database: {0}")]
    Create(#[source] sqlx::Error),
    #[error("timeline migrations failed: {0}")]
    Ours(#[source] MigrateError),
    #[error("queue (apalis) migrations failed: {0}")]
    Queue(#[source] MigrateError),
    #[error("granting queue access failed: {0}")]
    Grants(#[source] sqlx::Error),
    #[error("installing timeline's additions to the queue schema failed: {0}")]
    QueueAdditions(#[source] sqlx::Error),
    #[error("making the database's settings failed: {0}")]
    Settings(#[source] sqlx::Error),
}

/// Creates the database named in `url` if it does not exist yet (fresh machines).
pub async fn create_database_if_missing(url: &str) -> Result<bool, Error> {
    if Postgres::database_exists(url)
        .await
        .map_err(Error::Create)?
    {
        return Ok(false);
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(true),
        // Someone else created it meanwhile.
        Err(e) if Postgres::database_exists(url).await.unwrap_or(false) => {
            tracing::debug!(error = %e, "database appeared concurrently");
            Ok(false)
        }
        Err(e) => Err(Error::Create(e)),
    }
}

/// Applies every pending migration, ours and the queue's. Idempotent: a second run is a no-op.
#[tracing::instrument(skip_all)]
pub async fn run(pool: &PgPool) -> Result<(), Error> {
    MIGRATOR.run(pool).await.map_err(Error::Ours)?;
    apalis_postgres::PostgresStorage::<()>::migrations()
        .run(pool)
        .await
        .map_err(Error::Queue)?;
    grant_queue_access(pool).await.map_err(Error::Grants)?;
    queue_functions(pool).await.map_err(Error::QueueAdditions)?;
    build_queue_indexes(pool)
        .await
        .map_err(Error::QueueAdditions)?;
    lane_fetch(pool).await.map_err(Error::QueueAdditions)?;
    vanished_client_settings(pool)
        .await
        .map_err(Error::Settings)?;
    Ok(())
}

/// The database settings that free what a vanished client held
/// (`migrations/20261207000029_vanished_clients.sql` says why each), as that migration made
/// them. Kept in step with it by `migrations::a_restored_database_gets_its_settings_back`.
const VANISHED_CLIENT_SETTINGS: &[(&str, &str)] = &[
    ("tcp_keepalives_idle", "60"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "6"),
    ("tcp_user_timeout", "2min"),
    ("idle_in_transaction_session_timeout", "5min"),
];

/// Makes again whichever of [`VANISHED_CLIENT_SETTINGS`] the database has no value for. A
/// restore by `pg_dump` or a copy from a template keeps the migrations' bookkeeping but not
/// the database's settings, so the migration, recorded as applied, would never run again and
/// a vanished host would hold its locks for hours once more. A value the operator set is
/// kept, whatever it is (to turn one off, set it to 0, the system's default, rather than
/// `RESET` it, which this would undo). A migrating role that may not alter the database
/// leaves them to the operator with a warning, as the migration does.
async fn vanished_client_settings(pool: &PgPool) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = VANISHED_CLIENT_SETTINGS.iter().map(|(n, _)| *n).collect();
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM unnest($1::text[]) name
         WHERE NOT EXISTS (
             SELECT 1 FROM pg_db_role_setting s, unnest(s.setconfig) c
             WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND s.setrole = 0 AND split_part(c, '=', 1) = name)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    for (name, value) in VANISHED_CLIENT_SETTINGS {
        if !missing.iter().any(|m| m == name) {
            continue;
        }
        // Safe: the name and the value are our constants, none comes from outside.
        let sql = format!(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET {name} = %L', \
             current_database(), '{value}'); END $$"
        );
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await {
            Ok(_) => tracing::info!(setting = name, value, "database setting made again"),
            Err(e) if is_insufficient_privilege(&e) => {
                tracing::warn!(
                    setting = name,
                    "may not alter the database: set it as docs/SCALING.md says"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `e` is PostgreSQL's `insufficient_privilege` (42501).
fn is_insufficient_privilege(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "42501")
}

/// Express pools (see `jobs::Lane`): apalis-postgres fetches through the SQL function
/// `apalis.get_jobs(worker, queue, n)`, the one place a pool's fetch can be told apart.
/// This is apalis-postgres 1.0.0's own definition (migration 20260902075949) with these
/// changes:
/// - a fetched task is marked `Running`, not `Queued` (the fetch is the lock; see
///   `timeline_workers::pools::config`);
/// - a queue name ending in `:interactive` fetches from the queue before the suffix, only
///   tasks at `INTERACTIVE_PRIORITY` or above;
/// - a fetch costs the same at any queue depth and any history (`scripts/bench-fetch.sh`, one
///   fetch with 3,000 and 100,000 tasks queued: 1.60 and 36.9 ms before, 0.45 and 0.92 ms
///   after; docs/SCALING.md). The update finds its rows by id (`= ANY(ARRAY(..))`): joined to the
///   CTEs, whose row count the planner cannot know, it hashed the whole of `apalis.jobs`,
///   finished tasks included, on every fetch of a deep queue. The aged tasks are read in
///   `run_at` order through `timeline_apalis_jobs_due` (see `QUEUE_INDEXES`), not sorted from
///   every bulk task. And it is PL/pgSQL, whose plans a session keeps, where a SQL function's
///   body is planned again at every call (PostgreSQL before 18); sequential scans are off
///   inside it, so that a plan kept from a new, empty table reads by index too.
///
/// Every other name fetches the same tasks in the same order as before. Since this
/// runs after apalis's migrations, an apalis upgrade that redefines the function is
/// overridden by this copy: compare the two when upgrading (docs/MIGRATIONS.md);
/// `queue::express_pools_fetch_only_interactive_tasks` pins the contract.
///
/// Each interactive task also announces its queue on `jobs::INTERACTIVE_CHANNEL` (apalis's
/// own insert notification cannot tell the lanes apart, and would wake the express pools for
/// every one of an import's tasks); a retry due later is left to the pools' polling. The due
/// test uses the clock, not `now()`: apalis stores `run_at` in whole seconds of the client's
/// clock, which can be past the start of a transaction that began in the second before.
/// Re-applied by every `timeline migrate` (idempotent).
async fn lane_fetch(pool: &PgPool) -> Result<(), sqlx::Error> {
    use crate::jobs::{
        DEFAULT_AGEING_SECS, EXPRESS_SUFFIX, INTERACTIVE_CHANNEL, INTERACTIVE_PRIORITY,
    };
    // Safe: every interpolated value is one of our constants, none comes from outside.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT pg_advisory_xact_lock(hashtext('timeline_queue_ddl'));
         CREATE OR REPLACE FUNCTION apalis.get_jobs(
             worker_id TEXT, v_job_type TEXT, v_job_count INTEGER DEFAULT 5)
         RETURNS SETOF apalis.jobs LANGUAGE plpgsql VOLATILE
         -- Indexes whatever the statistics say: a session keeps the plan it made first, and a
         -- plan made while the table was new (no statistics: read whole, it looks small) kept
         -- reading all of it as the queue grew, until autovacuum first analysed it (443 scans
         -- over a 100-photo import on a new database, from pg_stat_all_tables).
         SET enable_seqscan = off AS $$
         BEGIN
             -- Ageing: a bulk task that has waited longer than `jobs.bulk_ageing_secs` goes
             -- ahead, up to half of a regular pool's batch, oldest first. Priorities are fixed
             -- at enqueue, so without this a steady stream of uploads would starve an old
             -- import's tail. Express pools never take bulk work.
             RETURN QUERY
             WITH aged AS (
                 SELECT id FROM apalis.jobs
                 WHERE right(v_job_type, {len}) <> '{EXPRESS_SUFFIX}'
                   AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
                   AND job_type = v_job_type
                   AND priority < {INTERACTIVE_PRIORITY}
                   AND run_at < now() - make_interval(secs => coalesce((
                       SELECT CASE WHEN jsonb_typeof(config_value) = 'number'
                                   THEN greatest(config_value::text::float8, 0) END
                       FROM public.system_configuration
                       WHERE config_key = 'jobs.bulk_ageing_secs'), {DEFAULT_AGEING_SECS}))
                 ORDER BY run_at ASC
                 LIMIT greatest(v_job_count / 2, 1)
                 FOR UPDATE SKIP LOCKED),
             rest AS (
                 SELECT id FROM apalis.jobs
                 WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
                   AND run_at < now()
                   AND job_type = CASE WHEN right(v_job_type, {len}) = '{EXPRESS_SUFFIX}'
                                       THEN left(v_job_type, -{len}) ELSE v_job_type END
                   AND priority >= CASE WHEN right(v_job_type, {len}) = '{EXPRESS_SUFFIX}'
                                        THEN {INTERACTIVE_PRIORITY} ELSE -2147483648 END
                   -- Locked by this statement already, which SKIP LOCKED does not skip.
                   AND id NOT IN (SELECT id FROM aged)
                 ORDER BY priority DESC, run_at ASC
                 LIMIT v_job_count - (SELECT count(*) FROM aged)
                 FOR UPDATE SKIP LOCKED)
             -- `Running` at once: the fetch is the lock (the pools turn apalis's own lock
             -- off, a transaction per task saved; a pool that still sends it updates nothing).
             UPDATE apalis.jobs j SET status = 'Running', lock_by = worker_id, lock_at = now()
             WHERE j.id = ANY(ARRAY(SELECT id FROM aged UNION ALL SELECT id FROM rest))
             RETURNING j.*;
         END $$;
         CREATE OR REPLACE FUNCTION public.timeline_announce_interactive() RETURNS trigger
             LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM pg_notify('{INTERACTIVE_CHANNEL}', NEW.job_type);
             RETURN NEW;
         END $$;
         CREATE OR REPLACE TRIGGER timeline_announce_interactive AFTER INSERT ON apalis.jobs
             FOR EACH ROW WHEN (NEW.priority >= {INTERACTIVE_PRIORITY}
                                AND NEW.run_at <= clock_timestamp() + interval '1 second')
             EXECUTE FUNCTION public.timeline_announce_interactive();",
        len = EXPRESS_SUFFIX.len(),
    )))
    .execute(pool)
    .await
    .map(|_| ())
}

/// The functions and triggers of our additions to apalis's table: the task of a media file
/// (`timeline_task_media_id`, which an index of [`QUEUE_INDEXES`] reads), the pause trigger
/// and the release of a finished task's worker (here, not in `migrations/`: ours run before
/// the queue's exist). The indexes themselves are built by [`build_queue_indexes`]. Each
/// batch here runs as one implicit transaction under an advisory lock, so
/// processes starting together do not race on the same DDL.
async fn queue_functions(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "SELECT pg_advisory_xact_lock(hashtext('timeline_queue_ddl'));
         -- The media file a step's task is for, read from its payload (JSON kept as bytea).
         -- Declared IMMUTABLE so that it can be indexed, which also keeps PostgreSQL from
         -- inlining it: convert_from is only STABLE, for the server encoding's sake.
         CREATE OR REPLACE FUNCTION public.timeline_task_media_id(job bytea) RETURNS text
             LANGUAGE sql IMMUTABLE PARALLEL SAFE
             AS $$ SELECT convert_from(job, 'UTF8')::jsonb ->> 'media_file_id' $$;
         -- A paused queue's new or rescheduled tasks wait 100 years (see queue_pauses).
         CREATE OR REPLACE FUNCTION public.timeline_hold_paused() RETURNS trigger
             LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
         BEGIN
             IF NEW.run_at < now() + interval '50 years'
                AND EXISTS (SELECT 1 FROM public.queue_pauses p WHERE p.queue = NEW.job_type) THEN
                 NEW.run_at := NEW.run_at + interval '100 years';
             END IF;
             RETURN NEW;
         END $$;
         -- A finished task lets go of its worker: apalis acknowledges a task by the rows its
         -- worker holds (`lock_by = $worker` joined to the task ids), and the planner reads
         -- them by the `lock_by` index, so with every finished task still naming its worker an
         -- acknowledgement read all the tasks that worker had ever finished (measured by
         -- scripts/bench-history.sh). The worker's name moves to `metadata -> 'done_by'`.
         -- (No pinned search_path: hstore lives wherever the database installed it.)
         CREATE OR REPLACE FUNCTION public.timeline_release_done() RETURNS trigger
             LANGUAGE plpgsql AS $$
         BEGIN
             NEW.metadata := coalesce(NEW.metadata, ''::hstore) || hstore('done_by', NEW.lock_by);
             NEW.lock_by := NULL;
             RETURN NEW;
         END $$;
         DROP TRIGGER IF EXISTS timeline_release_done ON apalis.jobs;
         CREATE TRIGGER timeline_release_done BEFORE UPDATE OF status ON apalis.jobs
             FOR EACH ROW WHEN (NEW.status IN ('Done', 'Killed') AND NEW.lock_by IS NOT NULL)
             EXECUTE FUNCTION public.timeline_release_done();
         DROP TRIGGER IF EXISTS timeline_hold_paused ON apalis.jobs;
         CREATE TRIGGER timeline_hold_paused BEFORE INSERT OR UPDATE OF run_at ON apalis.jobs
             FOR EACH ROW EXECUTE FUNCTION public.timeline_hold_paused();",
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// Our indexes on `apalis.jobs`: (name, what follows `ON`).
const QUEUE_INDEXES: &[(&str, &str)] = &[
    (
        "timeline_apalis_jobs_live",
        "apalis.jobs (job_type, status) WHERE status <> 'Done'",
    ),
    (
        "timeline_apalis_jobs_done_at",
        "apalis.jobs (done_at) WHERE status = 'Done'",
    ),
    // The fetch's aged tasks (`apalis.get_jobs`, see lane_fetch), oldest first: read in order
    // and stopped at the first, where apalis's (job_type, priority, run_at) index made every
    // fetch sort all of a queue's due bulk tasks.
    (
        "timeline_apalis_jobs_due",
        "apalis.jobs (job_type, run_at) \
         WHERE status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)",
    ),
    // The tasks a worker holds (apalis acknowledges and sweeps by `lock_by = <worker>`, the
    // foreign key's check reads it too), without an entry for each task nobody holds: apalis's
    // own `idx_apalis_jobs_lock_by` (see `SUPERSEDED_QUEUE_INDEXES`) took one at every enqueue
    // and every acknowledgement (`timeline_release_done` clears `lock_by`), 2 of the 14 index
    // entries a task wrote. Every query on `lock_by` compares it with `=`, which implies
    // `IS NOT NULL`, so each can read this one.
    (
        "timeline_apalis_jobs_lock_by",
        "apalis.jobs (lock_by) WHERE lock_by IS NOT NULL",
    ),
    // Whether a file still has a live task is a lookup, not a parse of every live task's
    // payload (the reconciler asks it of each stuck candidate, a media view of each file).
    (
        "timeline_apalis_jobs_media",
        "apalis.jobs (public.timeline_task_media_id(job)) \
         WHERE job_type IN ('hash', 'exif', 'thumbnail', 'video') AND status <> 'Done'",
    ),
];

/// apalis's indexes that ours replace, dropped once ours are built. apalis's first migration
/// made two that later ones repeat: `unique_job_id` is the primary key again and `lidx` is
/// `idx_apalis_jobs_lock_by` again. Every write of a task (enqueue, fetch, acknowledgement)
/// kept both up to date for nothing: without them the queue bench drained 10-11 % more
/// tasks/s (docs/SCALING.md). And `idx_apalis_jobs_lock_by` itself gives way to
/// `timeline_apalis_jobs_lock_by`, which has no entry for a task nobody holds.
const SUPERSEDED_QUEUE_INDEXES: &[&str] = &["unique_job_id", "lidx", "idx_apalis_jobs_lock_by"];

/// Builds [`QUEUE_INDEXES`] and drops [`SUPERSEDED_QUEUE_INDEXES`] `CONCURRENTLY`: on a live
/// queue of millions of tasks a plain build would hold off every enqueue, fetch and
/// acknowledgement until it ends; this one lets them run. A build that died half-way (the
/// process killed, the connection cut) leaves its index invalid, which `IF NOT EXISTS`
/// would keep forever: an invalid one is dropped and built again. One migrator at a time
/// per database builds (a session advisory lock, tried, not waited for: a migrator that
/// waited inside a statement would hold a snapshot the other's build waits out); the
/// other goes on without, the indexes being only faster paths. Each statement runs on its
/// own, outside any transaction, as `CONCURRENTLY` requires.
async fn build_queue_indexes(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('timeline_queue_indexes'))")
            .fetch_one(&mut *conn)
            .await?;
    if !locked {
        tracing::info!("another migrator is building the queue's indexes");
        return Ok(());
    }
    let built = build_queue_indexes_on(&mut conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext('timeline_queue_indexes'))")
        .execute(&mut *conn)
        .await;
    built?;
    unlocked.map(|_| ())
}

/// [`build_queue_indexes`]'s statements, on the connection holding the lock.
async fn build_queue_indexes_on(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    // Safe: every name and definition is one of our constants, none comes from outside.
    for (name, on) in QUEUE_INDEXES {
        let valid: Option<bool> = sqlx::query_scalar(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
        )
        .bind(format!("apalis.{name}"))
        .fetch_optional(&mut *conn)
        .await?;
        if valid == Some(true) {
            continue;
        }
        if valid == Some(false) {
            tracing::warn!(index = name, "rebuilding a queue index left invalid");
            drop_queue_index(conn, name).await?;
        }
        let sql = format!("CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {on}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
    }
    // After the builds: a live queue is never without an index on `lock_by`.
    for name in SUPERSEDED_QUEUE_INDEXES {
        drop_queue_index(conn, name).await?;
    }
    Ok(())
}

/// Drops index `name` of the `apalis` schema, if it exists, without locking out writes.
async fn drop_queue_index(conn: &mut sqlx::PgConnection, name: &str) -> Result<(), sqlx::Error> {
    // Safe: `name` is one of our constants, never outside input.
    let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS apalis.{name}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The API enqueues jobs in its own transaction while running as `timeline_api`, so that role
/// needs the queue's schema too. Runs after both migrators because the grants span both;
/// GRANT is idempotent.
async fn grant_queue_access(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "GRANT USAGE ON SCHEMA apalis TO timeline_api;
         GRANT SELECT, INSERT ON apalis.jobs TO timeline_api;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA apalis TO timeline_api;",
    )
    .execute(pool)
    .await
    .map(|_| ())
}
