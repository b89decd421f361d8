//! Queue housekeeping on apalis-postgres's table: persisted retry backoff and pruning of
//! finished rows.

use std::time::Duration;

use sqlx::PgPool;
use timeline::db::queue;
use timeline::jobs::{self, MediaTask, Step};
use uuid::Uuid;

use crate::common::migrate;

async fn one_task(pool: &PgPool) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let task = MediaTask {
        media_file_id: Uuid::new_v4(),
        job_id: Uuid::new_v4(),
    };
    jobs::enqueue(&mut conn, Step::Hash, &[task]).await.unwrap();
    // The one task not yet moved on by the test.
    sqlx::query_scalar("SELECT id FROM apalis.jobs WHERE job_type = 'hash' AND status = 'Pending'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_retry_waits_out_its_backoff_in_the_queue(pool: PgPool) {
    migrate(&pool).await;
    let id = one_task(&pool).await;
    // The task is held by worker w1, which hit a transient error.
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name) VALUES ('w1', 'hash', 'pg'), ('w2', 'hash', 'pg')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE apalis.jobs SET status = 'Running', lock_by = 'w1' WHERE id = $1")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    // Another worker (one the task was taken from, say) cannot move it.
    assert!(
        !queue::delay_retry(&mut conn, &id, "w2", Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        queue::delay_retry(&mut conn, &id, "w1", Duration::from_secs(30))
            .await
            .unwrap()
    );
    // Then apalis records the failure with attempts left: fetchable again once run_at passes,
    // not before.
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Failed', attempts = 1, lock_by = NULL WHERE id = $1",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    let fetchable = "SELECT count(*) FROM apalis.jobs WHERE id = $1 AND status = 'Failed'
                     AND attempts < max_attempts AND run_at < now()";
    let n: i64 = sqlx::query_scalar(fetchable)
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "not fetchable during its backoff");
    let wait: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM run_at - now())::float8 FROM apalis.jobs WHERE id = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((25.0..=30.5).contains(&wait), "{wait}");
}

#[sqlx::test(migrations = false)]
async fn prune_removes_only_old_finished_rows(pool: PgPool) {
    migrate(&pool).await;
    let old_done = one_task(&pool).await;
    sqlx::query("UPDATE apalis.jobs SET status = 'Done', done_at = now() - interval '8 days'")
        .execute(&pool)
        .await
        .unwrap();
    let recent_done = one_task(&pool).await;
    sqlx::query("UPDATE apalis.jobs SET status = 'Done', done_at = now() WHERE id = $1")
        .bind(&recent_done)
        .execute(&pool)
        .await
        .unwrap();
    let pending = one_task(&pool).await;
    let user = crate::common::user(&pool, "prune@example.org").await;
    sqlx::query(
        "INSERT INTO data_processing_jobs (user_id, job_type, status, progress, started_at, completed_at)
         VALUES ($1, 'media_ingest', 'completed', 100, now() - interval '100 days', now() - interval '100 days'),
                ($1, 'media_ingest', 'completed', 100, now() - interval '1 day', now() - interval '1 day'),
                ($1, 'media_ingest', 'running', 50, now() - interval '100 days', NULL)",
    )
    .bind(user)
    .execute(&pool)
    .await
    .unwrap();

    let mut conn = pool.acquire().await.unwrap();
    let week = Duration::from_secs(7 * 86_400);
    let pruned = queue::prune(&mut conn, week, Duration::from_secs(90 * 86_400))
        .await
        .unwrap();
    assert_eq!(
        pruned,
        queue::Pruned {
            queue_rows: 1,
            jobs: 1
        }
    );
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM apalis.jobs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!left.contains(&old_done));
    assert!(left.contains(&recent_done) && left.contains(&pending));
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM data_processing_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 2, "the running job and the recent one stay");
}

#[sqlx::test(migrations = false)]
async fn retention_follows_system_configuration(pool: PgPool) {
    migrate(&pool).await;
    let policy = timeline::db::maintenance::Retention::configured(&pool)
        .await
        .unwrap();
    assert_eq!(policy.audit_months, 13, "defaults without configuration");
    sqlx::query(
        "INSERT INTO system_configuration (config_key, config_value, description)
         VALUES ('jobs.retention_days', '3', 'test'), ('audit.retention_months', '24', 'test')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let policy = timeline::db::maintenance::Retention::configured(&pool)
        .await
        .unwrap();
    assert_eq!(policy.audit_months, 24);
    assert_eq!(policy.jobs, Duration::from_secs(3 * 86_400));
    assert_eq!(policy.queue_rows, Duration::from_secs(3 * 86_400));
}
