//! Real storage faults on a real S3-compatible server (`s3s-fs`, installed by
//! `scripts/setup.sh`, started here on a free port over a temporary directory), with the real
//! `timeline serve` and `timeline-worker` processes talking to it through object_store's S3
//! client exactly as to AWS (path-style, a region, static keys):
//! - the server goes away mid-batch and comes back: steps retry with growing delays (the queue's
//!   own backoff, persisted in `apalis.jobs.run_at`), every file completes, and the bucket and
//!   the tables hold exactly one of everything;
//! - the server stays away past every attempt: each file fails with "gave up after 5 attempts",
//!   the failures list shows them, and `POST /v1/media/{id}/retry` completes them once it is back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::common::{Serve, TestApp, fixtures, walk};

pub const KEY: &str = "timeline-test";
pub const SECRET: &str = "timeline-test-secret";
pub const BUCKET: &str = "photos";

/// An `s3s-fs` process; stopped on drop.
pub struct S3Server {
    root: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

/// The `s3s-fs` binary: `$S3S_FS`, else on `PATH`, else in cargo's bin directory.
fn s3s_fs() -> PathBuf {
    if let Ok(p) = std::env::var("S3S_FS") {
        return p.into();
    }
    let cargo_bin = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|h| h.join("bin"));
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .chain(cargo_bin)
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
        .expect("s3s-fs is not installed: run scripts/setup.sh (cargo install s3s-fs@0.14.1)")
}

impl S3Server {
    pub fn start() -> Self {
        let root = std::env::temp_dir().join(format!("timeline-s3-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join(BUCKET)).expect("bucket dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut s = Self {
            root,
            port,
            child: None,
        };
        s.resume();
        s
    }

    /// Starts (again) on the same port and directory, and waits until it accepts connections.
    fn resume(&mut self) {
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "s3s-fs did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An outage: the server process is killed.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The file that holds the object `key` of the bucket.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    /// Parts of multipart uploads that were neither completed nor aborted (s3s-fs keeps them
    /// at its root as `.upload_id-<id>.part-<n>`).
    pub fn open_parts(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".upload_id-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every stored object (files under the bucket's directory), relative to the bucket.
    pub fn objects(&self) -> Vec<String> {
        let bucket = self.root.join(BUCKET);
        walk(&bucket)
            .into_iter()
            .filter_map(|p| {
                let rel = p.strip_prefix(&bucket).ok()?.to_string_lossy().into_owned();
                // s3s-fs keeps its own bookkeeping beside the objects.
                (!rel.contains(".s3s") && !rel.ends_with(".metadata.json")).then_some(rel)
            })
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The environment that points `timeline serve` and `timeline-worker` at the server.
pub fn s3_env(s3: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("TIMELINE_STORAGE", format!("s3://{BUCKET}/tl")),
        ("AWS_ACCESS_KEY_ID", KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT", s3.endpoint()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
        // One quick client-level retry: outages are the queue's business.
        ("TIMELINE_S3_MAX_RETRIES", "1".into()),
    ]
}

/// The test bucket's store, as a process of the platform opens it, reached at `endpoint` (the
/// server itself, or a proxy in front of it).
pub fn s3_storage(endpoint: &str) -> timeline::storage::Storage {
    timeline::storage::Storage::from_url_with(
        &format!("s3://{BUCKET}/tl"),
        &[
            ("aws_endpoint", endpoint),
            ("aws_access_key_id", KEY),
            ("aws_secret_access_key", SECRET),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
            ("aws_virtual_hosted_style_request", "false"),
        ],
    )
    .expect("storage")
}

pub fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Distinct photos (a suffix after the image data keeps each from being a duplicate).
pub fn photos(n: usize) -> Vec<(String, Vec<u8>)> {
    let names = [
        "DSCN0010.jpg",
        "no_exif.jpg",
        "gps_sahara.jpg",
        "landscape_1.jpg",
    ];
    (0..n)
        .map(|i| {
            let name = names[i % names.len()];
            let mut bytes = std::fs::read(fixtures().join(name)).expect("fixture");
            bytes.extend_from_slice(format!("s3-copy-{i}").as_bytes());
            (format!("{i}-{name}"), bytes)
        })
        .collect()
}

pub async fn upload_through(
    app: &TestApp,
    serve: &Serve,
    token: &str,
    n: usize,
) -> (String, Vec<String>) {
    let files = photos(n);
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in files {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
    }
    let r = app
        .http
        .post(format!("{}/v1/media", serve.base))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 202);
    let body: serde_json::Value = r.json().await.expect("json");
    let ids = body["media"]
        .as_array()
        .expect("media")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    (body["job"]["id"].as_str().expect("job").to_owned(), ids)
}

/// One observed failed attempt of a queue task: its delay until the next attempt.
async fn observe_backoffs(pool: &PgPool, seen: &mut HashMap<(String, i32), f64>) {
    let rows: Vec<(String, i32, f64)> = sqlx::query_as(
        "SELECT id, attempts, extract(epoch FROM run_at - lock_at)::float8 FROM apalis.jobs
         WHERE status = 'Failed' AND attempts < max_attempts AND lock_at IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .expect("queue");
    for (id, attempts, delay) in rows {
        seen.entry((id, attempts)).or_insert(delay);
    }
}

#[sqlx::test(migrations = false)]
async fn an_outage_mid_batch_is_retried_with_growing_delays_and_nothing_is_doubled(pool: PgPool) {
    let mut s3 = S3Server::start();
    let env = s3_env(&s3);
    let mut app = TestApp::start(pool, false).await;
    let serve = app.spawn_serve_env(&as_refs(&env)).await;
    let (_, token) = app.user("s3@example.org").await;
    let (job, ids) = upload_through(&app, &serve, &token, 6).await;
    assert_eq!(s3.objects().len(), 6, "the originals are in the bucket");

    // The store goes away; the worker starts on the batch.
    s3.stop();
    let mut worker_env = as_refs(&env);
    worker_env.push(("TIMELINE_RETRY_BASE_SECS", "0.5"));
    app.start_worker_env(&["--concurrency", "2"], &worker_env);
    let mut backoffs = HashMap::new();
    let started = Instant::now();
    while !backoffs.keys().any(|(_, attempts)| *attempts >= 3) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no third attempt: {backoffs:?}"
        );
        observe_backoffs(&app.pool, &mut backoffs).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // While it retries, the API says when the next attempt is.
    let (_, m) = app.get(&token, &format!("/v1/media/{}", ids[0])).await;
    let (_, listed) = app.get(&token, "/v1/media").await;
    let retrying = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .chain(std::iter::once(&m))
        .filter(|v| !v["retry"].is_null())
        .count();
    assert!(retrying > 0, "a retrying file shows its retry: {m}");
    let shown = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|v| !v["retry"].is_null())
        .map(|v| v["retry"].clone())
        .unwrap_or_else(|| m["retry"].clone());
    assert!(shown["attempts"].as_i64().unwrap_or(0) >= 1, "{shown}");
    assert!(shown["next_attempt_at"].is_string(), "{shown}");

    // The store comes back: every file completes.
    s3.resume();
    let done = app.wait_job(&token, &job, Duration::from_secs(120)).await;
    assert_eq!(done["output_data"]["completed"], 6, "{done}");
    assert_eq!(done["output_data"]["failed"], 0, "{done}");

    let mut by_attempt: Vec<(i32, f64)> = backoffs.iter().map(|((_, a), d)| (*a, *d)).collect();
    by_attempt.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    eprintln!("observed backoffs (attempt, seconds): {by_attempt:?}");
    // The delays grew: attempt n waited base × 2^(n-1) × [0.5, 1.5] (plus the step's own time).
    for ((_, attempts), delay) in &backoffs {
        let nominal = 0.5 * 2f64.powi(attempts - 1);
        assert!(
            *delay >= nominal * 0.5 - 0.05 && *delay <= nominal * 1.5 + 1.0,
            "attempt {attempts} waited {delay:.2}s (nominal {nominal}s)"
        );
    }
    assert!(backoffs.len() >= 3, "{backoffs:?}");

    // Exactly one of everything: originals, thumbs and previews; one row per file and step.
    let objects = s3.objects();
    assert_eq!(objects.len(), 18, "{objects:?}");
    for kind in ["original", "thumb", "preview"] {
        assert_eq!(
            objects.iter().filter(|o| o.ends_with(kind)).count(),
            6,
            "{kind}"
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(rows, 6);
    let steps: Vec<(String, i64)> = sqlx::query_as(
        "SELECT step, count(*) FROM media_processing_steps WHERE status = 'succeeded'
         GROUP BY step ORDER BY step",
    )
    .fetch_all(&app.pool)
    .await
    .expect("steps");
    assert_eq!(
        steps,
        vec![
            ("exif".into(), 6),
            ("hash".into(), 6),
            ("thumbnail".into(), 6)
        ]
    );
    // The hash step took the digest the upload computed and never needed the store; the
    // steps that read the original record their retries.
    let retried: Vec<(String, i64)> = sqlx::query_as(
        "SELECT step, count(*) FILTER (WHERE attempts > 1) FROM media_processing_steps
         GROUP BY step ORDER BY step",
    )
    .fetch_all(&app.pool)
    .await
    .expect("attempts");
    let of = |step: &str| {
        retried
            .iter()
            .find(|(s, _)| s == step)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(of("hash"), 0, "{retried:?}");
    assert!(
        of("exif") + of("thumbnail") > 0,
        "the steps that read the store record their retries: {retried:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn an_outage_past_every_attempt_fails_the_files_and_retry_completes_them(pool: PgPool) {
    let mut s3 = S3Server::start();
    let env = s3_env(&s3);
    let mut app = TestApp::start(pool, false).await;
    let serve = app.spawn_serve_env(&as_refs(&env)).await;
    let (_, token) = app.user("s3-down@example.org").await;
    let (job, ids) = upload_through(&app, &serve, &token, 2).await;
    s3.stop();
    let mut worker_env = as_refs(&env);
    worker_env.push(("TIMELINE_RETRY_BASE_SECS", "0.2"));
    app.start_worker_env(&["--concurrency", "2"], &worker_env);

    let done = app.wait_job(&token, &job, Duration::from_secs(120)).await;
    assert_eq!(done["output_data"]["failed"], 2, "{done}");
    let (_, failed) = app.get(&token, "/v1/media?status=failed").await;
    let items = failed["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{failed}");
    for item in items {
        let reason = item["error_message"].as_str().unwrap_or_default();
        assert!(reason.starts_with("gave up after 5 attempts: "), "{reason}");
        assert_eq!(item["attempts"], 5, "{item}");
        assert!(
            item["retry"].is_null(),
            "no retry pending once given up: {item}"
        );
    }

    // Back up: a retry of each completes it.
    s3.resume();
    for id in &ids {
        let r = app
            .http
            .post(format!("{}/v1/media/{id}/retry", serve.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("retry");
        assert_eq!(r.status().as_u16(), 202);
    }
    let started = Instant::now();
    loop {
        let (_, failed) = app.get(&token, "/v1/media?status=failed").await;
        let (_, all) = app.get(&token, "/v1/media").await;
        let completed = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|m| m["processing_status"] == "completed")
            .count();
        if completed == 2 && failed["items"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{all}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(s3.objects().len(), 6, "{:?}", s3.objects());
}
