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
pub async fn delay_retry(
    conn: &mut PgConnection,
    task_id: &str,
    delay: Duration,
) -> Result<(), sqlx::Error> {
    let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    sqlx::query("UPDATE apalis.jobs SET run_at = now() + make_interval(secs => $2::float8 / 1000) WHERE id = $1")
        .bind(task_id)
        .bind(millis as f64)
        .execute(conn)
        .await?;
    Ok(())
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
