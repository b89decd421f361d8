//! Queue housekeeping on apalis-postgres's own `apalis.jobs` table: retry backoff and pruning.
//!
//! These statements use `sqlx::query` (runtime-checked) on purpose: the `apalis` schema belongs
//! to apalis-postgres's migrations, and our `.sqlx/` cache is built without it being ours to
//! describe. Each statement is small and covered by the pipeline tests.

use std::time::Duration;

use sqlx::PgConnection;

/// Delays the next attempt of a failed task: apalis-postgres re-fetches a `Failed` task whose
/// `attempts < max_attempts` as soon as `run_at < now()`, and its result handler never touches
/// `run_at`, so moving `run_at` forward persists the backoff in the queue itself (it survives a
/// worker restart, and no worker sleeps on it).
///
/// Guarded: only while `worker` still holds the task (its lock holder), `Running` or still
/// `Queued`: the fetch locks a task as `Queued` and apalis writes `Running` a moment later, from
/// a batch of events, so a step that fails at once (the store refusing every request) can end
/// before that. A task the heartbeat sweep took back from a worker presumed dead, and another
/// worker now holds, is not touched. Returns whether the delay was applied.
pub async fn delay_retry(
    conn: &mut PgConnection,
    task_id: &str,
    worker: &str,
    delay: Duration,
) -> Result<bool, sqlx::Error> {
    let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let done = sqlx::query(
        "UPDATE apalis.jobs SET run_at = now() + make_interval(secs => $2::float8 / 1000)
         WHERE id = $1 AND status IN ('Queued', 'Running') AND lock_by = $3",
    )
    .bind(task_id)
    .bind(millis as f64)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a task `Done` as apalis-postgres's acknowledgement would (`attempts`, the result of
/// a step that returns nothing, `done_at`), on the caller's transaction: the step's final
/// transaction, so that its results and its acknowledgement commit together. Guarded as
/// apalis's own is: only while `worker` holds the task. Returns whether it did.
pub async fn acknowledge_done(
    conn: &mut PgConnection,
    task_id: &str,
    worker: &str,
    attempt: i32,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(ACKNOWLEDGE_DONE)
        .bind(task_id)
        .bind(worker)
        .bind(attempt)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// What apalis-postgres's acknowledgement of a step that returned nothing sets, but the
/// attempt: one text for each statement that acknowledges.
macro_rules! done_set {
    () => {
        r#"status = 'Done', last_result = '{"Ok": null}'::jsonb, done_at = now()"#
    };
}

/// [`acknowledge_done`]'s statement: task id `$1`, worker `$2`, attempt `$3`. Public so that
/// a one-statement step can carry it as a `WITH` clause (`db::bench::record_acknowledged`).
pub const ACKNOWLEDGE_DONE: &str = concat!(
    "UPDATE apalis.jobs SET ",
    done_set!(),
    ", attempts = $3 WHERE id = $1 AND lock_by = $2"
);

/// [`acknowledge_done`] for many tasks in one statement, each guarded by its own holder: the
/// final transaction of a group of steps committed together (`timeline-worker bench --batch`).
/// `tasks` are (task id, worker, attempt); returns the ids it marked `Done`.
pub async fn acknowledge_done_many(
    conn: &mut PgConnection,
    tasks: &[(String, String, i32)],
) -> Result<Vec<String>, sqlx::Error> {
    let ids: Vec<&str> = tasks.iter().map(|t| t.0.as_str()).collect();
    let workers: Vec<&str> = tasks.iter().map(|t| t.1.as_str()).collect();
    let attempts: Vec<i32> = tasks.iter().map(|t| t.2).collect();
    sqlx::query_scalar(concat!(
        "UPDATE apalis.jobs AS j SET ",
        done_set!(),
        ", attempts = t.attempt
           FROM unnest($1::text[], $2::text[], $3::int4[]) AS t(id, worker, attempt)
           WHERE j.id = t.id AND j.lock_by = t.worker
           RETURNING j.id"
    ))
    .bind(ids)
    .bind(workers)
    .bind(attempts)
    .fetch_all(conn)
    .await
}

/// Registers a worker of `queue` as apalis-postgres's own registration does (its
/// `worker/register.sql`, whose timestamp type the crate keeps private). False when a live
/// worker of that name exists already.
pub async fn register_worker(
    conn: &mut PgConnection,
    worker: &str,
    queue: &str,
    layers: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
         VALUES ($1, $2, 'PgStorage', $3, now())
         ON CONFLICT (id) DO UPDATE
         SET worker_type = EXCLUDED.worker_type, storage_name = EXCLUDED.storage_name,
             layers = EXCLUDED.layers, last_seen = now()
         WHERE pg_try_advisory_lock(hashtext(workers.id))",
    )
    .bind(worker)
    .bind(queue)
    .bind(layers)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A step waiting out its backoff before another attempt.
#[derive(Debug, Clone)]
pub struct PendingRetry {
    pub media_id: uuid::Uuid,
    pub step: String,
    /// Attempts made so far.
    pub attempts: i32,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    /// What the last attempt said (apalis's recorded result).
    pub last_error: Option<String>,
}

/// media id (text), step, attempts, next run, last result (JSON text).
type RetryRow = (
    String,
    String,
    i32,
    chrono::DateTime<chrono::Utc>,
    Option<String>,
);

/// The retries pending for these media files (tasks `Failed` with attempts left). The caller
/// passes only ids it may show (the user's own, already read under row-level security).
pub async fn pending_retries(
    conn: &mut PgConnection,
    media_ids: &[uuid::Uuid],
) -> Result<Vec<PendingRetry>, sqlx::Error> {
    if media_ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = media_ids.iter().map(ToString::to_string).collect();
    let rows: Vec<RetryRow> = sqlx::query_as(
        "SELECT timeline_task_media_id(job), job_type, attempts, run_at, last_result::text
             FROM apalis.jobs
             -- Spelled as the partial index timeline_apalis_jobs_media is (db::migrate).
             WHERE job_type IN ('hash', 'exif', 'thumbnail', 'video') AND status <> 'Done'
               AND status = 'Failed' AND attempts < max_attempts
               AND timeline_task_media_id(job) = ANY($1)
             ORDER BY run_at",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(media, step, attempts, next_attempt_at, last)| {
            Some(PendingRetry {
                media_id: media.parse().ok()?,
                step,
                attempts,
                next_attempt_at,
                last_error: last.map(|l| {
                    serde_json::from_str::<serde_json::Value>(&l)
                        .ok()
                        .and_then(|v| retry_reason(&v))
                        .unwrap_or(l)
                }),
            })
        })
        .collect())
}

/// The readable reason inside apalis's recorded result (`{"Err": "..."}` or a plain string).
fn retry_reason(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.values().find_map(retry_reason),
        _ => None,
    }
}

/// Counts of what [`prune`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Finished queue rows (`Done`, `Killed`, or `Failed` with no attempts left).
    pub queue_rows: u64,
    /// Finished `data_processing_jobs` rows.
    pub jobs: u64,
}

/// Deletes queue rows that finished more than `older_than` ago (apalis keeps `Done` rows for
/// ever) and finished `data_processing_jobs` older than `jobs_older_than`.
pub async fn prune(
    conn: &mut PgConnection,
    older_than: Duration,
    jobs_older_than: Duration,
) -> Result<Pruned, sqlx::Error> {
    let secs = |d: Duration| d.as_secs_f64();
    let queue_rows = sqlx::query(
        "DELETE FROM apalis.jobs
         WHERE done_at < now() - make_interval(secs => $1)
           AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))",
    )
    .bind(secs(older_than))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let jobs = sqlx::query(
        "DELETE FROM data_processing_jobs
         WHERE status IN ('completed', 'failed', 'cancelled')
           AND completed_at < now() - make_interval(secs => $1)",
    )
    .bind(secs(jobs_older_than))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(Pruned { queue_rows, jobs })
}

/// The queues' names (`apalis.jobs.job_type`): the steps', and the `library` queue (exports,
/// erasures, imports of the API), whose backlog shows when no worker serves it. Each pauses
/// from the dashboard (`queue_pauses` takes the same names).
pub const QUEUES: [&str; 5] = ["hash", "exif", "thumbnail", "video", "library"];

/// One queue's state, for the metrics and the dashboard.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueGauges {
    pub queue: String,
    /// Waiting for a worker (due or scheduled) or fetched and not yet started.
    pub pending: i64,
    pub running: i64,
    /// Failed with attempts left (waiting out their backoff).
    pub retrying: i64,
    /// Failed for good (kept until pruned).
    pub failed: i64,
    /// Age of the oldest due task no worker has taken (0 when none).
    pub oldest_pending_secs: f64,
    /// Pools that beat in the last 20 s (express pools included).
    pub workers_alive: i64,
}

type GaugeRow = (String, i64, i64, i64, i64, f64, i64);

/// Every queue's counts (one row per queue, zeros included). Reads only the live tasks
/// (`timeline_apalis_jobs_live`), never the finished ones apalis keeps.
pub async fn gauges(conn: &mut PgConnection) -> Result<Vec<QueueGauges>, sqlx::Error> {
    let rows: Vec<GaugeRow> = sqlx::query_as(
        "SELECT q,
                count(*) FILTER (WHERE j.status IN ('Pending', 'Queued')),
                count(*) FILTER (WHERE j.status = 'Running'),
                count(*) FILTER (WHERE j.status = 'Failed' AND j.attempts < j.max_attempts),
                count(*) FILTER (WHERE j.status = 'Killed' OR (j.status = 'Failed' AND j.attempts >= j.max_attempts)),
                coalesce(extract(epoch FROM now() - min(j.run_at) FILTER (WHERE j.status = 'Pending' AND j.run_at <= now())), 0)::float8,
                (SELECT count(*) FROM apalis.workers w
                 WHERE w.worker_type IN (q, q || $2) AND w.last_seen > now() - interval '20 seconds')
         FROM unnest($1::text[]) AS q
         LEFT JOIN apalis.jobs j ON j.job_type = q AND j.status <> 'Done'
         GROUP BY q ORDER BY array_position($1::text[], q)",
    )
    .bind(&QUEUES[..])
    .bind(crate::jobs::EXPRESS_SUFFIX)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(queue, pending, running, retrying, failed, oldest, alive)| QueueGauges {
                queue,
                pending,
                running,
                retrying,
                failed,
                oldest_pending_secs: oldest.max(0.0),
                workers_alive: alive,
            },
        )
        .collect())
}
