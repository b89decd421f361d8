//! What the operators' dashboard (`/admin`) reads and does, across every user: queue
//! statistics, workers, failures, jobs, pausing queues and cancelling jobs. Runs as the owning
//! role (not under row-level security); only the dashboard's admin check guards it.
//!
//! Statements on apalis's tables use runtime-checked `sqlx::query` (see `db::queue`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A queue's recent throughput and waits, from its tasks finished in the last `minutes`.
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    pub queue: String,
    /// Tasks finished per minute over the window.
    pub per_minute: f64,
    /// Enqueue (or retry due time) → start, median and 95th percentile, seconds.
    pub wait_p50: Option<f64>,
    pub wait_p95: Option<f64>,
    pub paused: bool,
}

type StatsRow = (String, i64, Option<f64>, Option<f64>, bool);

/// Per queue: finished tasks and wait percentiles over the last `minutes` (from the
/// `timeline_apalis_jobs_done_at` index: only the recent finished rows are read).
pub async fn queue_stats(
    conn: &mut PgConnection,
    minutes: i32,
) -> Result<Vec<QueueStats>, sqlx::Error> {
    let rows: Vec<StatsRow> = sqlx::query_as(
        "SELECT q, count(j.id),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.lock_at - j.run_at)),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM j.lock_at - j.run_at)),
                EXISTS (SELECT 1 FROM queue_pauses p WHERE p.queue = q)
         FROM unnest(ARRAY['hash', 'exif', 'thumbnail', 'video', 'library']) WITH ORDINALITY AS t(q, o)
         LEFT JOIN apalis.jobs j ON j.job_type = q AND j.status = 'Done'
              AND j.done_at > now() - make_interval(mins => $1)
         GROUP BY q, o ORDER BY o",
    )
    .bind(minutes)
    .fetch_all(conn)
    .await?;
    let minutes = f64::from(minutes.max(1));
    Ok(rows
        .into_iter()
        .map(|(queue, done, p50, p95, paused)| QueueStats {
            queue,
            per_minute: done as f64 / minutes,
            wait_p50: p50.map(|v| v.max(0.0)),
            wait_p95: p95.map(|v| v.max(0.0)),
            paused,
        })
        .collect())
}

/// A worker pool and its last heartbeat.
#[derive(Debug, Clone)]
pub struct Worker {
    pub name: String,
    pub queue: String,
    pub last_seen: DateTime<Utc>,
    pub alive: bool,
}

/// Worker pools seen in the last hour, newest heartbeat first.
pub async fn workers(conn: &mut PgConnection) -> Result<Vec<Worker>, sqlx::Error> {
    let rows: Vec<(String, String, DateTime<Utc>, bool)> = sqlx::query_as(
        "SELECT id, worker_type, last_seen, last_seen > now() - interval '20 seconds'
         FROM apalis.workers WHERE last_seen > now() - interval '1 hour'
         ORDER BY last_seen DESC, id LIMIT 200",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, queue, last_seen, alive)| Worker {
            name,
            queue,
            last_seen,
            alive,
        })
        .collect())
}

/// A failed media file, for the failures list.
#[derive(Debug, Clone)]
pub struct Failure {
    pub media_id: Uuid,
    pub filename: String,
    pub owner: String,
    pub reason: Option<String>,
    pub attempts: i32,
    pub failed_at: DateTime<Utc>,
}

/// The most recent failures nobody dismissed.
pub async fn failures(conn: &mut PgConnection, limit: i64) -> Result<Vec<Failure>, sqlx::Error> {
    sqlx::query_as!(
        Failure,
        "SELECT m.id AS media_id, m.filename, u.email AS owner, m.error_message AS reason,
                m.attempts, m.updated_at AS failed_at
         FROM media_files m JOIN users u ON u.id = m.user_id
         WHERE m.processing_status = 'failed' AND m.failure_dismissed_at IS NULL
         ORDER BY m.updated_at DESC LIMIT $1",
        limit
    )
    .fetch_all(conn)
    .await
}

/// Hides a failure from the dashboard (the file stays failed for its owner). Returns whether
/// it was a listed failure.
pub async fn dismiss_failure(conn: &mut PgConnection, media_id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE media_files SET failure_dismissed_at = now()
         WHERE id = $1 AND processing_status = 'failed' AND failure_dismissed_at IS NULL",
        media_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A job, for the jobs list and its page.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub owner: String,
    pub job_type: String,
    pub status: String,
    pub progress: i16,
    pub total: i32,
    pub completed: i32,
    pub failed: i32,
    pub duplicate: i32,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The latest jobs, running ones first.
pub async fn recent_jobs(conn: &mut PgConnection, limit: i64) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT j.id, j.user_id, u.email AS owner, j.job_type, j.status, j.progress,
                  j.total_count AS total, j.completed_count AS completed, j.failed_count AS failed,
                  j.duplicate_count AS duplicate, j.created_at, j.completed_at
           FROM data_processing_jobs j JOIN users u ON u.id = j.user_id
           ORDER BY (j.status IN ('pending', 'running')) DESC, j.created_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(conn)
    .await
}

/// One job.
pub async fn job(conn: &mut PgConnection, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT j.id, j.user_id, u.email AS owner, j.job_type, j.status, j.progress,
                  j.total_count AS total, j.completed_count AS completed, j.failed_count AS failed,
                  j.duplicate_count AS duplicate, j.created_at, j.completed_at
           FROM data_processing_jobs j JOIN users u ON u.id = j.user_id WHERE j.id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// A file of a job with its steps.
#[derive(Debug, Clone)]
pub struct JobFile {
    pub media_id: Uuid,
    pub filename: String,
    pub kind: String,
    pub status: String,
    pub error: Option<String>,
    /// `step:status` of each recorded step, in pipeline order.
    pub steps: Vec<String>,
}

/// A job's files (first `limit`, in upload order) and their step records.
pub async fn job_files(
    conn: &mut PgConnection,
    job_id: Uuid,
    limit: i64,
) -> Result<Vec<JobFile>, sqlx::Error> {
    sqlx::query_as!(
        JobFile,
        r#"SELECT m.id AS media_id, m.filename, m.kind, m.processing_status AS status,
                  m.error_message AS error,
                  coalesce((SELECT array_agg(s.step || ':' || s.status || ' (v' || s.pipeline_version || ', ' || s.attempts || ' attempts)'
                                             ORDER BY array_position(ARRAY['hash','exif','thumbnail','video'], s.step))
                            FROM media_processing_steps s WHERE s.media_file_id = m.id), '{}') AS "steps!"
           FROM data_processing_job_media jm JOIN media_files m ON m.id = jm.media_file_id
           WHERE jm.job_id = $1 ORDER BY jm.position, m.id LIMIT $2"#,
        job_id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Pauses a queue: its waiting tasks move 100 years ahead (order kept), new ones follow (the
/// `timeline_hold_paused` trigger). Tasks already running finish. Idempotent.
pub async fn pause(conn: &mut PgConnection, queue: &str, by: Uuid) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query!(
        "INSERT INTO queue_pauses (queue, paused_by) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        queue,
        by
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        // The trigger adds the 100 years to each moved row (its run_at changes).
        sqlx::query(
            "UPDATE apalis.jobs SET run_at = run_at
             WHERE job_type = $1 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
               AND run_at < now() + interval '50 years'",
        )
        .bind(queue)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Resumes a paused queue: its held tasks come back at their old times, in their old order.
pub async fn resume(conn: &mut PgConnection, queue: &str) -> Result<(), sqlx::Error> {
    let deleted = sqlx::query!("DELETE FROM queue_pauses WHERE queue = $1", queue)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if deleted == 1 {
        sqlx::query(
            "UPDATE apalis.jobs SET run_at = run_at - interval '100 years'
             WHERE job_type = $1 AND run_at > now() + interval '50 years'",
        )
        .bind(queue)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Cancels a running job: its waiting queue tasks are removed, its files that have not ended
/// are failed with "cancelled by an operator" (their owner can retry them), and the job ends
/// `cancelled`. Steps already running finish, and find their file ended. Returns whether the
/// job was running.
pub async fn cancel_job(conn: &mut PgConnection, job_id: Uuid) -> Result<bool, sqlx::Error> {
    let cancelled = sqlx::query!(
        "UPDATE data_processing_jobs SET status = 'cancelled', completed_at = now(),
                started_at = coalesce(started_at, now()), error_message = 'cancelled by an operator'
         WHERE id = $1 AND status IN ('pending', 'running')",
        job_id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !cancelled {
        return Ok(false);
    }
    sqlx::query(
        "DELETE FROM apalis.jobs
         WHERE job_type IN ('hash', 'exif', 'thumbnail', 'video') AND status <> 'Done'
           AND status <> 'Running'
           AND convert_from(job, 'UTF8')::jsonb ->> 'job_id' = $1",
    )
    .bind(job_id.to_string())
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE media_files m SET processing_status = 'failed', error_message = 'cancelled by an operator'
         FROM data_processing_job_media jm
         WHERE jm.job_id = $1 AND m.id = jm.media_file_id AND m.processing_status IN ('pending', 'processing')",
        job_id
    )
    .execute(conn)
    .await?;
    Ok(true)
}
