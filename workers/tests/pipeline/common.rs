//! The test platform: a real HTTP server (in-process, on a TCP port), a real `timeline-worker`
//! process, a real object store in a temporary folder and the test's own database.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use timeline::http::server::ServerLimits;
use uuid::Uuid;

/// A running platform for one test; the worker process is killed on drop.
pub struct TestApp {
    pub pool: PgPool,
    pub base: String,
    pub storage_dir: PathBuf,
    pub http: reqwest::Client,
    pub worker: Option<Child>,
    db_url: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.storage_dir);
    }
}

/// The URL of the test's own database, for the worker process.
pub fn url_of(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let db = pool
        .connect_options()
        .get_database()
        .expect("database name")
        .to_owned();
    let (server, _) = base.rsplit_once('/').expect("url has a database part");
    format!("{server}/{db}")
}

/// The API's state as the tests serve it: the store in `storage_dir`, 30 MB files.
pub fn test_state(pool: &PgPool, storage_dir: &std::path::Path) -> timeline::http::AppState {
    let storage = timeline::storage::Storage::from_url(storage_dir.to_str().expect("utf-8 path"))
        .expect("storage");
    timeline::http::AppState::new(
        pool.clone(),
        storage,
        timeline::config::UploadLimits {
            max_file_bytes: 30 * 1024 * 1024,
            max_request_bytes: 100 * 1024 * 1024,
            max_parts: 200,
            allowed_types: None,
            user_quota_bytes: None,
            max_archive_bytes: 100 * 1024 * 1024,
        },
    )
}

/// Serves the API in this process with the real server loop and `limits`; returns its base URL.
pub async fn spawn_api(
    pool: &PgPool,
    storage_dir: &std::path::Path,
    limits: ServerLimits,
) -> String {
    spawn_state(test_state(pool, storage_dir), limits).await
}

/// Serves `state` in this process with the real server loop; returns its base URL.
pub async fn spawn_state(state: timeline::http::AppState, limits: ServerLimits) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = timeline::http::router(state);
    tokio::spawn(timeline::http::server::serve_on(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    base
}

impl TestApp {
    /// Migrates, starts the API and (unless `workers` is false) a worker process.
    pub async fn start(pool: PgPool, workers: bool) -> Self {
        let db_url = url_of(&pool);
        let mut app = Self::start_with_url(pool, db_url).await;
        if workers {
            app.start_worker(&[]);
        }
        app
    }

    /// Migrates `pool` (whose URL, for worker processes, is `db_url`) and starts the API.
    pub async fn start_with_url(pool: PgPool, db_url: String) -> Self {
        timeline::db::migrate::run(&pool).await.expect("migrate");
        let storage_dir = std::env::temp_dir().join(format!("timeline-test-{}", Uuid::new_v4()));
        let base = spawn_api(&pool, &storage_dir, ServerLimits::default()).await;
        Self {
            pool,
            base,
            storage_dir,
            http: reqwest::Client::new(),
            worker: None,
            db_url,
        }
    }

    /// Starts a `timeline-worker` process with extra arguments.
    pub fn start_worker(&mut self, args: &[&str]) {
        self.start_worker_env(args, &[]);
    }

    /// Starts a `timeline-worker` process with extra arguments and environment (which wins over
    /// the defaults: an S3 store, say).
    pub fn start_worker_env(&mut self, args: &[&str], envs: &[(&str, &str)]) {
        // One worker per app: a previous one (killed or not) is reaped, never leaked.
        if let Some(mut old) = self.worker.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let child = Command::new(env!("CARGO_BIN_EXE_timeline-worker"))
            .args(args)
            .env("DATABASE_URL", &self.db_url)
            .env("TIMELINE_STORAGE", &self.storage_dir)
            .env(
                "RUST_LOG",
                std::env::var("TEST_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("start timeline-worker");
        self.worker = Some(child);
    }

    /// Whether the worker process is still running.
    pub fn worker_alive(&mut self) -> bool {
        self.worker
            .as_mut()
            .is_some_and(|w| matches!(w.try_wait(), Ok(None)))
    }

    /// Creates a user with a token; returns (user id, token).
    pub async fn user(&self, email: &str) -> (Uuid, String) {
        let email = timeline::models::Email::parse(email).expect("email");
        let id = timeline::db::users::create_user(&self.pool, &email, None)
            .await
            .expect("user");
        let token = timeline::auth::generate_token();
        timeline::db::users::insert_api_token(
            &self.pool,
            id,
            &timeline::auth::hash_token(&token),
            "test",
            None,
        )
        .await
        .expect("token");
        (id, token)
    }

    /// Uploads files in one multipart request; returns (status, body).
    pub async fn upload(&self, token: &str, files: &[(&str, Vec<u8>)]) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            );
        }
        let resp = self
            .http
            .post(format!("{}/v1/media", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// GET a JSON resource; returns (status, body).
    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let (status, bytes) = self.get_bytes(token, path).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GET raw bytes; returns (status, bytes).
    pub async fn get_bytes(&self, token: &str, path: &str) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (
            status,
            resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        )
    }

    /// Polls a job until it completes; asserts progress never goes down. Returns the final job.
    pub async fn wait_job(&self, token: &str, job_id: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        let mut last = 0;
        loop {
            let (status, job) = self.get(token, &format!("/v1/jobs/{job_id}")).await;
            assert_eq!(status, 200, "{job}");
            let progress = job["progress"].as_i64().expect("progress");
            assert!(progress >= last, "progress went down: {last} → {progress}");
            last = progress;
            if job["status"] == "completed" {
                assert_eq!(progress, 100);
                return job;
            }
            assert!(
                started.elapsed() < timeout,
                "job not done after {timeout:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A fixture's bytes.
pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

/// The repository's fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"))
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

impl TestApp {
    /// Sends a signal to the worker process (`KILL`, `TERM`) and, for KILL, reaps it.
    pub fn signal_worker(&mut self, signal: &str) -> Option<u32> {
        let w = self.worker.as_mut()?;
        let pid = w.id();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .ok()?;
        assert!(status.success(), "kill -{signal} {pid}");
        Some(pid)
    }

    /// Waits up to `timeout` for the worker process to exit; returns whether it exited 0.
    pub fn wait_worker_exit(&mut self, timeout: Duration) -> Option<bool> {
        let started = Instant::now();
        let w = self.worker.as_mut()?;
        loop {
            if let Ok(Some(status)) = w.try_wait() {
                self.worker = None;
                return Some(status.success());
            }
            if started.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A real `timeline serve` process on a free port over the app's database and store; killed on
/// drop.
pub struct Serve {
    pub child: Child,
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestApp {
    /// Starts `timeline serve` (the binary built beside `timeline-worker`) and waits until it
    /// answers `/healthz`.
    pub async fn spawn_serve(&self) -> Serve {
        self.spawn_serve_env(&[]).await
    }

    /// [`Self::spawn_serve`] with extra environment (which wins over the defaults).
    pub async fn spawn_serve_env(&self, envs: &[(&str, &str)]) -> Serve {
        self.spawn_serve_on(free_port(), envs).await
    }

    /// [`Self::spawn_serve_env`] on a given port (a restarted server keeps its address).
    pub async fn spawn_serve_on(&self, port: u16, envs: &[(&str, &str)]) -> Serve {
        let child = Command::new(crate::ingest_cli::timeline_bin())
            .arg("serve")
            .env("DATABASE_URL", url_of(&self.pool))
            .env("TIMELINE_STORAGE", &self.storage_dir)
            .env("TIMELINE_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("timeline serve");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{base}/healthz"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Serve { child, base }
    }
}

/// Waits (up to a minute) until a worker has stored the file at `path`.
pub async fn wait_for_file(path: &std::path::Path) {
    let started = std::time::Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} was never stored",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The database's own settings (`ALTER DATABASE ... SET`), as `name=value`.
pub async fn database_settings(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c FROM pg_db_role_setting s, unnest(s.setconfig) c
         WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND s.setrole = 0 ORDER BY c",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A child process (a second worker, a client) killed and reaped on drop, so that a failed
/// assertion never leaves it running.
pub struct KilledOnDrop(pub Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// Reads a process's peak resident memory (`VmHWM`) in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// A failure reason shown to users names no server path, store key or URL.
pub fn assert_names_no_path(app: &TestApp, what: &str, reason: &str) {
    let root = app.storage_dir.to_string_lossy();
    for leak in [root.as_ref(), "file:", "/original", "media/", "/tmp/"] {
        assert!(
            !reason.contains(leak),
            "{what}: the reason {reason:?} names a path ({leak:?})"
        );
    }
}

/// A request body that sends `first` and then nothing more until its sender is dropped (which
/// ends the body) or sends more.
pub fn trickle(first: bytes::Bytes) -> (reqwest::Body, tokio::sync::mpsc::Sender<bytes::Bytes>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
    let head = futures::stream::once(async move { Ok::<_, std::io::Error>(first) });
    let rest = futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    );
    (
        reqwest::Body::wrap_stream(futures::StreamExt::chain(head, rest)),
        tx,
    )
}
