//! A read replica: `timeline serve` with `DATABASE_READ_URL` on a real streaming replica
//! (`scripts/replica.sh`: a primary and a hot standby of it, clusters of their own, since a
//! standby replicates a whole server and the tests' server holds every test's database).
//! - while the replica keeps up, job polls, media lists and details are answered there (its
//!   own transaction counter moves), and a job created a moment ago is found all the same;
//! - with its replay paused, reads go to the primary once the lag bound has passed, so no
//!   answer is staler than the bound; resumed, they go back to it;
//! - with the replica gone, every read is still answered, by the primary.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use crate::common::{TestApp, free_port, photo};

/// The bound the test's web process is given.
const MAX_LAG: Duration = Duration::from_millis(1000);

/// A primary and its streaming replica; both stopped and removed on drop.
struct Pair {
    dir: PathBuf,
    primary: u16,
    replica: u16,
}

impl Pair {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("timeline-replica-{}", uuid::Uuid::new_v4()));
        let (primary, replica) = (free_port(), free_port());
        let status = Command::new("bash")
            .arg(script())
            .args(["start", dir.to_str().expect("utf-8")])
            .args([primary.to_string(), replica.to_string()])
            .status()
            .expect("scripts/replica.sh");
        assert!(status.success(), "scripts/replica.sh start failed");
        Self {
            dir,
            primary,
            replica,
        }
    }

    fn url(port: u16, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{db}")
    }

    /// Stops the replica's server at once (as a crash would).
    fn kill_replica(&self) {
        let status = Command::new("bash")
            .arg(script())
            .args(["kill-replica", self.dir.to_str().expect("utf-8")])
            .status()
            .expect("scripts/replica.sh");
        assert!(status.success(), "could not stop the replica");
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.to_str().unwrap_or_default()])
            .status();
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/replica.sh")
}

/// A counter or gauge of the web process's `/metrics`, summed over the lines that carry every
/// one of `labels` (0 when none does).
async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> f64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn on_replica(app: &TestApp) -> f64 {
    metric(
        app,
        "timeline_replica_reads_total",
        &[r#"served_by="replica""#],
    )
    .await
}

/// Transactions the replica's server has committed in the test's database.
async fn replica_commits(replica: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(replica)
    .await
    .expect("pg_stat_database")
}

/// The media the user's list shows, by id.
async fn listed(app: &TestApp, token: &str) -> Vec<String> {
    let (status, page) = app.get(token, "/v1/media?limit=200").await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn upload_one(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> (String, String) {
    let (status, body) = app.upload(token, &[(name, bytes)]).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job id").to_owned();
    let media = body["media"][0]["id"]
        .as_str()
        .expect("media id")
        .to_owned();
    (job, media)
}

/// Runs a statement on the replica's server (replay control).
async fn on_standby(replica: &PgPool, sql: &'static str) {
    sqlx::query(sql).execute(replica).await.expect(sql);
}

#[tokio::test]
async fn reads_go_to_a_fresh_replica_and_never_past_its_lag_bound() {
    let pair = Pair::start();
    let primary_url = Pair::url(pair.primary, "timeline");
    timeline::db::migrate::create_database_if_missing(&primary_url)
        .await
        .expect("create database");
    let pool = PgPool::connect(&primary_url).await.expect("primary");
    let mut app = TestApp::start_with_url(pool, primary_url.clone()).await;
    app.start_worker(&[]);
    let replica_url = Pair::url(pair.replica, "timeline");
    let lag = MAX_LAG.as_millis().to_string();
    let serve = app
        .spawn_serve_env(&[
            ("DATABASE_URL", primary_url.as_str()),
            ("DATABASE_READ_URL", replica_url.as_str()),
            ("DATABASE_READ_MAX_LAG_MS", lag.as_str()),
        ])
        .await;
    app.base = serve.base.clone();
    let (_, token) = app.user("reader@example.org").await;
    // The database and the user were made on the primary; the standby replays them.
    let replica = PgPool::connect(&replica_url).await.expect("replica");

    // 1. A replica that keeps up answers the reads, and a job made a moment ago is found.
    let (job, media) = upload_one(&app, &token, "a.jpg", photo("landscape_1.jpg")).await;
    let (status, body) = app.get(&token, &format!("/v1/jobs/{job}")).await;
    assert_eq!(status, 200, "a job just created is found: {body}");
    app.wait_job(&token, &job, Duration::from_secs(60)).await;
    let (before_commits, before_reads) = (replica_commits(&replica).await, on_replica(&app).await);
    for _ in 0..20 {
        assert_eq!(listed(&app, &token).await, vec![media.clone()]);
        let (status, m) = app.get(&token, &format!("/v1/media/{media}")).await;
        assert_eq!(
            (status, m["processing_status"].as_str()),
            (200, Some("completed")),
            "{m}"
        );
        // A poll is one statement (`db::poll`), on the replica too.
        let (status, j) = app.get(&token, &format!("/v1/jobs/{job}")).await;
        assert_eq!(
            (status, j["status"].as_str()),
            (200, Some("completed")),
            "{j}"
        );
    }
    let served = on_replica(&app).await - before_reads;
    assert!(served >= 60.0, "60 reads, {served} answered by the replica");
    // A backend flushes its counters when idle, within 10 s (PostgreSQL 15's statistics).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let committed = replica_commits(&replica).await - before_commits;
        if committed >= 60 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica's server committed {committed} transactions for 60 reads"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let staleness = metric(&app, "timeline_replica_staleness_seconds", &[]).await;
    assert!(
        staleness < MAX_LAG.as_secs_f64(),
        "staleness bound {staleness}"
    );

    // 2. Replay paused: once the bound has passed, reads are the primary's, never staler.
    on_standby(&replica, "SELECT pg_wal_replay_pause()").await;
    let paused = Instant::now();
    let (job2, media2) = upload_one(&app, &token, "b.jpg", photo("landscape_5.jpg")).await;
    let (status, body) = app.get(&token, &format!("/v1/jobs/{job2}")).await;
    assert_eq!(
        status, 200,
        "a job the replica has not replayed is found: {body}"
    );
    let (status, body) = app.get(&token, &format!("/v1/media/{media2}")).await;
    assert_eq!(
        status, 200,
        "a file the replica has not replayed is found: {body}"
    );
    // The bound, plus a sampling period and margin for a loaded machine.
    tokio::time::sleep((MAX_LAG + Duration::from_millis(500)).saturating_sub(paused.elapsed()))
        .await;
    let before = on_replica(&app).await;
    for _ in 0..10 {
        let ids = listed(&app, &token).await;
        assert!(
            ids.contains(&media2),
            "a read past the bound missed a new file: {ids:?}"
        );
    }
    assert_eq!(
        on_replica(&app).await,
        before,
        "the lagging replica answered reads"
    );
    let lagging = metric(
        &app,
        "timeline_replica_reads_total",
        &[r#"reason="lagging""#],
    )
    .await;
    assert!(
        lagging >= 10.0,
        "reads counted as sent to the primary for lag: {lagging}"
    );
    app.wait_job(&token, &job2, Duration::from_secs(60)).await;

    // 3. Replay resumed: reads go back to the replica.
    on_standby(&replica, "SELECT pg_wal_replay_resume()").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = on_replica(&app).await;
    loop {
        let ids = listed(&app, &token).await;
        assert_eq!(ids.len(), 2, "{ids:?}");
        if on_replica(&app).await > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reads never went back to the replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 4. The replica gone: every read is answered, by the primary.
    replica.close().await;
    pair.kill_replica();
    for _ in 0..20 {
        let (status, m): (u16, Value) = app.get(&token, &format!("/v1/media/{media2}")).await;
        assert_eq!(status, 200, "{m}");
        let (status, j) = app.get(&token, &format!("/v1/jobs/{job}")).await;
        assert_eq!(status, 200, "{j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(serve);
}
