//! Crash safety with real processes: `kill -9` of a worker mid-batch, SIGTERM while steps
//! are in flight, and a worker cut off from the database mid-transaction (then back). A new
//! worker must bring every media file to its end state (within 60 s of starting, for kill
//! -9), with no duplicate rows, no stray stored objects, and no status moving backwards.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::common::{KilledOnDrop, TestApp, database_settings, fixtures, peak_rss, url_of, walk};
use crate::proxy::Proxy;

/// `n` distinct 9 MP JPEGs: the same photo with a different trailer after its end marker
/// (decoders ignore it; the hash differs, so none is a duplicate). Slow enough in a debug
/// build that a batch is still running when the worker is killed.
fn distinct_photos(n: usize) -> Vec<(String, Vec<u8>)> {
    let base = std::fs::read(fixtures().join("HMD_Nokia_8.3_5G.jpg")).unwrap();
    (0..n)
        .map(|i| {
            let mut bytes = base.clone();
            bytes.extend_from_slice(format!("trailer-{i}").as_bytes());
            (format!("nokia-{i}.jpg"), bytes)
        })
        .collect()
}

/// Uploads `n` distinct photos in one request; returns the 202 body.
async fn upload_photos(app: &TestApp, token: &str, n: usize) -> serde_json::Value {
    let photos = distinct_photos(n);
    let files: Vec<(&str, Vec<u8>)> = photos
        .iter()
        .map(|(name, b)| (name.as_str(), b.clone()))
        .collect();
    let (status, body) = app.upload(token, &files).await;
    assert_eq!(status, 202, "{body}");
    body
}

async fn status_counts(pool: &PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT processing_status, count(*) FROM media_files GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Rank of a status in the lifecycle, to check nothing moves backwards.
fn rank(status: &str) -> u8 {
    match status {
        "pending" => 0,
        "processing" => 1,
        _ => 2,
    }
}

/// Polls until every media file is in an end state, checking each file's status only moves
/// forward. Returns how long it took.
async fn wait_all_final(pool: &PgPool, timeout: Duration) -> Duration {
    let started = Instant::now();
    let mut seen: HashMap<uuid::Uuid, u8> = HashMap::new();
    loop {
        let rows: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT id, processing_status FROM media_files")
                .fetch_all(pool)
                .await
                .unwrap();
        for (id, status) in &rows {
            let r = rank(status);
            let before = seen.insert(*id, r).unwrap_or(0);
            assert!(r >= before, "{id} moved backwards to {status}");
        }
        if rows.iter().all(|(_, s)| rank(s) == 2) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "not all final after {timeout:?}: {:?}",
            status_counts(pool).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Nothing twice: one step record per (file, step), one location per place, exactly the
/// three objects of every completed file in the store and nothing else.
async fn assert_no_duplicates(app: &TestApp, n: usize) {
    let counts = status_counts(&app.pool).await;
    assert_eq!(counts.get("completed"), Some(&(n as i64)), "{counts:?}");
    let dup_steps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM media_processing_steps
                               GROUP BY media_file_id, step HAVING count(*) > 1) d",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(dup_steps, 0);
    let steps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM media_processing_steps WHERE status = 'succeeded'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        steps,
        3 * n as i64,
        "hash, exif and thumbnail once per file"
    );
    let stored = walk(&app.storage_dir);
    assert_eq!(
        stored.len(),
        3 * n,
        "original + thumb + preview per file, no strays: {stored:?}"
    );
}

/// Starts a fresh worker and checks it brings all `n` files of the upload `body` to
/// `completed` within 60 s, with nothing duplicated; returns how long that took.
async fn finish_with_new_worker(
    app: &mut TestApp,
    token: &str,
    body: &serde_json::Value,
    n: usize,
) -> Duration {
    app.start_worker(&["--concurrency", "2"]);
    let took = wait_all_final(&app.pool, Duration::from_secs(60)).await;
    assert_no_duplicates(app, n).await;
    let job = app
        .wait_job(
            token,
            body["job"]["id"].as_str().unwrap(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(job["output_data"]["completed"], n);
    took
}

#[sqlx::test(migrations = false)]
async fn kill_9_mid_batch_recovers_within_60s(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    app.start_worker(&["--concurrency", "1"]);
    let (_, token) = app.user("crash@example.org").await;
    let n = 24;
    let body = upload_photos(&app, &token, n).await;

    // Kill once work is under way but far from done.
    let started = Instant::now();
    loop {
        let counts = status_counts(&app.pool).await;
        if counts.get("completed").copied().unwrap_or(0) >= 2 {
            assert!(
                counts.get("completed").copied().unwrap_or(0) < n as i64,
                "the batch finished before the kill; make it longer: {counts:?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.signal_worker("KILL");
    assert_eq!(app.wait_worker_exit(Duration::from_secs(10)), Some(false));
    let at_kill = status_counts(&app.pool).await;

    let recovery = finish_with_new_worker(&mut app, &token, &body, n).await;
    eprintln!("kill -9 at {at_kill:?}; every file final {recovery:?} after the new worker started");
}

/// Queue tasks not yet `Done`.
async fn open_tasks(pool: &PgPool) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as("SELECT job_type, status, lock_by FROM apalis.jobs WHERE status <> 'Done'")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Whether a pool of worker process `pid` has heartbeated since `epoch` (seconds).
async fn beat_since(pool: &PgPool, pid: u32, epoch: f64) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM apalis.workers
                        WHERE id LIKE '%-' || $1 || '-%' AND extract(epoch FROM last_seen) > $2)",
    )
    .bind(pid.to_string())
    .bind(epoch)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A worker host cut off from the database in the middle of a step's final transaction (a
/// partition, or a host that lost power: no FIN, no RST, so PostgreSQL is never told) holds
/// nothing up: the server ends its idle transaction after `idle_in_transaction_session_timeout`
/// (5 minutes as migrated, 5 s here) and the file's row is free again; its tasks return to the
/// queue after the heartbeat timeout and another worker finishes every file. When the link
/// comes back the cut worker carries on, and what it finishes late duplicates nothing and
/// moves nothing back.
#[sqlx::test(migrations = false)]
async fn a_worker_cut_off_mid_transaction_holds_nothing_up_and_its_late_finish_changes_nothing(
    pool: PgPool,
) {
    let mut app = TestApp::start(pool, false).await;
    let settings = database_settings(&app.pool).await;
    assert!(
        settings
            .iter()
            .any(|s| s == "idle_in_transaction_session_timeout=5min"),
        "as migrated: {settings:?}"
    );
    sqlx::query(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = 5000', current_database()); END $$",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let direct = url::Url::parse(&url_of(&app.pool)).expect("url");
    let proxy = Proxy::start(direct.port().unwrap_or(5432)).await;
    let mut through = direct.clone();
    through.set_host(Some("127.0.0.1")).expect("host");
    through.set_port(Some(proxy.port)).expect("port");
    // In clear: the proxy must see the statement go by.
    through.query_pairs_mut().append_pair("sslmode", "disable");
    // The link goes silent as the server answers the thumbnail step's UPDATE of its file: the
    // row is locked, and the client waits for an answer that does not come.
    proxy.partition_at_update(b"UPDATE media_files SET width");
    // A worker process of its own (the app's is another).
    let mut cut = KilledOnDrop(
        Command::new(env!("CARGO_BIN_EXE_timeline-worker"))
            .args(["--concurrency", "1"])
            .env("DATABASE_URL", through.as_str())
            .env("TIMELINE_STORAGE", &app.storage_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("timeline-worker"),
    );
    let (_, token) = app.user("cut-off@example.org").await;
    let n = 6;
    let body = upload_photos(&app, &token, n).await;
    let started = Instant::now();
    while !proxy.partitioned() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the worker never reached a thumbnail's final transaction: {:?}",
            status_counts(&app.pool).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = cut.0.id();
    let held_by_cut = |tasks: &[(String, String, Option<String>)]| {
        let mark = format!("-{pid}-");
        tasks
            .iter()
            .filter(|(_, status, by)| {
                status == "Running" && by.as_ref().is_some_and(|b| b.contains(&mark))
            })
            .count()
    };
    assert!(
        held_by_cut(&open_tasks(&app.pool).await) >= 1,
        "the cut worker holds its step's task"
    );

    // Every row is free within seconds: the cut worker's transactions ended on the server.
    let waited = Instant::now();
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '20s'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let locked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM media_files FOR UPDATE) r")
            .fetch_one(&mut *tx)
            .await
            .expect("the cut worker's row lock outlived its transaction's idle timeout");
    tx.rollback().await.unwrap();
    assert_eq!(locked, n as i64);
    let freed = waited.elapsed();
    assert!(freed < Duration::from_secs(15), "rows locked for {freed:?}");

    // Another worker finishes everything, the cut worker's tasks too once they return.
    let took = finish_with_new_worker(&mut app, &token, &body, n).await;
    let started = Instant::now();
    loop {
        let open = open_tasks(&app.pool).await;
        if open.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "tasks never acknowledged: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The link comes back: the cut worker hears that its sessions ended, carries on (its
    // heartbeat shows it is back), and finds nothing left to do. Nothing it does then shows.
    let back_at: f64 = sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    proxy.partition(false);
    let back = Instant::now();
    let mut heard: Option<Duration> = None;
    while heard.is_none_or(|at| back.elapsed() < at + Duration::from_secs(5)) {
        let statuses = status_counts(&app.pool).await;
        assert_eq!(
            statuses.get("completed"),
            Some(&(n as i64)),
            "a status moved back: {statuses:?}"
        );
        if heard.is_none() && beat_since(&app.pool, pid, back_at).await {
            heard = Some(back.elapsed());
        }
        assert!(
            heard.is_some() || back.elapsed() < Duration::from_secs(30),
            "the cut worker never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        matches!(cut.0.try_wait(), Ok(None)),
        "the cut worker keeps running"
    );
    assert_eq!(
        open_tasks(&app.pool).await,
        vec![],
        "a late finish reopened a task"
    );
    assert_no_duplicates(&app, n).await;
    eprintln!(
        "rows free {freed:?} after the cut; every file final {took:?} after the second worker started; the cut worker heartbeat {heard:?} after its link came back"
    );
}

#[sqlx::test(migrations = false)]
async fn sigterm_drains_or_requeues_in_flight_steps(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    app.start_worker(&["--concurrency", "1"]);
    let (_, token) = app.user("term@example.org").await;
    let n = 12;
    let body = upload_photos(&app, &token, n).await;
    let started = Instant::now();
    while status_counts(&app.pool)
        .await
        .get("completed")
        .copied()
        .unwrap_or(0)
        < 1
    {
        assert!(started.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.signal_worker("TERM");
    assert_eq!(
        app.wait_worker_exit(Duration::from_secs(40)),
        Some(true),
        "SIGTERM: the worker exits cleanly within its grace period"
    );
    // A new worker finishes the rest, quickly: nothing was left locked by the old one.
    let took = finish_with_new_worker(&mut app, &token, &body, n).await;
    eprintln!("after SIGTERM, the rest finished in {took:?}");
}

#[sqlx::test(migrations = false)]
async fn a_hanging_step_is_cut_off_and_the_pool_moves_on(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    // An 81 MP blank PNG (inside the pixel limit, so it is decoded into ~240 MB of pixels)
    // takes seconds; a half-second deadline stands in for a decoder that never returns.
    app.start_worker(&["--concurrency", "1", "--step-timeout-secs", "0.5"]);
    let worker = app.worker.as_ref().expect("worker").id();
    let (_, token) = app.user("slow@example.org").await;
    // A first photo warms the worker up (its decoder child, geocoder tables): the baseline.
    let warm = std::fs::read(fixtures().join("DSCN0010.jpg")).unwrap();
    let (_, body) = app.upload(&token, &[("warm.jpg", warm)]).await;
    let job = app
        .wait_job(
            &token,
            body["job"]["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["output_data"]["completed"], 1, "{job}");
    let baseline = peak_rss(worker);

    let slow = std::fs::read(fixtures().join("slow/blank_81mp.png")).unwrap();
    let good = std::fs::read(fixtures().join("no_exif.jpg")).unwrap();
    let (status, body) = app
        .upload(&token, &[("slow.png", slow), ("good.jpg", good)])
        .await;
    assert_eq!(status, 202, "{body}");
    let job = app
        .wait_job(
            &token,
            body["job"]["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["output_data"]["failed"], 1, "{job}");
    assert_eq!(
        job["output_data"]["completed"], 1,
        "the pool moved on: {job}"
    );
    let slow_id = body["media"][0]["id"].as_str().unwrap();
    let (_, m) = app.get(&token, &format!("/v1/media/{slow_id}")).await;
    assert_eq!(m["processing_status"], "failed");
    let reason = m["error_message"].as_str().unwrap_or_default();
    assert!(reason.contains("took longer than"), "{reason}");
    assert!(app.worker_alive(), "the worker survives a hanging step");
    // The decode ran in a child that was killed at the deadline: the worker's own memory never
    // held the 240 MB of pixels (a thread left running would have), and no killed child lingers.
    let peak = peak_rss(worker);
    eprintln!("worker peak RSS: {baseline} B after a photo, {peak} B after the killed decode");
    assert!(
        peak < baseline + (64 << 20),
        "worker memory grew from {baseline} to {peak} bytes"
    );
    let children = decoder_children(worker);
    assert!(children.len() <= 1, "decoder children left: {children:?}");

    // An idle decoder child that dies (the OOM killer, an operator) does not fail the next photo.
    for pid in &children {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let next = std::fs::read(fixtures().join("landscape_1.jpg")).unwrap();
    let (_, body) = app.upload(&token, &[("next.jpg", next)]).await;
    let job = app
        .wait_job(
            &token,
            body["job"]["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["output_data"]["completed"], 1, "{job}");
}

/// Live decoder children of a worker process (a killed one is gone once reaped).
fn decoder_children(worker: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 4 (after the parenthesised name) is the parent; field 3 the state.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if fields.get(1) == Some(&worker.to_string().as_str())
            && fields.first() != Some(&"Z")
            && String::from_utf8_lossy(&cmdline).contains("__decoder")
        {
            found.push(pid);
        }
    }
    found
}

#[sqlx::test(migrations = false)]
async fn a_failed_file_is_listed_with_its_reason_and_retry_reprocesses_it(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (user, token) = app.user("retry@example.org").await;
    let bytes = std::fs::read(fixtures().join("DSCN0010.jpg")).unwrap();
    let (status, body) = app.upload(&token, &[("lost.jpg", bytes.clone())]).await;
    assert_eq!(status, 202, "{body}");
    let media = body["media"][0]["id"].as_str().unwrap().to_owned();
    // The stored original goes missing before any worker runs (a storage incident).
    let original = app
        .storage_dir
        .join(format!("media/{user}/{media}/original"));
    std::fs::remove_file(&original).unwrap();
    app.start_worker(&[]);
    let job = app
        .wait_job(
            &token,
            body["job"]["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["output_data"]["failed"], 1, "{job}");

    let (_, failed) = app.get(&token, "/v1/media?status=failed").await;
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{failed}");
    assert_eq!(items[0]["id"], media.as_str());
    assert!(
        items[0]["error_message"]
            .as_str()
            .is_some_and(|e| e.contains("missing")),
        "{failed}"
    );
    assert!(
        items[0]["attempts"].as_i64().is_some_and(|a| a >= 1),
        "{failed}"
    );

    // Restored: the user retries and the file completes; the list of failures empties.
    std::fs::write(&original, &bytes).unwrap();
    let resp = app
        .http
        .post(format!("{}/v1/media/{media}/retry", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let retried: serde_json::Value = resp.json().await.unwrap();
    let job = app
        .wait_job(
            &token,
            retried["job"]["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["output_data"]["completed"], 1, "{job}");
    let (_, m) = app.get(&token, &format!("/v1/media/{media}")).await;
    assert_eq!(m["processing_status"], "completed", "{m}");
    assert!(m["error_message"].is_null(), "{m}");
    let (_, failed) = app.get(&token, "/v1/media?status=failed").await;
    assert_eq!(failed["items"].as_array().map(Vec::len), Some(0));
    // Retrying a completed file is refused.
    let again = app
        .http
        .post(format!("{}/v1/media/{media}/retry", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
}

/// One source decides a task's attempts: the limit it was queued with. A reprocessing run
/// queues a file's EXIF step allowing 1 attempt, while the worker's own setting is 5; the step
/// fails transiently every time (the worker's store refuses connections). It gives up after
/// the one attempt, as the queue does, and says so; before, the worker asked for a retry the
/// queue would never run, and the file's step was left hanging.
#[sqlx::test(migrations = false)]
async fn a_task_gives_up_by_the_limit_it_was_queued_with(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("attempts@example.org").await;
    let photo = std::fs::read(fixtures().join("landscape_1.jpg")).expect("fixture");
    let (status, body) = app.upload(&token, &[("a.jpg", photo)]).await;
    assert_eq!(status, 202, "{body}");
    let media = body["media"][0]["id"].as_str().expect("media").to_owned();
    app.start_worker(&[]);
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    app.wait_job(&token, &job, Duration::from_secs(60)).await;

    // Nothing listens on this port: every read of the worker's store fails, transiently.
    let endpoint = format!("http://127.0.0.1:{}", crate::common::free_port());
    app.start_worker_env(
        &[],
        &[
            ("TIMELINE_MAX_ATTEMPTS", "5"),
            ("TIMELINE_STORAGE", "s3://photos/tl"),
            ("AWS_ENDPOINT", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    sqlx::query("UPDATE media_processing_steps SET pipeline_version = 0 WHERE step = 'exif'")
        .execute(&app.pool)
        .await
        .expect("age the exif record");
    let out = std::process::Command::new(crate::ingest_cli::timeline_bin())
        .args(["reprocess", "--missing", "--step", "exif"])
        .env("DATABASE_URL", crate::common::url_of(&app.pool))
        .env("TIMELINE_MAX_ATTEMPTS", "1")
        .output()
        .expect("reprocess");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let rjob = report["jobs"][0].as_str().expect("a job").to_owned();
    let done = app.wait_job(&token, &rjob, Duration::from_secs(60)).await;
    assert_eq!(done["output_data"]["failed"], 1, "{done}");
    let (_, m) = app.get(&token, &format!("/v1/media/{media}")).await;
    let reason = m["error_message"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("reprocessing failed (exif): gave up after 1 attempts"),
        "{m}"
    );
}
