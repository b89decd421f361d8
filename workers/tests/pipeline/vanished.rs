//! A client that vanishes without a word (its host cut off or powered off: no FIN, no RST) is
//! noticed by PostgreSQL itself, through the TCP keepalives the migrations set on the
//! database, and its session ends with what it held: a session advisory lock (as the
//! reconciler's leader holds one for a pass), a `LISTEN`, a connection slot. Left to the
//! kernel's defaults, that takes more than two hours. The client is a real `psql` in a network
//! namespace of its own, reaching a private PostgreSQL cluster over a veth pair whose link the
//! test takes down.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::common::{KilledOnDrop, database_settings};
use crate::db_restart::new_cluster_on;

/// A network namespace behind a veth pair (the host's end `veth` at `host`, the namespace's
/// at `inner`); deleted on drop.
struct Namespace {
    name: String,
    veth: String,
    host: String,
    inner: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Namespace {
    /// `None` where namespaces cannot be made (not root, no `ip netns`).
    fn new() -> Option<Self> {
        // One test process per test (nextest): its pid keeps names apart.
        let id = std::process::id();
        remove_leaked();
        let net = free_subnet(id);
        let ns = Self {
            name: format!("tlns{id}"),
            veth: format!("tlh{id}"),
            host: format!("10.79.{net}.1"),
            inner: format!("10.79.{net}.2"),
        };
        if !ip(&["netns", "add", &ns.name]) {
            return None;
        }
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        let ok = ip(&[
            "link", "add", &ns.veth, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]) && ip(&["addr", "add", &format!("{}/24", ns.host), "dev", &ns.veth])
            && ip(&["link", "set", &ns.veth, "up"])
            && inside(&["addr", "add", &format!("{}/24", ns.inner), "dev", "eth0"])
            && inside(&["link", "set", "eth0", "up"])
            && inside(&["link", "set", "lo", "up"]);
        // Made, then failed: a broken setup, not a machine without namespaces.
        assert!(
            ok,
            "could not set up the veth pair of namespace {}",
            ns.name
        );
        Some(ns)
    }

    /// Takes the link down: from now on nothing passes and nobody is told.
    fn cut(&self) {
        assert!(ip(&["link", "set", &self.veth, "down"]), "ip link set down");
    }
}

/// Deletes the namespaces (and their veth pairs) of earlier runs of this test whose process is
/// gone (killed by a timeout, say): a leaked pair would route its subnet to nowhere.
fn remove_leaked() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix("tlns") else {
            continue;
        };
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["link", "del", &format!("tlh{pid}")]);
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A `10.79.N.0/24` that no address on this host is in, starting from one picked by `id`.
fn free_subnet(id: u32) -> u32 {
    let used = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let start = id % 200;
    (0..200)
        .map(|i| (start + i) % 200 + 20)
        .find(|n| !used.contains(&format!(" 10.79.{n}.")))
        .unwrap_or(start + 20)
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// (the sessions of clients at `addr`, whether advisory lock 7 is held by anyone)
async fn left_by(pool: &PgPool, addr: &str) -> (i64, bool) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE client_addr = $1::inet),
                EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 7 AND granted)",
    )
    .bind(addr)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until [`left_by`] is `want`, failing with `what` after `within`; returns how long
/// that took.
async fn wait_left_by(
    pool: &PgPool,
    addr: &str,
    want: (i64, bool),
    within: Duration,
    what: &str,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = left_by(pool, addr).await;
        if now == want {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_is_noticed_and_what_it_held_is_freed() {
    // A skip is a pass that checked nothing: never in CI, which runs as root with `ip netns`.
    let Some(net) = Namespace::new() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to make network namespaces (root, `ip netns`)"
        );
        eprintln!("note: no network namespaces here (root and `ip netns` needed); skipping");
        return;
    };
    let Some(cluster) = new_cluster_on(&format!("127.0.0.1,{}", net.host)) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have PostgreSQL's server binaries"
        );
        eprintln!("note: no PostgreSQL server binaries; skipping");
        return;
    };
    cluster.trust(&format!("{}/32", net.inner));
    let admin = PgPool::connect(&cluster.url()).await.unwrap();
    sqlx::query("CREATE DATABASE timeline")
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/timeline", cluster.port);
    let pool = PgPool::connect(&url).await.unwrap();
    timeline::db::migrate::run(&pool).await.expect("migrate");
    let settings = database_settings(&pool).await;
    for want in [
        "idle_in_transaction_session_timeout=5min",
        "tcp_keepalives_count=6",
        "tcp_keepalives_idle=60",
        "tcp_keepalives_interval=10",
        "tcp_user_timeout=2min",
    ] {
        assert!(
            settings.iter().any(|s| s == want),
            "{want} as migrated: {settings:?}"
        );
    }
    // Seconds rather than two minutes here.
    sqlx::raw_sql(
        "ALTER DATABASE timeline SET tcp_keepalives_idle = 1;
         ALTER DATABASE timeline SET tcp_keepalives_interval = 1;
         ALTER DATABASE timeline SET tcp_keepalives_count = 2;
         ALTER DATABASE timeline SET tcp_user_timeout = 3000",
    )
    .execute(&pool)
    .await
    .unwrap();

    // The client in the namespace takes a session lock and listens, then goes quiet.
    let mut ghost = KilledOnDrop(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.name,
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .arg(format!(
                "host={} port={} user=postgres dbname=timeline",
                net.host, cluster.port
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("psql"),
    );
    let stdin = ghost.0.stdin.as_mut().expect("stdin");
    stdin
        .write_all(b"SELECT pg_advisory_lock(7);\nLISTEN timeline_ghost;\n")
        .expect("write to psql");
    stdin.flush().expect("flush");
    let within = Duration::from_secs(20);
    let taking = "the client never took its lock";
    wait_left_by(&pool, &net.inner, (1, true), within, taking).await;

    net.cut();
    let within = Duration::from_secs(30);
    let outlived = "the vanished client's session outlived its keepalives";
    let noticed = wait_left_by(&pool, &net.inner, (0, false), within, outlived).await;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(7)")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(taken, "another session takes the lock");
    eprintln!("the vanished client's session ended {noticed:?} after its link went down");
}
