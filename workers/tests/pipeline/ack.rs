//! A step acknowledges its queue task in its own final transaction (`timeline_workers::ack`):
//! the row apalis would have written, committed with the step's record, and no
//! acknowledgement transaction of its own.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use timeline_workers::ack::{Acked, Current, commit_done_many};

use crate::common::{TestApp, fixtures, url_of};

/// The queue rows of a file's step tasks, once none is live: (queue, status, attempts,
/// last_result, lock holder left, worker that finished it, done_at = the step record's time).
async fn finished_tasks(
    pool: &PgPool,
    media: &str,
) -> Vec<(String, String, i32, Value, bool, bool, bool)> {
    let started = Instant::now();
    loop {
        let rows: Vec<(String, String, i32, Value, bool, bool, bool)> = sqlx::query_as(
            "SELECT j.job_type, j.status, j.attempts, j.last_result, j.lock_by IS NULL,
                    j.metadata -> 'done_by' IS NOT NULL,
                    j.done_at = s.completed_at
             FROM apalis.jobs j
             JOIN media_processing_steps s
               ON s.media_file_id::text = public.timeline_task_media_id(j.job)
              AND s.step = j.job_type
             WHERE public.timeline_task_media_id(j.job) = $1
             ORDER BY j.job_type",
        )
        .bind(media)
        .fetch_all(pool)
        .await
        .expect("tasks");
        if rows.len() == 3 && rows.iter().all(|r| r.1 == "Done") {
            return rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tasks never all done: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn each_step_acknowledges_its_task_in_the_transaction_that_records_it(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (_, token) = app.user("ack@example.org").await;
    let bytes = std::fs::read(fixtures().join("DSCN0010.jpg")).unwrap();
    let (status, body) = app.upload(&token, &[("a.jpg", bytes)]).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().unwrap();
    app.wait_job(&token, job, Duration::from_secs(60)).await;
    let media = body["media"][0]["id"].as_str().unwrap();

    let rows = finished_tasks(&app.pool, media).await;
    let queues: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(queues, ["exif", "hash", "thumbnail"], "{rows:?}");
    for (queue, status, attempts, result, released, done_by, same_tx) in &rows {
        assert_eq!(status, "Done", "{queue}");
        assert_eq!(*attempts, 1, "{queue}");
        // What apalis-postgres writes for a step that returns nothing.
        assert_eq!(*result, serde_json::json!({"Ok": null}), "{queue}");
        assert!(
            *released && *done_by,
            "{queue}: the worker moves to done_by"
        );
        // `now()` is the transaction's start: equal times mean one transaction.
        assert!(*same_tx, "{queue}: acknowledged apart from its step record");
    }
}

/// The bench drains no-op tasks through the real pools' backend: a fetch and a record each,
/// the acknowledgement inside the record. Before, apalis's own acknowledgement added a
/// transaction per task (3.0 measured; 2.0 now, plus heartbeats and empty polls).
#[sqlx::test(migrations = false)]
async fn the_bench_acknowledges_each_task_in_its_record(pool: PgPool) {
    let report = bench(&pool, &["--tasks", "1000", "--concurrency", "4"]).await;
    assert_eq!(report["tasks"], 1000, "{report}");
    assert_eq!(report["recorded"], 1000, "a record per task: {report}");
    let per_task = report["db_transactions_per_task"].as_f64().unwrap();
    assert!(
        (1.0..2.5).contains(&per_task),
        "a fetch and a record per task: {report}"
    );
}

/// The batched path: a poll fetches many tasks and the records of the tasks finishing
/// together commit in one transaction with their acknowledgements. Every task is recorded
/// once and acknowledged, in far fewer transactions than tasks.
#[sqlx::test(migrations = false)]
async fn the_batched_bench_commits_records_and_acknowledgements_in_groups(pool: PgPool) {
    let report = bench(
        &pool,
        &["--tasks", "2000", "--batch", "50", "--concurrency", "50"],
    )
    .await;
    assert_eq!(report["tasks"], 2000, "{report}");
    assert_eq!(report["recorded"], 2000, "a record per task: {report}");
    let per_task = report["db_transactions_per_task"].as_f64().unwrap();
    // Unbatched, a task costs two (its fetch and its record): a group of even 4 tasks
    // brings it under a half.
    assert!(per_task < 0.5, "records committed in groups: {report}");
}

/// A group's acknowledgement marks `Done` only the tasks their worker still holds, as a single
/// step's does: a task the heartbeat sweep gave to another worker is left to it, and only
/// the tasks marked are taken as acknowledged.
#[sqlx::test(migrations = false)]
async fn a_group_acknowledges_only_the_tasks_its_workers_hold(pool: PgPool) {
    timeline::db::migrate::run(&pool).await.expect("migrate");
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
         VALUES ('w-a', 'group-test', 'PgStorage', '', now()), ('w-b', 'group-test', 'PgStorage', '', now())",
    )
    .execute(&pool)
    .await
    .expect("register the workers");
    for (id, holder) in [("t1", "w-a"), ("t2", "w-a"), ("t3", "w-b")] {
        sqlx::query(
            "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, lock_by, lock_at)
             VALUES (convert_to('{}', 'UTF8'), $1, 'group-test', 'Running', 1, 5, $2, now())",
        )
        .bind(id)
        .bind(holder)
        .execute(&pool)
        .await
        .expect("insert a task");
    }
    let acked = Acked::default();
    let current = |id: &str| Current {
        task_id: id.to_owned(),
        worker: "w-a".to_owned(),
        attempt: 1,
        acked: acked.clone(),
    };
    let tasks = [current("t1"), current("t2"), current("t3")];
    let tx = pool.begin().await.expect("begin");
    commit_done_many(tx, &tasks)
        .await
        .expect("commit the group");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, status FROM apalis.jobs WHERE job_type = 'group-test' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("read the tasks");
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(rows, [("t1", "Done"), ("t2", "Done"), ("t3", "Running")]);
    assert!(
        acked.take("t1") && acked.take("t2"),
        "the marked tasks are acknowledged"
    );
    assert!(
        !acked.take("t3"),
        "t3 is left to apalis's own acknowledgement"
    );
}

/// Migrates `pool`'s database, runs `timeline-worker bench` with `args` on it and checks that
/// it cleaned its queue; its report.
async fn bench(pool: &PgPool, args: &[&str]) -> Value {
    // The migration (~130 transactions) runs on connections of its own, gone before the bench
    // starts: a backend reports its counts up to a second after its last transaction, and
    // those would otherwise land in the bench's window, the likelier the busier the machine.
    let url = url_of(pool);
    let migrator = PgPool::connect(&url).await.expect("connect");
    timeline::db::migrate::run(&migrator)
        .await
        .expect("migrate");
    migrator.close().await;
    others_gone(pool).await;
    let out = Command::new(env!("CARGO_BIN_EXE_timeline-worker"))
        .arg("bench")
        .args(args)
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the bench cleans its queue");
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// Waits until no client but this one is connected to the test's database: a backend writes
/// its statistics as it exits, before it leaves `pg_stat_activity`.
async fn others_gone(pool: &PgPool) {
    let started = Instant::now();
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .fetch_one(pool)
        .await
        .expect("read pg_stat_activity");
        if others == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{others} connections stay open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
