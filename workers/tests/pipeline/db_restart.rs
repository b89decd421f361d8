//! PostgreSQL restarting under a running API and worker, on a private cluster of this test's
//! own (so the shared server of the other tests is never touched): while it is down the API
//! answers 503 quickly; once it is back both carry on and every photo reaches its end state.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{TestApp, fixtures};

/// A throwaway PostgreSQL cluster (initdb + pg_ctl from Debian's server packages).
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// `listen_addresses`.
    listen: String,
}

impl Cluster {
    fn pg(&self, tool: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).status().is_ok_and(|s| s.success())
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses={} -c fsync=off",
            self.port,
            self.dir.display(),
            self.listen
        );
        let log = self.dir.join("server.log");
        let data = self.dir.join("data");
        assert!(self.pg(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-o",
                &opts,
                "start"
            ]
        ));
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        assert!(self.pg("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"]));
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Lets clients from `cidr` in without a password, from the next connection on.
    pub fn trust(&self, cidr: &str) {
        let hba = self.dir.join("data").join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        text.push_str(&format!("host all all {cidr} trust\n"));
        std::fs::write(&hba, text).expect("pg_hba.conf");
        let data = self.dir.join("data");
        assert!(self.pg("pg_ctl", &["-D", path(&data), "reload"]));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.pg("pg_ctl", &["-D", path(&data), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// initdb a new cluster on a free port of 127.0.0.1; `None` when no server binaries are
/// installed.
fn new_cluster() -> Option<Cluster> {
    new_cluster_on("127.0.0.1")
}

/// [`new_cluster`] listening on `listen` (PostgreSQL's `listen_addresses`) too.
pub fn new_cluster_on(listen: &str) -> Option<Cluster> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .max()?;
    let dir = std::env::temp_dir().join(format!("timeline-pg-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).ok()?;
    if is_root() {
        Command::new("chown")
            .arg("postgres")
            .arg(&dir)
            .status()
            .ok()?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let cluster = Cluster {
        bin,
        dir,
        port,
        listen: listen.to_owned(),
    };
    let data = cluster.dir.join("data");
    assert!(cluster.pg(
        "initdb",
        &[
            "-D",
            path(&data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8"
        ]
    ));
    cluster.start();
    Some(cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_workers_ride_out_a_database_restart() {
    let Some(cluster) = new_cluster() else {
        // A skip is a pass that checked nothing: never in CI, which installs the binaries.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have PostgreSQL's server binaries"
        );
        eprintln!("note: no PostgreSQL server binaries; skipping the restart test");
        return;
    };
    let cfg = timeline::config::DatabaseConfig::direct(cluster.url(), 10);
    let pool: PgPool = timeline::db::connect(&cfg).await.unwrap();
    let mut app = TestApp::start_with_url(pool, cluster.url()).await;
    app.start_worker(&["--concurrency", "1"]);
    let (_, token) = app.user("restart@example.org").await;
    let photo = std::fs::read(fixtures().join("HMD_Nokia_8.3_5G.jpg")).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            let mut b = photo.clone();
            b.extend_from_slice(format!("restart-{i}").as_bytes());
            (format!("r{i}.jpg"), b)
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, body) = app.upload(&token, &refs).await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job"]["id"].as_str().unwrap().to_owned();

    cluster.stop();
    // While the database is away: 503 with a problem body, quickly, never a hang or a 500.
    for path in ["/healthz", &format!("/v1/jobs/{job_id}")] {
        let started = Instant::now();
        let resp = app
            .http
            .get(format!("{}{path}", app.base))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        app.worker_alive(),
        "the worker survives the database going away"
    );

    cluster.start();
    let job = app
        .wait_job(&token, &job_id, Duration::from_secs(120))
        .await;
    assert_eq!(
        job["output_data"]["completed"],
        files.len(),
        "no photo lost: {job}"
    );
    assert!(app.worker_alive());
    let (status, _) = app.get(&token, "/healthz").await;
    assert_eq!(status, 200);
}
