//! A step acknowledges its queue task in its own final transaction (`timeline_workers::ack`):
//! the row apalis would have written, committed with the step's record, and no
//! acknowledgement transaction of its own.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use timeline_workers::ack::{Acked, Current, commit_done_many};

use timeline::db::bench as bench_db;

use crate::common::{TestApp, fixtures, url_of};
use crate::pooler::Bouncer;

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

/// The bench drains no-op tasks through the real pools' backend: a record each, the
/// acknowledgement inside it, and a fetch for at most each (a fetch takes every free slot's
/// task). Before, apalis's own acknowledgement added a transaction per task (3.0 measured;
/// at most 2.0 now, plus heartbeats and empty polls).
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
    let tasks = [("t1", "w-a"), ("t2", "w-a"), ("t3", "w-b")];
    insert_tasks(&pool, "group-test", &tasks).await;
    let acked = Acked::default();
    let current = |id: &str| Current {
        task_id: id.to_owned(),
        worker: "w-a".to_owned(),
        attempt: 1,
        acked: acked.clone(),
    };
    let tasks = [current("t1"), current("t2"), current("t3")];
    let tx = timeline_core::db::tx::TxPool::from(pool.clone())
        .begin()
        .await
        .expect("begin");
    commit_done_many(tx, &tasks)
        .await
        .expect("commit the group");
    let rows = statuses(&pool, "group-test").await;
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

/// The unbatched bench behind a real transaction pooler (PgBouncer 1.18, which fails any
/// statement run outside a transaction there): its one-statement record and acknowledgement
/// goes in a transaction of its own, and every task is recorded and acknowledged. The pools'
/// connections go back without sqlx's release ping (`db::tx`): through the pooler each ping
/// was a server transaction too: 934 for 300 tasks before, 465 now.
#[sqlx::test(migrations = false)]
async fn the_bench_drains_behind_a_transaction_pooler(pool: PgPool) {
    const TASKS: i64 = 300;
    let bouncer = Bouncer::start(4);
    let url = url_of(&pool);
    let pooled = bouncer.url_for(&url);
    let envs = [
        ("DATABASE_URL", pooled.as_str()),
        ("DATABASE_SESSION_URL", &url),
    ];
    let database = pool
        .connect_options()
        .get_database()
        .expect("database")
        .to_owned();
    let tasks = TASKS.to_string();
    let args = ["--tasks", tasks.as_str(), "--concurrency", "4"];
    let report = bench_with(&pool, &args, &envs).await;
    assert_eq!(report["pooled"], true, "{report}");
    assert_eq!(report["recorded"], TASKS, "a record per task: {report}");
    // All of the bench's work through the pooler: the enqueue, the worker's registration and
    // heartbeats, each fetch (several tasks, or none at the end) and each task's record.
    let served = bouncer.transactions(&database);
    assert!(
        served <= 2 * TASKS,
        "{served} server transactions for {TASKS} tasks: a ping of their own again?"
    );
    assert!(
        !bouncer.log().contains("prepared statement"),
        "{}",
        bouncer.log()
    );
}

/// The unbatched record: one statement records the step and marks the task `Done` only while
/// its worker holds it; a task another worker holds is recorded and left to apalis.
#[sqlx::test(migrations = false)]
async fn one_statement_records_a_step_and_acknowledges_only_a_held_task(pool: PgPool) {
    timeline::db::migrate::run(&pool).await.expect("migrate");
    insert_tasks(&pool, "one-test", &[("t1", "w-a"), ("t2", "w-b")]).await;
    let table = "bench_steps_one_test";
    bench_db::create_table(&pool, table).await.expect("table");
    let record =
        |n, attempt, task| bench_db::record_acknowledged(&pool, table, (n, attempt), (task, "w-a"));
    let held = record(1, 1, "t1").await.expect("record t1");
    let other = record(2, 1, "t2").await.expect("record t2");
    assert_eq!((held, other), (true, false));
    assert_eq!(
        statuses(&pool, "one-test").await,
        [
            ("t1".into(), "Done".into()),
            ("t2".into(), "Running".into())
        ]
    );
    let recorded = || bench_db::recorded(&pool, table);
    assert_eq!(recorded().await.expect("count the records"), 2);
    // Again, as a step run twice would: still one record each, and a task already `Done`
    // (its holder released) is not marked again.
    let again = record(1, 2, "t1").await.expect("record t1 again");
    assert!(!again, "t1 is already Done");
    assert_eq!(recorded().await.expect("count the records"), 2);
}

/// Registers workers `w-a` and `w-b` of `queue` and inserts tasks there, `Running` and held by
/// the worker named with each.
async fn insert_tasks(pool: &PgPool, queue: &str, tasks: &[(&str, &str)]) {
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
         VALUES ('w-a', $1, 'PgStorage', '', now()), ('w-b', $1, 'PgStorage', '', now())",
    )
    .bind(queue)
    .execute(pool)
    .await
    .expect("register the workers");
    for (id, holder) in tasks {
        sqlx::query(
            "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, lock_by, lock_at)
             VALUES (convert_to('{}', 'UTF8'), $1, $3, 'Running', 1, 5, $2, now())",
        )
        .bind(id)
        .bind(holder)
        .bind(queue)
        .execute(pool)
        .await
        .expect("insert a task");
    }
}

/// The (id, status) of `queue`'s tasks, by id.
async fn statuses(pool: &PgPool, queue: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT id, status FROM apalis.jobs WHERE job_type = $1 ORDER BY id")
        .bind(queue)
        .fetch_all(pool)
        .await
        .expect("read the tasks")
}

/// Migrates `pool`'s database, runs `timeline-worker bench` with `args` on it and checks that
/// it cleaned its queue; its report.
async fn bench(pool: &PgPool, args: &[&str]) -> Value {
    bench_with(pool, args, &[]).await
}

/// [`bench`] with `envs` set for the bench's process (after `DATABASE_URL`, which they may
/// replace).
async fn bench_with(pool: &PgPool, args: &[&str], envs: &[(&str, &str)]) -> Value {
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
        .envs(envs.iter().copied())
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
