//! A worker's database connections are capped by `DATABASE_MAX_CONNECTIONS` whatever its
//! concurrency (before, the pool grew with cores × queues: 100 connections on a 16-core host).

use std::time::Duration;

use sqlx::PgPool;

use crate::common::{TestApp, fixtures};

#[sqlx::test(migrations = false)]
async fn a_busy_worker_stays_within_its_connection_cap(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    app.start_worker(&["--concurrency", "6", "--database-max-connections", "7"]);
    let (_, token) = app.user("pool@example.org").await;
    let names = [
        "DSCN0010.jpg",
        "no_exif.jpg",
        "gps_sahara.jpg",
        "png_raw_profile_exif.png",
    ];
    let mut files = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut bytes = std::fs::read(fixtures().join(name)).expect("fixture");
        // Three copies of each, made distinct after the image data so none is a duplicate.
        for copy in 0..3 {
            let mut b = bytes.clone();
            b.extend_from_slice(format!("copy-{i}-{copy}").as_bytes());
            files.push((format!("{copy}-{name}"), b));
        }
        bytes.clear();
    }
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, body) = app.upload(&token, &refs).await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job"]["id"].as_str().expect("job").to_owned();

    // Watch the worker's connections while it works.
    let watch = {
        let pool = app.pool.clone();
        tokio::spawn(async move {
            let mut most = 0i64;
            for _ in 0..400 {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = 'timeline'",
                )
                .fetch_one(&pool)
                .await
                .expect("pg_stat_activity");
                most = most.max(n);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            most
        })
    };
    let job = app
        .wait_job(&token, &job_id, Duration::from_secs(120))
        .await;
    assert_eq!(job["output_data"]["completed"], 12, "{job}");
    let most = watch.await.expect("watch");
    // Seven in all, the process's one LISTEN connection included (4 queues × 6 steps in flight
    // would have opened 52 before).
    assert!(most <= 7, "the worker opened {most} connections");
    assert!(most >= 1, "the watch saw the worker");
}

#[sqlx::test(migrations = false)]
async fn a_cap_too_small_for_the_listener_and_steps_is_refused_at_start(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    app.start_worker(&["--database-max-connections", "2"]);
    assert_eq!(
        app.wait_worker_exit(Duration::from_secs(20)),
        Some(false),
        "the worker refuses to start with fewer connections than its listener and steps need"
    );
}
