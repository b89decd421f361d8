//! Behind a real transaction pooler: Debian's PgBouncer 1.18 in `pool_mode = transaction`
//! (started by `scripts/pgbouncer.sh` on a free port, 4 server connections per database), with
//! `server_reset_query_always`, so that a statement run outside an explicit transaction fails
//! every time instead of now and then. `timeline serve` and two `timeline-worker` processes
//! reach PostgreSQL only through it, and `DATABASE_SESSION_URL` for what needs a session; the
//! originals live in a real S3 server (`s3s-fs`), so the processes share no disk.
//! - photos by `POST /v1/media`, a clip by tus and a duplicate all end as they should, with
//!   their job's events streamed over SSE;
//! - `timeline maintenance` and the worker's reconciler run a pass;
//! - PostgreSQL's backends for the database stay within the pooler's 4 plus at most 2 session
//!   connections per process, however many steps run at once;
//! - a job poll is one server transaction of the pooler (its reads' connections go back
//!   without sqlx's release ping).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::common::{KilledOnDrop, TestApp, fixtures, free_port, url_of};
use crate::s3_faults::{S3Server, as_refs, photos, s3_env};

/// Server connections PgBouncer opens per database in this test.
const POOL_SIZE: usize = 4;

/// A PgBouncer process over the test's PostgreSQL; stopped on drop.
pub struct Bouncer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Bouncer {
    pub fn start(pool_size: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("timeline-pgbouncer-{}", uuid::Uuid::new_v4()));
        let port = free_port();
        let child = Self::spawn(&dir, port, pool_size);
        Self { child, port, dir }
    }

    /// Stops the pooler: every client connection through it drops.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self, pool_size: usize) {
        self.child = Self::spawn(&self.dir, self.port, pool_size);
    }

    fn spawn(dir: &std::path::Path, port: u16, pool_size: usize) -> Child {
        let upstream = url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL"))
            .expect("DATABASE_URL");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pgbouncer.sh");
        let child = Command::new("bash")
            .arg(script)
            .arg(dir)
            .arg(port.to_string())
            .arg(pool_size.to_string())
            .arg(upstream.host_str().unwrap_or("127.0.0.1"))
            .arg(upstream.port().unwrap_or(5432).to_string())
            // The script's own reset, whatever a benchmark left exported: [`backends`] knows
            // a pooler's connection by it.
            .env_remove("PGBOUNCER_RESET_QUERY")
            // Its log is in `dir` (see `log`).
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scripts/pgbouncer.sh");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "PgBouncer did not start (is it installed? scripts/setup.sh --tests)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// `url` (a database of the test's server) reached through this pooler.
    pub fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).expect("url");
        u.set_host(Some("127.0.0.1")).expect("host");
        u.set_port(Some(self.port)).expect("port");
        u.query_pairs_mut().append_pair("sslmode", "disable");
        u.to_string()
    }

    /// PgBouncer's own log (errors it saw on either side).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Backends of the test's database: (the pooler's, the sessions'). A server connection of
/// the pooler is known by its last statement, PgBouncer's reset (scripts/pgbouncer.sh's, which
/// ends in `DISCARD SEQUENCES`; or `DISCARD ALL`), or by the name `timeline` where a client
/// sends one (pooled clients of ours send none, so one caught mid-transaction is missed: the
/// peak is a lower bound, sampled every 50 ms). The session pools' are named
/// `timeline-session`. The test's own connections are neither (this statement, their last,
/// ends otherwise).
async fn backends(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE application_name = 'timeline' OR query = 'DISCARD ALL'
                                      OR query LIKE '%; DISCARD SEQUENCES'),
                count(*) FILTER (WHERE application_name = 'timeline-session')
           FROM pg_stat_activity
          WHERE datname = current_database() AND backend_type = 'client backend'",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity")
}

/// Samples [`backends`] every 50 ms until dropped; the peak of each so far.
struct Peak(
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::Mutex<(i64, i64)>>,
);

impl Peak {
    fn start(pool: PgPool) -> Self {
        let peak = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                let (a, b) = backends(&pool).await;
                {
                    let mut m = p.lock().expect("peak");
                    *m = (m.0.max(a), m.1.max(b));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self(task, peak)
    }

    fn get(&self) -> (i64, i64) {
        *self.1.lock().expect("peak")
    }
}

impl Drop for Peak {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A `timeline-worker` process, killed on drop.
fn worker(envs: &[(&str, &str)]) -> KilledOnDrop {
    KilledOnDrop(
        Command::new(env!("CARGO_BIN_EXE_timeline-worker"))
            .args(["--concurrency", "4"])
            .env("RUST_LOG", "warn")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("timeline-worker"),
    )
}

/// Uploads `bytes` by tus in two requests; returns the upload's URL.
async fn tus_upload(app: &TestApp, token: &str, name: &str, bytes: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let r = app
        .http
        .post(format!("{}/v1/uploads", app.base))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", bytes.len().to_string())
        .header(
            "Upload-Metadata",
            format!("filename {}", b64(name.as_bytes())),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", app.base)
    };
    let half = bytes.len() / 2;
    for (from, to) in [(0, half), (half, bytes.len())] {
        let r = app
            .http
            .patch(&url)
            .bearer_auth(token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", from.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(bytes[from..to].to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    }
    url
}

/// Reads the job's event stream until its `done` event; returns the event names seen.
async fn stream_until_done(app: &TestApp, token: &str, job: &str) -> Vec<String> {
    use futures::StreamExt as _;
    let r = app
        .http
        .get(format!("{}/v1/jobs/{job}/events", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("events");
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !text.contains("event: done") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the event stream ended without `done`: {other:?}\n{text}"),
        }
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect()
}

#[sqlx::test(migrations = false)]
async fn the_platform_runs_behind_a_transaction_pooler(pool: PgPool) {
    let bouncer = Bouncer::start(POOL_SIZE);
    let s3 = S3Server::start();
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("pooled@example.org").await;
    let direct = url_of(&app.pool);
    let pooled = bouncer.url_for(&direct);
    let mut env = s3_env(&s3);
    env.push(("DATABASE_URL", pooled));
    env.push(("DATABASE_SESSION_URL", direct));
    let env = as_refs(&env);
    let peak = Peak::start(app.pool.clone());
    let serve = app.spawn_serve_env(&env).await;
    app.base = serve.base.clone();
    let mut workers = [worker(&env), worker(&env)];

    // Photos (one a duplicate) in one request, its job followed live.
    let mut files = photos(8);
    files.push(("again.jpg".into(), files[0].1.clone()));
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, body) = app.upload(&token, &refs).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let events = stream_until_done(&app, &token, &job).await;
    assert!(events.iter().any(|e| e == "progress"), "{events:?}");
    let done = app.wait_job(&token, &job, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_data"]["failed"], 0, "{done}");

    // A clip by tus, through the same pooler.
    let clip = std::fs::read(fixtures().join("video/Issue 515 (java).mp4")).expect("clip");
    tus_upload(&app, &token, "clip.mp4", &clip).await;

    // Everything ends, the clip included (its video step read the original back from S3).
    let started = Instant::now();
    let states: Vec<(String, i64)> = loop {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT processing_status::text, count(*) FROM media_files GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&app.pool)
        .await
        .expect("states");
        let total: i64 = rows.iter().map(|r| r.1).sum();
        let ended: i64 = rows
            .iter()
            .filter(|r| ["completed", "failed", "duplicate"].contains(&r.0.as_str()))
            .map(|r| r.1)
            .sum();
        if total == 10 && ended == total {
            break rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "files never ended: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        states,
        vec![("completed".into(), 9), ("duplicate".into(), 1)],
        "8 photos and the clip completed, the copy a duplicate"
    );
    let clip_state: (String, Option<f64>) = sqlx::query_as(
        "SELECT processing_status::text, duration FROM media_files WHERE filename = 'clip.mp4'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("clip");
    assert_eq!(clip_state.0, "completed");
    assert!(clip_state.1.is_some_and(|d| d > 0.0), "{clip_state:?}");

    // Every task acknowledged, every upload session ended, nothing named and left.
    // (An acknowledgement is written just after its step ends.)
    let started = Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done', 'Killed')",
        )
        .fetch_one(&app.pool)
        .await
        .expect("queue");
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{open} tasks never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let open: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pending_objects),
                (SELECT count(*) FROM upload_sessions WHERE state <> 'completed')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("in flight");
    assert_eq!(
        open,
        (0, 0),
        "(pending objects, unfinished upload sessions)"
    );

    // The three processes each listen on one session connection of their own.
    let listening: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'timeline-session'
            AND query ILIKE 'LISTEN%'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("listeners");
    assert_eq!(listening, 3, "the web process and both workers listen");

    // A reconciler pass by the operator's command, through the pooled settings too.
    let out = Command::new(crate::ingest_cli::timeline_bin())
        .args(["maintenance", "--grace", "0"])
        .envs(env.iter().copied())
        .output()
        .expect("maintenance");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The database saw the pooler's connections and the sessions, nothing more: 3 processes
    // of up to 10 connections each (the default), but at most the pooler's 4, and up to 2
    // session connections per process.
    let (pooled, sessions) = peak.get();
    assert!(
        (1..=POOL_SIZE as i64).contains(&pooled),
        "{pooled} server connections of the pooler at the peak"
    );
    assert!(
        (3..=6).contains(&sessions),
        "{sessions} session connections at the peak"
    );
    for w in &mut workers {
        assert!(matches!(w.0.try_wait(), Ok(None)), "a worker died");
    }
    drop(workers);
    let log = bouncer.log();
    assert!(
        !log.contains("prepared statement"),
        "PgBouncer saw statement errors:\n{log}"
    );
    drop(serve);
}

#[sqlx::test(migrations = false)]
async fn a_pooler_restarted_mid_import_loses_nothing(pool: PgPool) {
    let mut bouncer = Bouncer::start(POOL_SIZE);
    let s3 = S3Server::start();
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("restart@example.org").await;
    let direct = url_of(&app.pool);
    let mut env = s3_env(&s3);
    env.push(("DATABASE_URL", bouncer.url_for(&direct)));
    env.push(("DATABASE_SESSION_URL", direct));
    let env = as_refs(&env);
    let serve = app.spawn_serve_env(&env).await;
    app.base = serve.base.clone();
    let _workers = [worker(&env), worker(&env)];

    let files = photos(12);
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, body) = app.upload(&token, &refs).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();

    // The pooler goes away while the steps run: the API says so, and comes back with it.
    bouncer.stop();
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        r.status(),
        503,
        "the API answers 503 while the pooler is away"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    bouncer.resume(POOL_SIZE);

    let done = app.wait_job(&token, &job, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_data"]["failed"], 0, "{done}");
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM media_files WHERE processing_status = 'completed'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("completed");
    assert_eq!(completed, 12);
    let s3_objects = s3
        .objects()
        .into_iter()
        .filter(|k| k.contains("/media/"))
        .count();
    assert_eq!(
        s3_objects, 36,
        "one original and two renditions per photo, nothing twice"
    );
}

impl Bouncer {
    /// Server transactions the pooler has run for `database` so far (`SHOW STATS`, whose
    /// totals are counted as each ends).
    pub fn transactions(&self, database: &str) -> i64 {
        self.stat(database, 1)
    }

    /// Queries the pooler has forwarded for `database` so far: each exchange a client ends
    /// with a `Sync` or sends as a simple query.
    pub fn queries(&self, database: &str) -> i64 {
        self.stat(database, 2)
    }

    /// Column `column` of `database`'s row of `SHOW STATS`.
    fn stat(&self, database: &str, column: usize) -> i64 {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "pgbouncer", "-qAtF", ",", "-c", "SHOW STATS"])
            .output()
            .expect("psql");
        let stats = String::from_utf8_lossy(&out.stdout);
        stats
            .lines()
            .find_map(|l| {
                let mut fields = l.split(',');
                (fields.next() == Some(database))
                    .then(|| fields.nth(column - 1).and_then(|n| n.parse().ok()))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("no stats for {database}: {stats}"))
    }
}

/// Through the pooler a job poll is one server transaction and one exchange, nothing more:
/// one statement (`db::poll`), on a connection handed back without sqlx's release ping, which
/// through PgBouncer took a server connection (and a reset) of its own, two per poll before.
/// A token whose use is due is recorded by that statement. Refusals take the same path and
/// leave it working, and so do handlers that work in transactions of their own after the
/// token's check.
#[sqlx::test(migrations = false)]
async fn a_job_poll_through_the_pooler_is_one_server_transaction(pool: PgPool) {
    const POLLS: i64 = 200;
    let bouncer = Bouncer::start(POOL_SIZE);
    let mut app = TestApp::start(pool, false).await;
    let (owner, token) = app.user("poller@example.org").await;
    let (_, other) = app.user("other@example.org").await;
    let direct = url_of(&app.pool);
    let pooled = bouncer.url_for(&direct);
    let env = [
        ("DATABASE_URL", pooled.as_str()),
        ("DATABASE_SESSION_URL", direct.as_str()),
    ];
    let serve = app.spawn_serve_env(&env).await;
    app.base = serve.base.clone();
    // No worker runs: the job stays queued, and only the polls touch the database.
    let (status, body) = app
        .upload(
            &token,
            &[("p.jpg", crate::common::photo("landscape_1.jpg"))],
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job = format!("/v1/jobs/{}", body["job"]["id"].as_str().expect("job"));
    // Each token's first use is recorded (a write, in the poll's statement).
    assert_eq!(app.get(&token, &job).await.0, 200);
    assert_eq!(app.get(&other, "/v1/media").await.0, 200);

    // Refused on the same path: another user's job and an unknown one are 404, a bad token
    // 401, and the connections they used still serve.
    assert_eq!(app.get(&other, &job).await.0, 404, "another user's job");
    let unknown = format!("/v1/jobs/{}", uuid::Uuid::new_v4());
    assert_eq!(app.get(&token, &unknown).await.0, 404);
    assert_eq!(app.get("not-a-token", &job).await.0, 401);

    let database = app
        .pool
        .connect_options()
        .get_database()
        .expect("database")
        .to_owned();
    let before = bouncer.transactions(&database);
    let queries = bouncer.queries(&database);
    for _ in 0..POLLS {
        let (status, body) = app.get(&token, &job).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "pending", "{body}");
    }
    let polled = bouncer.transactions(&database) - before;
    let queried = bouncer.queries(&database) - queries;
    // Nothing else runs through the pooler (no worker; the web process's listener is on its
    // session connection), so this counts the polls alone.
    assert_eq!(
        polled, POLLS,
        "{polled} server transactions for {POLLS} polls: one each, no ping of its own"
    );
    assert_eq!(
        queried, POLLS,
        "{queried} exchanges for {POLLS} polls: one statement each, no BEGIN or COMMIT"
    );
    // A token whose use is due to be recorded: the poll's one statement records it and
    // still answers.
    let (user, _) = app.user("stale@example.org").await;
    let use_of = |user: uuid::Uuid| {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT max(last_used_at) FROM api_tokens WHERE user_id = $1",
        )
        .bind(user)
        .fetch_one(&app.pool)
    };
    sqlx::query("UPDATE api_tokens SET last_used_at = now() - interval '1 day' WHERE user_id = $1")
        .bind(owner)
        .execute(&app.pool)
        .await
        .expect("age the token's use");
    let (status, body) = app.get(&token, &job).await;
    assert_eq!(status, 200, "{body}");
    let recorded = use_of(owner).await.expect("use").expect("a use");
    assert!(
        recorded > chrono::Utc::now() - chrono::Duration::minutes(1),
        "the poll recorded its token's use: {recorded}"
    );
    assert_eq!(
        use_of(user).await.expect("use"),
        None,
        "another token untouched"
    );
    // A handler that checks the token and then works in a transaction of its own (here the
    // camera-roll check `POST /v1/media/exists`): two server transactions, no ping either.
    let before = bouncer.transactions(&database);
    let hashes = serde_json::json!({ "sha256": [format!("{:064x}", 7)] });
    for _ in 0..POLLS / 4 {
        let resp = app
            .http
            .post(format!("{}/v1/media/exists", app.base))
            .bearer_auth(&token)
            .json(&hashes)
            .send()
            .await
            .expect("exists");
        assert_eq!(resp.status().as_u16(), 200);
    }
    let checked = bouncer.transactions(&database) - before;
    assert_eq!(
        checked,
        POLLS / 2,
        "{checked} server transactions for {} checks: the token's and the read's",
        POLLS / 4
    );
    let log = bouncer.log();
    assert!(
        !log.contains("prepared statement"),
        "PgBouncer saw statement errors:\n{log}"
    );
    drop(serve);
}

/// A transaction of the lean pool (`db::lean`, through the pooler) is counted by sqlx: a
/// savepoint begun inside it is a savepoint, whose rollback keeps what came before it and
/// whose transaction still commits (a second `BEGIN` there would have been a no-op, and its
/// `ROLLBACK` the end of everything). One dropped without an end is rolled back in the
/// background and its connection handed back, not closed.
#[sqlx::test(migrations = false)]
async fn a_lean_transaction_keeps_its_savepoints_and_a_dropped_one_is_rolled_back(pool: PgPool) {
    let bouncer = Bouncer::start(POOL_SIZE);
    sqlx::query("CREATE TABLE lean_check (x int PRIMARY KEY)")
        .execute(&pool)
        .await
        .expect("create the table");
    let options: sqlx::postgres::PgConnectOptions = bouncer
        .url_for(&url_of(&pool))
        .parse()
        .expect("the pooler's URL");
    // One connection: a second transaction begins only once the first has given it back.
    let lean = timeline_core::db::lean::LeanPool::new(
        options.statement_cache_capacity(0),
        1,
        Duration::from_secs(5),
    );
    let insert = |x: i32| sqlx::query("INSERT INTO lean_check VALUES ($1)").bind(x);

    let mut tx = lean.begin().await.expect("begin");
    insert(1).execute(&mut *tx).await.expect("insert 1");
    let mut savepoint = sqlx::Acquire::begin(&mut *tx).await.expect("a savepoint");
    insert(2).execute(&mut *savepoint).await.expect("insert 2");
    savepoint
        .rollback()
        .await
        .expect("roll back to the savepoint");
    insert(3).execute(&mut *tx).await.expect("insert 3");
    tx.commit().await.expect("commit");
    let kept: Vec<i32> = sqlx::query_scalar("SELECT x FROM lean_check ORDER BY x")
        .fetch_all(&pool)
        .await
        .expect("read back");
    assert_eq!(kept, [1, 3], "the savepoint's row alone is gone");

    let mut tx = lean.begin().await.expect("begin");
    insert(4).execute(&mut *tx).await.expect("insert 4");
    drop(tx);
    // The pool's one connection comes back once the background rollback is done.
    let mut tx = lean
        .begin()
        .await
        .expect("begin after a dropped transaction");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM lean_check WHERE x = 4")
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    tx.commit().await.expect("commit");
    assert_eq!(seen, 0, "the dropped transaction was rolled back");
    let log = bouncer.log();
    assert_eq!(
        log.matches("login attempt").count(),
        1,
        "one client connection throughout, none closed and made again:\n{log}"
    );
}
