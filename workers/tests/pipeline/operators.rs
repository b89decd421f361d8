//! Issue 8: what operators see and steer — Prometheus metrics (checked by `promtool`), live
//! job progress over SSE, priority lanes with real workers, `timeline reprocess`, and the
//! `/admin` dashboard driven by a real headless Chromium.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use crate::common::{TestApp, free_port, photo};

/// A tool the test needs: found, or (outside CI) the reason it is skipped.
fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var("CI").is_err(),
        "{tool} is missing (scripts/setup.sh installs it)"
    );
    if !found {
        eprintln!("SKIPPED: {tool} is missing; run scripts/setup.sh");
    }
    found
}

/// Runs `promtool check metrics` on an exposition; panics with its complaints.
fn promtool_check(text: &str, what: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "{what}: promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `name{labels}` (labels given as `k="v"` fragments that must all
/// appear), if present.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|f| l.contains(f)))
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let r = http.get(url).send().await.expect("scrape");
    assert_eq!(r.status(), 200, "{url}");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    r.text().await.expect("body")
}

#[sqlx::test(migrations = false)]
async fn metrics_of_web_and_worker_move_with_a_job_and_pass_promtool(pool: PgPool) {
    let have_promtool = require("promtool");
    let mut app = TestApp::start(pool, false).await;
    let port = free_port();
    app.start_worker(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let worker_url = format!("http://127.0.0.1:{port}/metrics");
    let (_, token) = app.user("metrics@example.org").await;

    // Before any job: the worker's gauges are there, its histograms are not.
    let mut before = String::new();
    for _ in 0..100 {
        if let Ok(r) = app.http.get(&worker_url).send().await {
            before = r.text().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(before.contains("timeline_queue_jobs"), "{before}");
    // The worker's listener serves that one route (hyper alone, no web framework).
    let other = app
        .http
        .get(format!("http://127.0.0.1:{port}/admin"))
        .send()
        .await
        .expect("worker answers");
    assert_eq!(other.status(), 404);
    let post = app
        .http
        .post(&worker_url)
        .send()
        .await
        .expect("worker answers");
    assert_eq!(post.status(), 405);

    let (status, body) = app
        .upload(&token, &[("landscape_1.jpg", photo("landscape_1.jpg"))])
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job id").to_owned();
    let done = app.wait_job(&token, &job, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");

    let web = scrape(&app.http, &format!("{}/metrics", app.base)).await;
    let worker = scrape(&app.http, &worker_url).await;
    if have_promtool {
        promtool_check(&web, "web");
        promtool_check(&worker, "worker");
    }
    // Web: the upload is counted by its route pattern, and timed.
    let posted = sample(
        &web,
        "timeline_http_requests_total",
        &[
            r#"method="POST""#,
            r#"route="/v1/media""#,
            r#"status="202""#,
        ],
    );
    assert_eq!(posted, Some(1.0), "{web}");
    let polled = sample(
        &web,
        "timeline_http_requests_total",
        &[r#"route="/v1/jobs/{id}""#, r#"status="200""#],
    );
    assert!(polled >= Some(1.0), "{web}");
    assert!(
        sample(
            &web,
            "timeline_http_request_duration_seconds_count",
            &[r#"route="/v1/media""#]
        ) >= Some(1.0),
        "{web}"
    );
    // Worker: each step ran once, after waiting in the interactive lane; the file counted.
    for step in ["hash", "exif", "thumbnail"] {
        let s = format!(r#"step="{step}""#);
        assert_eq!(
            sample(
                &worker,
                "timeline_step_duration_seconds_count",
                &[&s, r#"outcome="ok""#]
            ),
            Some(1.0),
            "{step}: {worker}"
        );
        let q = format!(r#"queue="{step}""#);
        assert_eq!(
            sample(
                &worker,
                "timeline_queue_wait_seconds_count",
                &[&q, r#"priority="interactive""#]
            ),
            Some(1.0),
            "{step}: {worker}"
        );
    }
    assert_eq!(
        sample(
            &worker,
            "timeline_media_total",
            &[r#"kind="image""#, r#"status="completed""#]
        ),
        Some(1.0),
        "{worker}"
    );
    // Database gauges (every process shows the same): nothing waiting, a live pool per queue.
    for text in [&web, &worker] {
        for q in ["hash", "exif", "thumbnail", "video"] {
            let q = format!(r#"queue="{q}""#);
            assert_eq!(
                sample(text, "timeline_queue_jobs", &[&q, r#"state="pending""#]),
                Some(0.0)
            );
            assert_eq!(
                sample(text, "timeline_queue_oldest_pending_seconds", &[&q]),
                Some(0.0)
            );
        }
    }
    // Gauges are cached for 5 s per process; the worker's pools beat every 5 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let web = scrape(&app.http, &format!("{}/metrics", app.base)).await;
    assert!(
        sample(&web, "timeline_workers_alive", &[r#"queue="hash""#]) >= Some(1.0),
        "{web}"
    );
    // A stopped worker: its pools fall out of the gauge once their heartbeats age (20 s).
    if let Some(mut w) = app.worker.take() {
        let _ = w.kill();
        let _ = w.wait();
    }
    tokio::time::sleep(Duration::from_secs(21)).await;
    let web = scrape(&app.http, &format!("{}/metrics", app.base)).await;
    assert_eq!(
        sample(&web, "timeline_workers_alive", &[r#"queue="hash""#]),
        Some(0.0),
        "{web}"
    );
}

/// Reads SSE events (`event:` name, parsed `data:`) until `done` or the deadline.
async fn read_events(resp: &mut reqwest::Response, deadline: Duration) -> Vec<(String, Value)> {
    let until = Instant::now() + deadline;
    let mut buf = String::new();
    let mut events = Vec::new();
    while Instant::now() < until {
        let chunk = tokio::time::timeout(until - Instant::now(), resp.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if name.is_empty() {
                continue; // a keep-alive comment
            }
            let done = name == "done";
            events.push((
                name,
                serde_json::from_str(&data).expect("event data is JSON"),
            ));
            if done {
                return events;
            }
        }
    }
    events
}

#[sqlx::test(migrations = false)]
async fn an_sse_client_sees_progress_in_order_ending_with_the_completion(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("sse@example.org").await;
    let (_, other) = app.user("other@example.org").await;
    let files = [
        ("a.jpg", photo("landscape_1.jpg")),
        ("b.jpg", photo("landscape_5.jpg")),
        ("c.jpg", photo("Kodak_CX7530.jpg")),
        ("bad.jpg", photo("bad/truncated_jpeg.jpg")),
    ];
    let (status, body) = app.upload(&token, &files).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let url = format!("{}/v1/jobs/{job}/events", app.base);

    // Someone else's job does not exist for them; no token, no stream.
    let r = app
        .http
        .get(&url)
        .bearer_auth(&other)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    let r = app.http.get(&url).send().await.expect("get");
    assert_eq!(r.status(), 401);

    let mut resp = app
        .http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("sse");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    // The workers start only now: every event below is pushed, none polled by the client.
    app.start_worker(&["--concurrency", "1"]);
    let events = read_events(&mut resp, Duration::from_secs(90)).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"progress"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    // Each file once, with its end state; the truncated one with its reason.
    let ended: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "file")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(ended.len(), 4, "{events:?}");
    let failed: Vec<&&Value> = ended
        .iter()
        .filter(|d| d["file"]["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{ended:?}");
    assert_eq!(failed[0]["file"]["filename"], "bad.jpg");
    assert_eq!(failed[0]["filename"], "bad.jpg");
    assert!(
        failed[0]["file"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{failed:?}"
    );
    // Every `data:` line is shaped like the job (API.md): its id, type, status and progress.
    // A client that reads `status` alone and stops at the first end state stops at the job's
    // end, never at a file's, and has seen 100 by then.
    for (_, d) in &events {
        assert_eq!(d["id"], job.as_str(), "{d}");
        assert_eq!(d["job_type"], "media_ingest", "{d}");
        assert!(d["progress"].is_i64(), "{d}");
    }
    let first_end = events
        .iter()
        .position(|(_, d)| {
            ["completed", "failed", "cancelled"].contains(&d["status"].as_str().unwrap_or(""))
        })
        .expect("an end");
    assert!(
        events[..first_end]
            .iter()
            .filter(|(n, _)| n == "file")
            .count()
            == 4
            && events[first_end].1["progress"] == 100,
        "{events:?}"
    );
    // Progress only goes up, the counts add up as files end, and the last says completed.
    let progress: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "progress")
        .map(|(_, d)| d)
        .collect();
    let mut last = -1;
    let mut last_done = -1;
    for p in &progress {
        let pct = p["progress"].as_i64().expect("progress");
        let done = ["completed", "failed", "duplicate"]
            .iter()
            .map(|k| p[*k].as_i64().expect("count"))
            .sum::<i64>();
        assert!(pct >= last && done >= last_done, "{progress:?}");
        (last, last_done) = (pct, done);
        assert_eq!(p["total"], 4);
        assert_eq!(p["output_data"]["total"], 4, "{p}");
    }
    assert!(progress.len() >= 2, "{events:?}");
    let final_progress = progress.last().expect("progress");
    assert_eq!(final_progress["status"], "completed", "{final_progress}");
    assert_eq!(final_progress["progress"], 100);
    // Every file event comes before the progress that counts it.
    let done_at = |k: usize| events[..k].iter().filter(|(n, _)| n == "file").count();
    for (i, (n, d)) in events.iter().enumerate() {
        if n == "progress" {
            let counted = ["completed", "failed", "duplicate"]
                .iter()
                .map(|k| d[*k].as_u64().unwrap_or(0) as usize)
                .sum::<usize>();
            assert!(
                counted <= done_at(i),
                "progress counts a file not yet announced: {events:?}"
            );
        }
    }
    let (_, summary) = events.last().expect("done");
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["output_data"]["completed"], 3, "{summary}");
    assert_eq!(summary["output_data"]["failed"], 1, "{summary}");
    assert_eq!(
        summary["output_data"]["errors"][0]["filename"], "bad.jpg",
        "{summary}"
    );

    // A client arriving after the end gets the state and the summary at once.
    let mut late = app
        .http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("sse");
    let events = read_events(&mut late, Duration::from_secs(5)).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["progress", "done"]);
}

/// Queues a sealed bulk import of `n` distinct photos for `user`, as `timeline ingest` does
/// (stored originals, one open job filled and sealed); returns the job.
async fn queue_import(app: &TestApp, user: uuid::Uuid, n: usize) -> uuid::Uuid {
    let bulk_names = [
        "landscape_1.jpg",
        "landscape_5.jpg",
        "landscape_6.jpg",
        "landscape_8.jpg",
        "Kodak_CX7530.jpg",
        "DSCN0010.jpg",
        "no_exif.jpg",
        "gps_sahara.jpg",
        "gps_antarctica.jpg",
        "gps_mid_atlantic.jpg",
        "Issue 508.jpg",
        "HMD_Nokia_8.3_5G.jpg",
    ];
    let storage = timeline::storage::Storage::from_url(app.storage_dir.to_str().expect("utf-8"))
        .expect("storage");
    let mut media = Vec::new();
    for (i, name) in bulk_names.iter().cycle().take(n).enumerate() {
        let id = uuid::Uuid::new_v4();
        let key = timeline::storage::Storage::key(user, id, timeline::storage::Rendition::Original);
        // Distinct bytes per file (no duplicates), same decoding work.
        let mut bytes = photo(name);
        bytes.extend_from_slice(format!("{i}").as_bytes());
        let size = bytes.len() as i64;
        storage.put(&key, bytes.into()).await.expect("put");
        media.push(timeline::db::uploads::NewMedia {
            id,
            user_id: user,
            filename: (*name).to_owned(),
            file_path: key.to_string(),
            file_size: size,
            mime_type: "image/jpeg",
            sha256: None,
        });
    }
    let mut tx = app.pool.begin().await.expect("tx");
    let job = timeline::db::jobs::create_open(
        &mut tx,
        user,
        timeline::models::JobType::MediaIngest,
        serde_json::json!({}),
    )
    .await
    .expect("job");
    timeline::ingest::submit_into(&mut tx, job, user, &media, 0)
        .await
        .expect("submit");
    tx.commit().await.expect("commit");
    let mut conn = app.pool.acquire().await.expect("conn");
    timeline::db::jobs::seal(&mut conn, job)
        .await
        .expect("seal");
    job
}

#[sqlx::test(migrations = false)]
async fn an_upload_overtakes_a_running_import_in_every_queue(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (user, token) = app.user("lanes@example.org").await;
    // A bulk import of 40 photos is queued first (as `timeline ingest` does, one open job).
    const BULK: usize = 40;
    let job = queue_import(&app, user, BULK).await;

    // One step at a time per queue, so the order is the queue's, not the scheduler's; no
    // express pools: this is the queue order alone (the next test has them).
    app.start_worker(&["--concurrency", "1", "--interactive-concurrency", "0"]);
    // Once the import is going, a user uploads one photo.
    let progress = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i32>(
            "SELECT completed_count FROM data_processing_jobs WHERE id = $1",
        )
        .bind(job)
        .fetch_one(&pool)
        .await
        .expect("count")
    };
    let until = Instant::now() + Duration::from_secs(60);
    while progress(app.pool.clone()).await < 1 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let upload_job = upload_one(&app, &token).await;
    let arrived = progress(app.pool.clone()).await;
    wait_completed(&app, &token, &upload_job, Duration::from_secs(120)).await;
    // While the upload went through, few imported photos did: it waited for the step running
    // in each queue, not for the import (in queue order it would wait for all the rest).
    // Counted from its arrival, so that a slow machine's upload request does not count.
    let import_done = progress(app.pool.clone()).await;
    assert!(
        import_done - arrived <= 10,
        "the upload waited for {} imported photos ({arrived} of {BULK} done when it arrived)",
        import_done - arrived
    );
    // And the import still finishes: bulk work is behind, not starved.
    let job_s = job.to_string();
    let done = app.wait_job(&token, &job_s, Duration::from_secs(240)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_data"]["completed"], BULK, "{done}");
}

#[sqlx::test(migrations = false)]
async fn an_upload_completes_while_bulk_work_holds_every_regular_slot(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (user, token) = app.user("express@example.org").await;
    let job = queue_import(&app, user, 4).await;
    // One regular slot per queue, and every bulk step holds its slot for a minute (a long
    // video, a huge panorama): only the express pools can serve an upload meanwhile.
    app.start_worker_env(
        &["--concurrency", "1"],
        &[("TIMELINE_TEST_PAUSE_BULK_STEP_SECS", "60")],
    );
    let held = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM apalis.jobs j JOIN apalis.workers w ON w.id = j.lock_by
             WHERE j.job_type = 'hash' AND j.status IN ('Queued', 'Running')
               AND w.worker_type = 'hash'",
        )
        .fetch_one(&pool)
        .await
        .expect("held")
    };
    let until = Instant::now() + Duration::from_secs(60);
    while held(app.pool.clone()).await < 1 {
        assert!(
            Instant::now() < until,
            "the worker never took the import's first task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    upload_one_and_wait(&app, &token, Duration::from_secs(40)).await;
    // The regular hash slot is still held by the import, which has not moved.
    assert_eq!(held(app.pool.clone()).await, 1);
    let import_done: i32 =
        sqlx::query_scalar("SELECT completed_count FROM data_processing_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(import_done, 0);
    // The upload's hash step ran on the express pool (the regular slot was held); its later
    // steps on either pool of their queue (no import task waits there, so the regular pools
    // are free to take them first).
    let ran: Vec<(String, String)> = sqlx::query_as(
        "SELECT j.job_type, w.worker_type FROM apalis.jobs j
         JOIN apalis.workers w ON w.id = j.metadata -> 'done_by'
         WHERE j.status = 'Done' ORDER BY j.job_type",
    )
    .fetch_all(&app.pool)
    .await
    .expect("done tasks");
    let queues: Vec<&str> = ran.iter().map(|(q, _)| q.as_str()).collect();
    assert_eq!(queues, ["exif", "hash", "thumbnail"], "{ran:?}");
    // A finished task names no worker any more (an acknowledgement reads only live ones).
    let held_done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE status = 'Done' AND lock_by IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .expect("done tasks");
    assert_eq!(held_done, 0);
    for (queue, pool) in &ran {
        let express = format!("{queue}:interactive");
        if queue == "hash" {
            assert_eq!(pool, &express, "{ran:?}");
        } else {
            assert!(pool == queue || pool == &express, "{ran:?}");
        }
    }
    // The dashboard and the metrics count them as workers of their queue.
    let mut conn = app.pool.acquire().await.expect("conn");
    let gauges = timeline::db::queue::gauges(&mut conn)
        .await
        .expect("gauges");
    // Each step's queue: its regular and its express pool; the library queue has no express pool.
    assert!(
        gauges
            .iter()
            .all(|g| g.workers_alive == if g.queue == "library" { 1 } else { 2 }),
        "{gauges:?}"
    );
}

/// Uploads one photo through the API and waits (up to `timeout`) for its job to complete.
async fn upload_one_and_wait(app: &TestApp, token: &str, timeout: Duration) {
    let upload_job = upload_one(app, token).await;
    wait_completed(app, token, &upload_job, timeout).await;
}

/// Uploads one photo through the API; returns its job's id.
async fn upload_one(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .upload(token, &[("mine.jpg", photo("landscape_1.jpg"))])
        .await;
    assert_eq!(status, 202, "{body}");
    body["job"]["id"].as_str().expect("job").to_owned()
}

/// Waits until the job `id` has completed.
async fn wait_completed(app: &TestApp, token: &str, id: &str, timeout: Duration) {
    let done = app.wait_job(token, id, timeout).await;
    assert_eq!(done["status"], "completed", "{done}");
}

/// Runs `timeline reprocess ARGS` against the app's database; returns its JSON report.
fn reprocess(app: &TestApp, args: &[&str]) -> Value {
    let out = Command::new(crate::ingest_cli::timeline_bin())
        .arg("reprocess")
        .args(args)
        .env("DATABASE_URL", crate::common::url_of(&app.pool))
        .env("RUST_LOG", "warn")
        .output()
        .expect("timeline reprocess");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report")
}

#[sqlx::test(migrations = false)]
async fn reprocess_missing_redoes_only_old_steps_and_a_second_run_finds_nothing(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (_, token) = app.user("reprocess@example.org").await;
    let (status, body) = app
        .upload(
            &token,
            &[
                ("a.jpg", photo("landscape_1.jpg")),
                ("b.jpg", photo("landscape_5.jpg")),
                ("c.jpg", photo("Kodak_CX7530.jpg")),
            ],
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let done = app.wait_job(&token, &job, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");

    // Nothing is old yet.
    let report = reprocess(&app, &["--missing"]);
    assert_eq!(report["files"], 0, "{report}");

    // The pipeline moved on for thumbnails: two files' thumbnail records are from before.
    let old: Vec<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE media_processing_steps SET pipeline_version = 0
         WHERE step = 'thumbnail' AND media_file_id IN
               (SELECT id FROM media_files WHERE filename IN ('a.jpg', 'b.jpg'))
         RETURNING media_file_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("age");
    assert_eq!(old.len(), 2);
    type Rec = (uuid::Uuid, String, i32, chrono::DateTime<chrono::Utc>);
    let records = |pool: PgPool| async move {
        sqlx::query_as::<_, Rec>(
            "SELECT media_file_id, step, pipeline_version, completed_at FROM media_processing_steps
             ORDER BY media_file_id, step",
        )
        .fetch_all(&pool)
        .await
        .expect("records")
    };
    let before = records(app.pool.clone()).await;

    let report = reprocess(&app, &["--missing"]);
    assert_eq!(report["files"], 2, "{report}");
    assert_eq!(
        report["steps"],
        serde_json::json!({"thumbnail": 2}),
        "{report}"
    );
    let rjob = report["jobs"][0].as_str().expect("a job").to_owned();
    // Safe to run twice: the files are in a running job.
    let again = reprocess(&app, &["--missing"]);
    assert_eq!(again["files"], 0, "{again}");

    let done = app.wait_job(&token, &rjob, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["job_type"], "media_reprocess");
    assert_eq!(done["output_data"]["completed"], 2, "{done}");
    let after = records(app.pool.clone()).await;
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        let redone = b.1 == "thumbnail" && old.contains(&b.0);
        assert_eq!(a.2, timeline::jobs::PIPELINE_VERSION, "{a:?}");
        assert_eq!(
            a.3 > b.3,
            redone,
            "only the old steps ran again: {b:?} → {a:?}"
        );
    }
    // The files never left `completed`, and their thumbnails are there.
    let statuses: Vec<String> = sqlx::query_scalar("SELECT processing_status FROM media_files")
        .fetch_all(&app.pool)
        .await
        .expect("statuses");
    assert!(statuses.iter().all(|s| s == "completed"), "{statuses:?}");
    let report = reprocess(&app, &["--missing"]);
    assert_eq!(report["files"], 0, "{report}");
    // --step narrows, --all redoes every step after the hash.
    let report = reprocess(&app, &["--missing", "--step", "exif"]);
    assert_eq!(report["files"], 0, "{report}");
    let report = reprocess(&app, &["--all"]);
    assert_eq!(report["files"], 3, "{report}");
    assert_eq!(
        report["steps"],
        serde_json::json!({"exif": 3, "thumbnail": 3}),
        "{report}"
    );
    let rjob = report["jobs"][0].as_str().expect("a job").to_owned();
    let done = app.wait_job(&token, &rjob, Duration::from_secs(60)).await;
    assert_eq!(done["output_data"]["completed"], 3, "{done}");
}

/// Two reprocessing runs at once (two clicks) queue each file once between them.
#[sqlx::test(migrations = false)]
async fn two_reprocess_runs_at_once_queue_each_file_once(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (_, token) = app.user("twice@example.org").await;
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let mut bytes = photo("no_exif.jpg");
            // Distinct files (no duplicates): a byte after the end of the image.
            bytes.extend_from_slice(format!("{i:04}").as_bytes());
            (format!("{i}.jpg"), bytes)
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, body) = app.upload(&token, &refs).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    app.wait_job(&token, &job, Duration::from_secs(120)).await;

    let run = || {
        Command::new(crate::ingest_cli::timeline_bin())
            .args(["reprocess", "--all"])
            .env("DATABASE_URL", crate::common::url_of(&app.pool))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("timeline reprocess")
    };
    let (a, b) = (run(), run());
    let files_of = |child: std::process::Child| {
        let out = child.wait_with_output().expect("reprocess");
        assert!(out.status.success());
        let report: Value = serde_json::from_slice(&out.stdout).expect("report");
        report["files"].as_u64().expect("files")
    };
    assert_eq!(files_of(a) + files_of(b), 40, "each file queued once");
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM data_processing_job_media jm
         JOIN data_processing_jobs j ON j.id = jm.job_id WHERE j.job_type = 'media_reprocess'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(queued, 40);
}

/// A reprocessing that gives up says why, in both places: the job's `errors` and the media
/// file, which stays `completed` with its renditions.
#[sqlx::test(migrations = false)]
async fn a_failed_reprocessing_says_why_on_the_job_and_the_file(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (user, token) = app.user("reprocess-fail@example.org").await;
    let (status, body) = app
        .upload(&token, &[("a.jpg", photo("landscape_1.jpg"))])
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let media = body["media"][0]["id"].as_str().expect("media").to_owned();
    let done = app.wait_job(&token, &job, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    // The stored original is damaged after the fact: only its first two bytes survive.
    let key = timeline::storage::Storage::key(
        user,
        media.parse().expect("uuid"),
        timeline::storage::Rendition::Original,
    );
    let path = app.storage_dir.join(key.as_ref());
    let mut bytes = std::fs::read(&path).expect("original");
    bytes[2..].fill(0);
    std::fs::write(&path, &bytes).expect("damage");

    let report = reprocess(&app, &["--all"]);
    assert_eq!(report["files"], 1, "{report}");
    let rjob = report["jobs"][0].as_str().expect("a job").to_owned();
    let done = app.wait_job(&token, &rjob, Duration::from_secs(60)).await;
    assert_eq!(done["output_data"]["failed"], 1, "{done}");
    let error = done["output_data"]["errors"][0]["error"]
        .as_str()
        .unwrap_or("");
    assert!(error.starts_with("reprocessing failed ("), "{done}");
    let (_, m) = app.get(&token, &format!("/v1/media/{media}")).await;
    assert_eq!(m["processing_status"], "completed", "{m}");
    assert_eq!(m["error_message"].as_str(), Some(error), "{m}");
    assert!(
        m["thumbnails"].is_object(),
        "the earlier renditions stay: {m}"
    );
}

#[sqlx::test(migrations = false)]
async fn the_dashboard_shows_a_failure_and_its_retry_completes_in_a_real_browser(pool: PgPool) {
    if !require("chromium") || !require("node") {
        return;
    }
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir() || std::env::var("CI").is_err(),
        "npm packages missing (scripts/setup.sh runs npm ci in tests/browser)"
    );
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        eprintln!("SKIPPED: run scripts/setup.sh");
        return;
    }
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("owner@example.org").await;
    let (admin, admin_token) = app.user("ops@example.org").await;
    timeline::db::users::set_admin(&app.pool, admin, true)
        .await
        .expect("admin");
    // Not an operator: the dashboard sends them to sign in, and shows nothing.
    let r = app
        .http
        .get(format!("{}/admin", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert!(r.url().path().ends_with("/admin/login"), "{}", r.url());
    assert!(!r.text().await.expect("body").contains("owner@example.org"));

    // A worker with a pixel limit fails the photo; then the operator fixes the worker.
    app.start_worker(&["--max-pixels", "1000"]);
    let (status, body) = app
        .upload(&token, &[("holiday.jpg", photo("landscape_1.jpg"))])
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let done = app.wait_job(&token, &job, Duration::from_secs(60)).await;
    assert_eq!(done["output_data"]["failed"], 1, "{done}");
    if let Some(mut w) = app.worker.take() {
        let _ = w.kill();
        let _ = w.wait();
    }
    app.start_worker(&[]);

    // Screenshots go to target/screenshots; `TIMELINE_SCREENSHOT_DIR=docs` refreshes the
    // ones in docs/ (relative to the repository).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let docs = root.join(
        std::env::var("TIMELINE_SCREENSHOT_DIR").unwrap_or_else(|_| "target/screenshots".into()),
    );
    std::fs::create_dir_all(&docs).expect("screenshot dir");
    // Async: the API under test runs on this test's runtime.
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join("admin.mjs"))
        .args([
            &app.base,
            &admin_token,
            "holiday.jpg",
            docs.to_str().expect("utf-8"),
        ])
        .output()
        .await
        .expect("node");
    assert!(
        out.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the browser saw is what the database says.
    let status: String = sqlx::query_scalar(
        "SELECT processing_status FROM media_files WHERE filename = 'holiday.jpg'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("status");
    assert_eq!(status, "completed");
    let paused: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_pauses")
        .fetch_one(&app.pool)
        .await
        .expect("pauses");
    assert_eq!(paused, 0, "the browser test resumes what it paused");
}

#[sqlx::test(migrations = false)]
async fn the_openapi_document_lists_every_route_and_each_answers_as_described(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("openapi@example.org").await;
    let r = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    // Every route the API serves (the /admin pages are HTML for operators, not API).
    let expected = [
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/v1/media", "get"),
        ("/v1/media", "post"),
        ("/v1/media/{id}", "get"),
        ("/v1/media/{id}", "delete"),
        ("/v1/media/{id}/original", "get"),
        ("/v1/media/{id}/thumbnails/{kind}", "get"),
        ("/v1/media/{id}/retry", "post"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}/events", "get"),
        ("/v1/media/exists", "post"),
        ("/v1/uploads", "post"),
        ("/v1/uploads/{id}", "get"),
        ("/v1/uploads/{id}", "patch"),
        ("/v1/uploads/{id}", "delete"),
        ("/v1/account", "delete"),
        ("/v1/collections", "get"),
        ("/v1/collections/{id}/media", "get"),
        ("/v1/exports", "post"),
        ("/v1/exports/{id}", "get"),
        ("/v1/exports/{id}/archive", "get"),
        ("/v1/imports", "post"),
    ];
    let mut listed: Vec<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect();
    listed.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
        .collect();
    want.sort();
    assert_eq!(listed, want);
    // Each listed operation is served, and answers one of the statuses it documents.
    let some_id = uuid::Uuid::new_v4().to_string();
    for (path, method) in &listed {
        let url = format!(
            "{}{}",
            app.base,
            path.replace("{id}", &some_id).replace("{kind}", "thumb")
        );
        let req = match method.as_str() {
            "get" => app.http.get(&url),
            "post" => app.http.post(&url).body(Vec::<u8>::new()),
            "delete" => app.http.delete(&url),
            "patch" => app.http.patch(&url).body(Vec::<u8>::new()),
            other => panic!("{other}"),
        };
        let status = req.bearer_auth(&token).send().await.expect("send").status();
        let documented = doc["paths"][path][method]["responses"]
            .as_object()
            .expect("responses");
        assert!(
            documented.contains_key(status.as_str()),
            "{method} {path} answered {status}, documented: {:?}",
            documented.keys().collect::<Vec<_>>()
        );
        assert_ne!(status, 405, "{method} {path}");
    }
}

/// A revoked token's open event stream ends: at its next event, or at the next resync when
/// nothing happens (here no worker runs, so nothing does).
#[sqlx::test(migrations = false)]
async fn an_event_stream_ends_when_its_token_is_revoked(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("revoked-sse@example.org").await;
    let (status, body) = app
        .upload(&token, &[("a.jpg", photo("landscape_1.jpg"))])
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let mut resp = app
        .http
        .get(format!("{}/v1/jobs/{job}/events", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sse");
    assert_eq!(resp.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first event")
        .expect("chunk");
    assert!(first.is_some_and(|c| String::from_utf8_lossy(&c).contains("event: progress")));
    sqlx::query("UPDATE api_tokens SET revoked_at = now()")
        .execute(&app.pool)
        .await
        .expect("revoke");
    let revoked = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(25), resp.chunk()).await {
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Ok(Ok(Some(_))) => {}
            Err(_) => panic!("the stream of a revoked token is still open after 25 s"),
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(25),
            "the stream of a revoked token kept running"
        );
    }
}

/// With priority lanes off every task is queued at one priority, which an express pool never
/// takes: the worker then runs no express pools and gives their slots to the regular ones.
#[sqlx::test(migrations = false)]
async fn with_lanes_off_a_worker_runs_no_express_pools(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("lanes-off@example.org").await;
    app.start_worker_env(
        &["--interactive-concurrency", "2"],
        &[("TIMELINE_PRIORITY_LANES", "off")],
    );
    let until = Instant::now() + Duration::from_secs(30);
    let types = loop {
        let types: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT worker_type FROM apalis.workers ORDER BY 1")
                .fetch_all(&app.pool)
                .await
                .expect("workers");
        if types.len() >= 5 {
            break types;
        }
        assert!(
            Instant::now() < until,
            "the worker never registered: {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        types,
        ["exif", "hash", "library", "thumbnail", "video"],
        "no express pool"
    );
    upload_one_and_wait(&app, &token, Duration::from_secs(40)).await;
}
