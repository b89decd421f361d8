//! The reconciler's SQL: leadership (one pass at a time across every process), media files
//! stuck `pending`/`processing` with no live queue task, and which stored objects still have
//! a row. Queue rows are apalis-postgres's (`apalis.jobs`, payload = our JSON as bytes), so
//! those statements are checked at run time, like the rest of `db::queue`.

use sqlx::PgConnection;
use uuid::Uuid;

/// The advisory lock key of the reconciler ("timeline reconcile").
const LEADER_KEY: i64 = 0x7469_6d65_7263_6e31;

/// Takes the reconciler's session lock on `conn` if no other process holds it.
pub async fn try_lead(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_KEY)
        .fetch_one(conn)
        .await
}

/// Gives the lock back (it also goes when the connection closes).
pub async fn release(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LEADER_KEY)
        .execute(conn)
        .await?;
    Ok(())
}

/// A media file that no queue task will ever move again.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stuck {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The newest job the file belongs to, if any.
    pub job_id: Option<Uuid>,
}

/// Files `pending`/`processing` untouched for `grace_secs` with no task that may still run
/// (waiting, running, or failed with attempts left) in any of our queues.
pub async fn stuck_files(
    conn: &mut PgConnection,
    grace_secs: f64,
    limit: i64,
) -> Result<Vec<Stuck>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, m.user_id,
                (SELECT jm.job_id FROM data_processing_job_media jm
                 JOIN data_processing_jobs j ON j.id = jm.job_id
                 WHERE jm.media_file_id = m.id ORDER BY j.created_at DESC LIMIT 1) AS job_id
         FROM media_files m
         WHERE m.processing_status IN ('pending', 'processing')
           AND m.updated_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (
               SELECT 1 FROM apalis.jobs a
               -- Spelled as the partial index timeline_apalis_jobs_media is (db::migrate).
               WHERE a.job_type IN ('hash', 'exif', 'thumbnail', 'video') AND a.status <> 'Done'
                 AND (a.status IN ('Pending', 'Queued', 'Running')
                      OR (a.status = 'Failed' AND a.attempts < a.max_attempts))
                 AND timeline_task_media_id(a.job) = m.id::text)
         ORDER BY m.updated_at
         LIMIT $2",
    )
    .bind(grace_secs)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Returns to their queue the tasks held by worker pools silent for `grace_secs` (apalis's
/// own sweep does this only for pools of the same queue name still running, so a pool type
/// no worker serves any more, say the express pools after `--interactive-concurrency 0`,
/// would keep its tasks `Running` for good). The same update as apalis's sweep: the attempt
/// counts, the task goes back to `Pending`.
pub async fn release_abandoned_tasks(
    conn: &mut PgConnection,
    grace_secs: f64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "WITH stale AS (
             SELECT j.id FROM apalis.jobs j JOIN apalis.workers w ON w.id = j.lock_by
             WHERE j.status IN ('Queued', 'Running')
               AND w.last_seen < now() - make_interval(secs => $1)
             FOR UPDATE OF j SKIP LOCKED)
         UPDATE apalis.jobs j
         SET status = 'Pending', done_at = NULL, lock_by = NULL, lock_at = NULL,
             attempts = attempts + 1,
             last_result = '{\"Err\": \"Re-enqueued by the reconciler: its worker stopped.\"}'
         FROM stale WHERE j.id = stale.id",
    )
    .bind(grace_secs)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Marks a requeued file as touched, so the next pass gives its new tasks a full grace period.
pub async fn touch(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE media_files SET updated_at = now() WHERE id = $1",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}
