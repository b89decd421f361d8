//! Queue semantics on apalis-postgres's table: persisted retry backoff, pruning of finished
//! rows, priority lanes and express fetches, job counters, pause and cancel, and what the
//! reconciler repairs in the queue.

use std::time::Duration;

use sqlx::PgPool;
use timeline::db::queue;
use timeline::jobs::{self, MediaTask, Step};
use uuid::Uuid;

use crate::common::migrate;

async fn one_task(pool: &PgPool) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let task = MediaTask::new(Uuid::new_v4(), Uuid::new_v4(), 0);
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

/// Stored media rows for `n` files of `user` (no bytes needed: nothing runs).
fn new_media(user: Uuid, n: usize) -> Vec<timeline::db::uploads::NewMedia> {
    (0..n)
        .map(|i| timeline::db::uploads::NewMedia {
            id: Uuid::new_v4(),
            user_id: user,
            filename: format!("{i}.jpg"),
            file_path: format!("media/{user}/{i}"),
            file_size: 1,
            mime_type: "image/jpeg",
            sha256: None,
        })
        .collect()
}

/// Files of the hash queue in the order apalis-postgres's fetch takes them.
async fn fetch_order(pool: &PgPool) -> Vec<(Uuid, u32)> {
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT job FROM apalis.jobs WHERE job_type = 'hash' ORDER BY priority DESC, run_at ASC",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(b,)| {
            let t: MediaTask = serde_json::from_slice(&b).unwrap();
            (t.job_id, t.priority)
        })
        .collect()
}

#[sqlx::test(migrations = false)]
async fn uploads_go_first_and_bulk_jobs_take_turns(pool: PgPool) {
    migrate(&pool).await;
    let a = crate::common::user(&pool, "a@example.org").await;
    let b = crate::common::user(&pool, "b@example.org").await;
    // User A's 50-file import is queued first, in chunks like `timeline ingest` does.
    let mut tx = pool.begin().await.unwrap();
    let big = timeline::db::jobs::create_open(
        &mut tx,
        a,
        timeline::models::JobType::MediaIngest,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let media_a = new_media(a, 50);
    for (i, chunk) in media_a.chunks(10).enumerate() {
        timeline::ingest::submit_into(&mut tx, big, a, chunk, i * 10)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // Then B imports 5 files, then A uploads one photo through the API path.
    let mut tx = pool.begin().await.unwrap();
    let small = timeline::ingest::submit(&mut tx, b, &new_media(b, 5), jobs::Lane::Bulk)
        .await
        .unwrap()
        .id;
    let upload = timeline::ingest::submit(&mut tx, a, &new_media(a, 1), jobs::Lane::Interactive)
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();

    let order = fetch_order(&pool).await;
    assert_eq!(order.len(), 56);
    // The upload, queued last, is fetched first.
    assert_eq!(order[0].0, upload);
    // B's import, queued after A's 50, is not behind them: the two alternate from the start.
    let first_ten: Vec<Uuid> = order[1..11].iter().map(|(j, _)| *j).collect();
    assert_eq!(
        first_ten.iter().filter(|j| **j == small).count(),
        5,
        "{first_ten:?}"
    );
    assert_eq!(
        first_ten.iter().filter(|j| **j == big).count(),
        5,
        "{first_ten:?}"
    );
    // A's files keep their own order (position in the import).
    let a_prio: Vec<u32> = order
        .iter()
        .filter(|(j, _)| *j == big)
        .map(|(_, p)| *p)
        .collect();
    assert!(a_prio.windows(2).all(|w| w[0] > w[1]), "{a_prio:?}");
    assert!(
        order
            .iter()
            .all(|(j, p)| (*j == upload) == (*p == jobs::INTERACTIVE_PRIORITY))
    );
    // One job for the whole chunked import, complete only once sealed.
    let (total, sealed): (i32, bool) =
        sqlx::query_as("SELECT total_count, sealed FROM data_processing_jobs WHERE id = $1")
            .bind(big)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((total, sealed), (50, false));
}

/// Ends a file as `status` and counts it, as a step's final transaction does.
async fn end_file(pool: &PgPool, id: Uuid, status: &str) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE media_files SET processing_status = $2, error_message = CASE WHEN $2 = 'failed' THEN 'broken' END WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(&mut *tx)
        .await
        .unwrap();
    timeline::db::jobs::file_ended(&mut tx, id).await.unwrap();
    tx.commit().await.unwrap();
}

async fn job_row(pool: &PgPool, id: Uuid) -> (String, i16, i32, i32, i32) {
    sqlx::query_as(
        "SELECT status, progress, completed_count, failed_count, total_count FROM data_processing_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn job_counters_move_once_per_transition_and_the_job_completes(pool: PgPool) {
    migrate(&pool).await;
    let u = crate::common::user(&pool, "c@example.org").await;
    let media = new_media(u, 4);
    let mut tx = pool.begin().await.unwrap();
    let job = timeline::ingest::submit(&mut tx, u, &media, jobs::Lane::Interactive)
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    end_file(&pool, media[0].id, "completed").await;
    // Counting the same end twice (a redelivered step) changes nothing.
    let mut conn = pool.acquire().await.unwrap();
    timeline::db::jobs::file_ended(&mut conn, media[0].id)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(job_row(&pool, job).await, ("running".into(), 25, 1, 0, 4));
    end_file(&pool, media[1].id, "failed").await;
    // A failed file retried while its job runs moves from `failed` to `completed`.
    end_file(&pool, media[1].id, "completed").await;
    assert_eq!(job_row(&pool, job).await, ("running".into(), 50, 2, 0, 4));
    // Files ending concurrently all count (each update reads the locked row, not a snapshot).
    let (p1, p2) = (pool.clone(), pool.clone());
    let (i2, i3) = (media[2].id, media[3].id);
    tokio::join!(end_file(&p1, i2, "failed"), end_file(&p2, i3, "completed"));
    assert_eq!(
        job_row(&pool, job).await,
        ("completed".into(), 100, 3, 1, 4)
    );
    // The job and its failures, read in one statement, up to the limit; another user's job
    // is not there.
    let mut conn = pool.acquire().await.unwrap();
    let (row, errors) = timeline::db::jobs::get_with_errors(&mut conn, u, job, 100)
        .await
        .unwrap()
        .expect("the user's job");
    assert_eq!((row.id, row.user_id, row.progress), (job, u, 100));
    let failed: Vec<_> = errors
        .iter()
        .map(|e| (e.media_id, e.error.as_deref()))
        .collect();
    assert_eq!(failed, vec![(media[2].id, Some("broken"))]);
    let (_, none) = timeline::db::jobs::get_with_errors(&mut conn, u, job, 0)
        .await
        .unwrap()
        .expect("job");
    assert!(none.is_empty());
    let other = crate::common::user(&pool, "other@example.org").await;
    assert!(
        timeline::db::jobs::get_with_errors(&mut conn, other, job, 100)
            .await
            .unwrap()
            .is_none()
    );
}

#[sqlx::test(migrations = false)]
async fn a_paused_queue_holds_old_and_new_tasks_and_resume_restores_their_order(pool: PgPool) {
    migrate(&pool).await;
    let u = crate::common::user(&pool, "p@example.org").await;
    let mut tx = pool.begin().await.unwrap();
    timeline::ingest::submit(&mut tx, u, &new_media(u, 3), jobs::Lane::Bulk)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let due = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = 'hash' AND run_at <= now()",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = fetch_order(&pool).await;
    let mut tx = pool.begin().await.unwrap();
    timeline::db::admin::pause(&mut tx, "hash", u)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(due(pool.clone()).await, 0);
    // Queued while paused: held too. Other queues are not.
    let mut tx = pool.begin().await.unwrap();
    timeline::ingest::submit(&mut tx, u, &new_media(u, 1), jobs::Lane::Interactive)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    jobs::enqueue(
        &mut conn,
        Step::Exif,
        &[MediaTask::new(Uuid::new_v4(), Uuid::new_v4(), 0)],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(due(pool.clone()).await, 0);
    let exif_due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'exif' AND run_at <= now()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(exif_due, 1);
    let mut tx = pool.begin().await.unwrap();
    timeline::db::admin::resume(&mut tx, "hash").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(due(pool.clone()).await, 4);
    let after = fetch_order(&pool).await;
    assert_eq!(
        &after[1..],
        &before[..],
        "the old tasks keep their order behind the upload"
    );

    // The library queue (exports, erasures, API imports) is held the same way.
    let library_due = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = 'library' AND run_at <= now()",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let queue_export = |pool: PgPool| async move {
        let mut tx = pool.begin().await.unwrap();
        let task = jobs::LibraryTask::Export {
            export_id: Uuid::new_v4(),
        };
        jobs::enqueue_library(&mut tx, task).await.unwrap();
        tx.commit().await.unwrap();
    };
    queue_export(pool.clone()).await;
    let mut tx = pool.begin().await.unwrap();
    timeline::db::admin::pause(&mut tx, jobs::LIBRARY_QUEUE, u)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    queue_export(pool.clone()).await;
    assert_eq!(library_due(pool.clone()).await, 0, "waiting and new: held");
    assert_eq!(due(pool.clone()).await, 4, "the steps' queues run on");
    let mut tx = pool.begin().await.unwrap();
    timeline::db::admin::resume(&mut tx, jobs::LIBRARY_QUEUE)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(library_due(pool.clone()).await, 2);
}

#[sqlx::test(migrations = false)]
async fn cancelling_a_job_drops_its_waiting_tasks_and_fails_its_unfinished_files(pool: PgPool) {
    migrate(&pool).await;
    let u = crate::common::user(&pool, "x@example.org").await;
    let media = new_media(u, 3);
    let mut tx = pool.begin().await.unwrap();
    let job = timeline::ingest::submit(&mut tx, u, &media, jobs::Lane::Bulk)
        .await
        .unwrap()
        .id;
    let other = timeline::ingest::submit(&mut tx, u, &new_media(u, 1), jobs::Lane::Bulk)
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    end_file(&pool, media[0].id, "completed").await;
    let mut tx = pool.begin().await.unwrap();
    assert!(timeline::db::admin::cancel_job(&mut tx, job).await.unwrap());
    assert!(
        !timeline::db::admin::cancel_job(&mut tx, job).await.unwrap(),
        "once"
    );
    tx.commit().await.unwrap();
    let left = fetch_order(&pool).await;
    assert_eq!(
        left.iter().map(|(j, _)| *j).collect::<Vec<_>>(),
        vec![other]
    );
    let statuses: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT processing_status, error_message FROM media_files WHERE id = ANY($1) ORDER BY filename",
    )
    .bind(media.iter().map(|m| m.id).collect::<Vec<_>>())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(statuses[0].0, "completed");
    for s in &statuses[1..] {
        assert_eq!(
            s,
            &(
                "failed".to_owned(),
                Some("cancelled by an operator".to_owned())
            )
        );
    }
    assert_eq!(job_row(&pool, job).await.0, "cancelled");
}

#[sqlx::test(migrations = false)]
async fn a_file_deleted_mid_job_leaves_it_and_the_job_still_completes(pool: PgPool) {
    migrate(&pool).await;
    let u = crate::common::user(&pool, "d@example.org").await;
    let media = new_media(u, 3);
    let mut tx = pool.begin().await.unwrap();
    let job = timeline::ingest::submit(&mut tx, u, &media, jobs::Lane::Interactive)
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    end_file(&pool, media[0].id, "completed").await;
    // The owner deletes a file that was counted, then one still pending.
    sqlx::query("DELETE FROM media_files WHERE id = $1")
        .bind(media[0].id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(job_row(&pool, job).await, ("running".into(), 33, 0, 0, 2));
    sqlx::query("DELETE FROM media_files WHERE id = $1")
        .bind(media[2].id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(job_row(&pool, job).await, ("running".into(), 33, 0, 0, 1));
    end_file(&pool, media[1].id, "failed").await;
    assert_eq!(
        job_row(&pool, job).await,
        ("completed".into(), 100, 0, 1, 1)
    );
    // Deleting the last file of a pending job completes it (nothing left to wait for).
    let more = new_media(u, 1);
    let mut tx = pool.begin().await.unwrap();
    let job = timeline::ingest::submit(&mut tx, u, &more, jobs::Lane::Interactive)
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    sqlx::query("DELETE FROM media_files WHERE id = $1")
        .bind(more[0].id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        job_row(&pool, job).await,
        ("completed".into(), 100, 0, 0, 0)
    );
}

#[sqlx::test(migrations = false)]
async fn the_reconciler_seals_abandoned_imports_and_counts_missed_ends(pool: PgPool) {
    migrate(&pool).await;
    let u = crate::common::user(&pool, "r@example.org").await;
    // An importer that died after its first chunk: an open job whose files all ended.
    let media = new_media(u, 2);
    let mut tx = pool.begin().await.unwrap();
    let open = timeline::db::jobs::create_open(
        &mut tx,
        u,
        timeline::models::JobType::MediaIngest,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    timeline::ingest::submit_into(&mut tx, open, u, &media, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for m in &media {
        end_file(&pool, m.id, "completed").await;
    }
    assert_eq!(
        job_row(&pool, open).await,
        ("running".into(), 99, 2, 0, 2),
        "open: not complete"
    );
    // A sealed job one of whose files ended without being counted (killed in between).
    let other = new_media(u, 1);
    let mut tx = pool.begin().await.unwrap();
    let sealed = timeline::ingest::submit(&mut tx, u, &other, jobs::Lane::Bulk)
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    sqlx::query("UPDATE media_files SET processing_status = 'completed' WHERE id = $1")
        .bind(other[0].id)
        .execute(&pool)
        .await
        .unwrap();
    // Within the grace period nothing is touched.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        timeline::db::jobs::seal_abandoned(&mut conn, 3600.0)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        timeline::db::jobs::count_missed(&mut conn, 3600.0)
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        timeline::db::jobs::seal_abandoned(&mut conn, 0.01)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        timeline::db::jobs::count_missed(&mut conn, 0.01)
            .await
            .unwrap(),
        1
    );
    drop(conn);
    assert_eq!(
        job_row(&pool, open).await,
        ("completed".into(), 100, 2, 0, 2)
    );
    assert_eq!(
        job_row(&pool, sealed).await,
        ("completed".into(), 100, 1, 0, 1)
    );
}

/// What a pool named `pool_name` gets from apalis-postgres's fetch (`apalis.get_jobs`, as
/// replaced by `db::migrate::lane_fetch`): the media ids, in the order given.
async fn fetch(pool: &PgPool, worker: &str, pool_name: &str) -> Vec<Uuid> {
    // A pool registers itself before it fetches (the lock names it).
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen)
         VALUES ($1, $2, 'pg', now()) ON CONFLICT (id) DO NOTHING",
    )
    .bind(worker)
    .bind(pool_name)
    .execute(pool)
    .await
    .unwrap();
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT job FROM apalis.get_jobs($1, $2, 10)")
        .bind(worker)
        .bind(pool_name)
        .fetch_all(pool)
        .await
        .unwrap();
    let mut tasks: Vec<MediaTask> = rows
        .into_iter()
        .map(|(b,)| serde_json::from_slice(&b).unwrap())
        .collect();
    // RETURNING keeps no order; the fetch took them by priority.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.priority));
    tasks.into_iter().map(|t| t.media_file_id).collect()
}

#[sqlx::test(migrations = false)]
async fn express_pools_fetch_only_interactive_tasks_and_only_they_are_announced(pool: PgPool) {
    migrate(&pool).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen(jobs::INTERACTIVE_CHANNEL).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let bulk: Vec<MediaTask> = (0..3)
        .map(|i| {
            MediaTask::new(
                Uuid::new_v4(),
                Uuid::new_v4(),
                jobs::priority(jobs::Lane::Bulk, i),
            )
        })
        .collect();
    jobs::enqueue(&mut conn, Step::Hash, &bulk).await.unwrap();
    // An import's tasks wake no express pool.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), listener.recv())
            .await
            .is_err(),
        "bulk tasks are not announced"
    );
    let prio = jobs::priority(jobs::Lane::Interactive, 0);
    let upload = MediaTask::new(Uuid::new_v4(), Uuid::new_v4(), prio);
    let later = MediaTask::new(Uuid::new_v4(), Uuid::new_v4(), prio);
    jobs::enqueue(&mut conn, Step::Hash, &[upload])
        .await
        .unwrap();
    jobs::enqueue(&mut conn, Step::Exif, &[later])
        .await
        .unwrap();
    for queue in ["hash", "exif"] {
        let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("an interactive task is announced")
            .unwrap();
        assert_eq!(n.payload(), queue);
    }
    drop(conn);
    // An upload enqueued in a transaction that began in an earlier second is announced too.
    let late = MediaTask::new(Uuid::new_v4(), Uuid::new_v4(), prio);
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_sleep(1.2)")
        .execute(&mut *tx)
        .await
        .unwrap();
    jobs::enqueue(&mut tx, Step::Thumbnail, &[late])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a late transaction's interactive task is announced")
        .unwrap();
    assert_eq!(n.payload(), "thumbnail");

    // The hash express pool gets the upload and nothing else: no bulk task, no other queue's.
    assert_eq!(
        fetch(&pool, "x1", "hash:interactive").await,
        vec![upload.media_file_id]
    );
    assert!(fetch(&pool, "x1", "hash:interactive").await.is_empty());
    // The regular pool fetches as apalis does: the bulk tasks, in their order.
    let bulk_ids: Vec<Uuid> = bulk.iter().map(|t| t.media_file_id).collect();
    assert_eq!(fetch(&pool, "r1", "hash").await, bulk_ids);
    // A regular pool takes interactive tasks too (a burst of uploads uses every slot).
    assert_eq!(fetch(&pool, "r2", "exif").await, vec![later.media_file_id]);
    assert_eq!(
        fetch(&pool, "x2", "thumbnail:interactive").await,
        vec![late.media_file_id]
    );
    let held: Vec<(String, String)> =
        sqlx::query_as("SELECT status, lock_by FROM apalis.jobs ORDER BY lock_by")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(held.len(), 6);
    // The fetch is the lock: a fetched task is `Running` (pools skip apalis's own lock).
    assert!(held.iter().all(|(s, _)| s == "Running"), "{held:?}");
    assert_eq!(held.iter().filter(|(_, w)| w == "x1").count(), 1);
    // An unknown suffix is just another queue name.
    assert!(fetch(&pool, "y", "hash:bulk").await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn the_reconciler_returns_tasks_held_by_stopped_pools(pool: PgPool) {
    migrate(&pool).await;
    for _ in 0..2 {
        one_task(&pool).await;
        sqlx::query("UPDATE apalis.jobs SET status = 'Running' WHERE status = 'Pending'")
            .execute(&pool)
            .await
            .unwrap();
    }
    // One task held by an express pool that stopped two minutes ago (and whose kind no worker
    // runs any more), one by a live pool.
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen)
         VALUES ('gone', 'hash:interactive', 'pg', now() - interval '2 minutes'),
                ('alive', 'hash', 'pg', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE apalis.jobs SET lock_by = CASE WHEN id = (SELECT min(id) FROM apalis.jobs)
                                             THEN 'gone' ELSE 'alive' END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    // Silent for less than the given time: kept.
    assert_eq!(
        timeline::db::reconcile::release_abandoned_tasks(&mut conn, 600.0)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        timeline::db::reconcile::release_abandoned_tasks(&mut conn, 60.0)
            .await
            .unwrap(),
        1
    );
    let rows: Vec<(String, Option<String>, i32)> =
        sqlx::query_as("SELECT status, lock_by, attempts FROM apalis.jobs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            ("Pending".into(), None, 1),
            ("Running".into(), Some("alive".into()), 0)
        ]
    );
    // A whole pass with grace 0 still leaves live pools' tasks alone (a minute's floor).
    drop(conn);
    let dir = std::env::temp_dir().join(format!("timeline-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let storage =
        timeline::storage::Storage::from_url(&format!("file://{}", dir.display())).unwrap();
    let report = timeline::reconcile::run(&pool, &pool, &storage, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.tasks_released, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether a file still has a live task is an index lookup (`timeline_task_media_id`), as the
/// reconciler asks it of every stuck candidate and a media view of every file shown: not a
/// parse of every live task's JSON payload, which would grow with the queue.
#[sqlx::test(migrations = false)]
async fn a_files_live_task_is_found_through_an_index_not_a_parse_of_the_queue(pool: PgPool) {
    migrate(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let mut wanted = None;
    for _ in 0..20 {
        let batch: Vec<MediaTask> = (0..1000)
            .map(|_| MediaTask::new(Uuid::new_v4(), Uuid::new_v4(), 0))
            .collect();
        wanted = Some(batch[500].media_file_id);
        jobs::enqueue(&mut conn, Step::Exif, &batch).await.unwrap();
    }
    let wanted = wanted.unwrap().to_string();
    sqlx::query("ANALYZE apalis.jobs")
        .execute(&pool)
        .await
        .unwrap();
    let lookup = "SELECT count(*) FROM apalis.jobs
                  WHERE job_type IN ('hash', 'exif', 'thumbnail', 'video') AND status <> 'Done'
                    AND timeline_task_media_id(job) = $1";
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {lookup}")))
        .bind(&wanted)
        .fetch_all(&pool)
        .await
        .unwrap();
    let plan = lines.join("\n");
    assert!(plan.contains("timeline_apalis_jobs_media"), "{plan}");
    let found: i64 = sqlx::query_scalar(lookup)
        .bind(&wanted)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(found, 1);
}

/// Every write of a task keeps each of the queue's indexes up to date, so none may repeat
/// another (apalis's first migration made two that later ones repeat), and the `lock_by`
/// index holds only tasks someone holds. Migrating twice keeps it so: the second run finds
/// nothing to drop and re-creates nothing.
#[sqlx::test(migrations = false)]
async fn the_queue_table_keeps_no_duplicate_index(pool: PgPool) {
    migrate(&pool).await;
    migrate(&pool).await;
    let duplicates: Vec<String> = sqlx::query_scalar(
        "SELECT string_agg(i.indexrelid::regclass::text, ' = ' ORDER BY 1)
         FROM pg_index i
         WHERE i.indrelid = 'apalis.jobs'::regclass
         GROUP BY i.indkey::text, i.indclass::text, pg_get_expr(i.indexprs, i.indrelid),
                  pg_get_expr(i.indpred, i.indrelid)
         HAVING count(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(duplicates.is_empty(), "duplicate indexes: {duplicates:?}");
    // The ones apalis's queries rely on are there.
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'apalis.jobs'::regclass",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for wanted in ["apalis.jobs_pkey", "apalis.timeline_apalis_jobs_lock_by"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "apalis.idx_apalis_jobs_lock_by"),
        "apalis's lock_by index gives way to ours: {names:?}"
    );
    // apalis reads a worker's tasks by `lock_by = $worker` (its acknowledgement, its sweeps):
    // a plan made for any worker, as a prepared statement's generic plan is, can read the
    // index that leaves out the tasks nobody holds.
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "SET LOCAL enable_seqscan = off",
        "SET LOCAL plan_cache_mode = force_generic_plan",
        "PREPARE held(text) AS SELECT id FROM apalis.jobs WHERE lock_by = $1",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE held('w1')")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert!(
        plan.iter()
            .any(|l| l.contains("timeline_apalis_jobs_lock_by")),
        "{plan:?}"
    );
}

/// The queue's indexes are built `CONCURRENTLY` (a plain build would hold off every write of
/// a live queue); a build that died half-way leaves its index invalid, and the next migrate
/// builds it again rather than keep it because its name exists.
#[sqlx::test(migrations = false)]
async fn migrate_builds_again_a_queue_index_left_invalid(pool: PgPool) {
    migrate(&pool).await;
    sqlx::query(
        "UPDATE pg_index SET indisvalid = false
         WHERE indexrelid = 'apalis.timeline_apalis_jobs_due'::regclass",
    )
    .execute(&pool)
    .await
    .unwrap();
    migrate(&pool).await;
    let indexes: Vec<(String, bool)> = sqlx::query_as(
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_index
         WHERE indrelid = 'apalis.jobs'::regclass AND indexrelid::regclass::text LIKE 'apalis.timeline_%'
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let names: Vec<&str> = indexes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "apalis.timeline_apalis_jobs_done_at",
            "apalis.timeline_apalis_jobs_due",
            "apalis.timeline_apalis_jobs_live",
            "apalis.timeline_apalis_jobs_lock_by",
            "apalis.timeline_apalis_jobs_media"
        ]
    );
    assert!(indexes.iter().all(|(_, valid)| *valid), "{indexes:?}");
}

/// A fetch costs the same at any depth of the queue and any history: it reads its task by
/// index and never scans `apalis.jobs`. Before, its update joined the fetched ids to the whole
/// table by hash once the queue was deep (the planner cannot know how few a CTE with a
/// computed LIMIT returns), and sorted every due bulk task to find the aged ones.
#[sqlx::test(migrations = false)]
async fn a_fetch_reads_its_task_by_index_from_a_deep_queue_and_a_long_history(pool: PgPool) {
    migrate(&pool).await;
    // 20,000 tasks waiting (half of them old enough to age) and 20,000 finished.
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                  priority, done_at)
         SELECT 'deep' || g, 'hash', '\\x7b7d'::bytea,
                CASE WHEN g <= 20000 THEN 'Pending' ELSE 'Done' END, 0, 25,
                now() - make_interval(secs => CASE WHEN g % 2 = 0 THEN 3600 ELSE 1 END), g % 7,
                CASE WHEN g > 20000 THEN now() END
         FROM generate_series(1, 40000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE apalis.jobs")
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for round in 0..8 {
        // More rounds than PL/pgSQL's custom plans (5): the cached generic plan is checked too.
        let worker = format!("deep-{round}");
        sqlx::query(
            "INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen)
             VALUES ($1, 'hash', 'pg', now())",
        )
        .bind(&worker)
        .execute(&mut *conn)
        .await
        .unwrap();
        // This backend's reads of the table, before and after the fetch, in one transaction
        // (the counts are flushed between transactions only).
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let reads = "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_all_tables
                     WHERE relid = 'apalis.jobs'::regclass";
        let before: (i64, i64) = sqlx::query_as(reads).fetch_one(&mut *tx).await.unwrap();
        let got: Vec<String> = sqlx::query_scalar("SELECT id FROM apalis.get_jobs($1, 'hash', 4)")
            .bind(&worker)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(got.len(), 4, "round {round}");
        let after: (i64, i64) = sqlx::query_as(reads).fetch_one(&mut *tx).await.unwrap();
        let (seq_scans, by_index) = (after.0 - before.0, after.1 - before.1);
        assert_eq!(seq_scans, 0, "round {round}: the fetch scanned apalis.jobs");
        assert!(
            by_index < 100,
            "round {round}: {by_index} rows read by index"
        );
        tx.commit().await.unwrap();
    }
}

#[sqlx::test(migrations = false)]
async fn aged_bulk_tasks_go_ahead_so_a_steady_upload_stream_cannot_starve_an_import(pool: PgPool) {
    migrate(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let set_ageing = |secs: f64| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO system_configuration (config_key, config_value, description)
                 VALUES ('jobs.bulk_ageing_secs', to_jsonb($1::float8), 'test')
                 ON CONFLICT (config_key) DO UPDATE SET config_value = EXCLUDED.config_value",
            )
            .bind(secs)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    // Two seconds: apalis stores `run_at` in whole seconds of the client's clock, so a task
    // queued late in a second looks up to a second older than it is.
    set_ageing(2.0).await;
    // An import of 12 files, queued before the uploads start.
    let import: Vec<MediaTask> = (0..12)
        .map(|i| {
            MediaTask::new(
                Uuid::new_v4(),
                Uuid::new_v4(),
                jobs::priority(jobs::Lane::Bulk, i),
            )
        })
        .collect();
    jobs::enqueue(&mut conn, Step::Hash, &import).await.unwrap();
    let import_ids: std::collections::HashSet<Uuid> =
        import.iter().map(|t| t.media_file_id).collect();
    let upload = |n: usize| -> Vec<MediaTask> {
        (0..n)
            .map(|_| {
                let prio = jobs::priority(jobs::Lane::Interactive, 0);
                MediaTask::new(Uuid::new_v4(), Uuid::new_v4(), prio)
            })
            .collect()
    };
    // Before the import has waited its ageing time, uploads take the whole batch.
    jobs::enqueue(&mut conn, Step::Hash, &upload(10))
        .await
        .unwrap();
    let first = fetch(&pool, "r0", "hash").await;
    assert!(
        first.iter().all(|id| !import_ids.contains(id)),
        "uploads first"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // A steady stream: every round brings a full batch of new uploads, more than the pool
    // takes. The import still finishes, at up to half of each batch, and every round serves
    // uploads too.
    let mut import_done = 0;
    for round in 0..10 {
        jobs::enqueue(&mut conn, Step::Hash, &upload(10))
            .await
            .unwrap();
        let worker = format!("r{}", round + 1);
        let got = fetch(&pool, &worker, "hash").await;
        let aged = got.iter().filter(|id| import_ids.contains(id)).count();
        assert!(aged <= 5, "ageing takes at most half a batch: {aged}");
        assert!(got.len() - aged >= 5, "uploads keep at least half");
        import_done += aged;
        // An express pool never takes the import's tasks, aged or not.
        let express = fetch(&pool, &format!("x{round}"), "hash:interactive").await;
        assert!(express.iter().all(|id| !import_ids.contains(id)));
        sqlx::query(
            "UPDATE apalis.jobs SET status = 'Done', done_at = now() WHERE status = 'Queued'",
        )
        .execute(&pool)
        .await
        .unwrap();
        if import_done == import.len() {
            break;
        }
    }
    assert_eq!(
        import_done,
        import.len(),
        "the import finished under the upload stream"
    );

    // A long ageing time (or a malformed one, which falls back to the default 600 s) leaves
    // the fixed order alone.
    let late = vec![MediaTask::new(
        Uuid::new_v4(),
        Uuid::new_v4(),
        jobs::priority(jobs::Lane::Bulk, 0),
    )];
    jobs::enqueue(&mut conn, Step::Hash, &late).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sqlx::query("UPDATE system_configuration SET config_value = '\"soon\"' WHERE config_key = 'jobs.bulk_ageing_secs'")
        .execute(&pool)
        .await
        .unwrap();
    jobs::enqueue(&mut conn, Step::Hash, &upload(10))
        .await
        .unwrap();
    let got = fetch(&pool, "r-late", "hash").await;
    assert!(
        !got.contains(&late[0].media_file_id),
        "not aged yet under the default"
    );
}

/// A run of an API import given back by the queue goes by the beat of the run before it, not
/// by `updated_at`, which every file of the import counted moves too: a dead run whose files
/// were just counted is taken over, and a live one makes the new task try again later
/// (`Interrupted`) instead of ending it, which would leave the import to the reconciler.
#[sqlx::test(migrations = false)]
async fn an_import_run_is_taken_over_by_its_beat_and_a_live_one_is_waited_for(pool: PgPool) {
    use timeline::import::api::{self, Outcome};
    migrate(&pool).await;
    let user = crate::common::user(&pool, "beat@example.org").await;
    let job: Uuid = sqlx::query_scalar(
        "INSERT INTO data_processing_jobs (user_id, job_type, status, sealed, input_data,
                                           output_data, started_at, run_beat_at, total_count)
         VALUES ($1, 'import', 'running', false,
                 jsonb_build_object('source', 'api', 'keys', jsonb_build_array('imports/x.zip')),
                 '{\"restart_total\": 0}', now() - interval '1 minute',
                 now() - interval '30 seconds', 2)
         RETURNING id",
    )
    .bind(user)
    .fetch_one(&pool)
    .await
    .unwrap();
    // A file of the dead run is counted just now: updated_at moves, the beat does not.
    sqlx::query("UPDATE data_processing_jobs SET completed_count = 1 WHERE id = $1")
        .bind(job)
        .execute(&pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let claimed = timeline::db::jobs::claim_api_import(&mut conn, job)
        .await
        .unwrap()
        .expect("a dead run is taken over");
    assert_eq!(claimed.restarts, 1);

    // The claim beats for the new run: a second task given back meanwhile does not run it
    // and does not end; the job stays open, waiting for it.
    assert!(
        timeline::db::jobs::claim_api_import(&mut conn, job)
            .await
            .unwrap()
            .is_none()
    );
    // The run ends before it reads the store; a folder that is never made will do.
    let store = std::env::temp_dir().join(format!("timeline-test-{}", Uuid::new_v4()));
    let storage = timeline::storage::Storage::from_url(store.to_str().unwrap()).unwrap();
    let outcome = api::run(&pool, &storage, job).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Interrupted(why) if why.contains("alive")),
        "{outcome:?}"
    );
    let (status, sealed): (String, bool) =
        sqlx::query_as("SELECT status, sealed FROM data_processing_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), sealed), ("running", false));

    // Once the job is no open import any more, a late task ends quietly.
    timeline::db::jobs::fail_open(&mut conn, job, "given up")
        .await
        .unwrap();
    assert_eq!(api::run(&pool, &storage, job).await.unwrap(), Outcome::Done);
}
