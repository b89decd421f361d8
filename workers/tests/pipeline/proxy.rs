//! A TCP proxy the tests control, put between our processes and a real server (S3 or
//! PostgreSQL) to make the network misbehave the way real ones do:
//! - a slow link: what the server sends (or what the clients send) is throttled to a rate
//!   shared by every connection;
//! - a cut: the connection carrying the N-th byte the server (or a client) sends is dropped,
//!   once;
//! - a lost answer to COMMIT: on PostgreSQL's wire protocol, the first `COMMIT` of a connection
//!   that inserted into `media_files` reaches the server (which commits), and its answer is
//!   swallowed and the connection dropped, so the client cannot know the outcome;
//! - an outage: while it lasts every connection is dropped, open ones at their next bytes and
//!   new ones at once;
//! - a partition: while it lasts nothing passes either way and nothing is closed (a pulled
//!   cable: no FIN, no RST), so each side learns of it only once it ends; it can begin as
//!   the server answers a given UPDATE (run, its rows locked, the answer never heard);
//! - a count of the HTTP requests sent through it (store calls), by reading request heads and
//!   skipping bodies by their `Content-Length`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// One direction of the link, shared by every connection.
#[derive(Debug)]
struct Link {
    /// Bytes per second, over all connections (0: unlimited).
    rate: AtomicU64,
    /// Cut the connection carrying this byte of the direction's total (u64::MAX: never).
    cut_at: AtomicU64,
    total: AtomicU64,
    free_at: tokio::sync::Mutex<Instant>,
}

impl Link {
    fn new() -> Self {
        Self {
            rate: AtomicU64::new(0),
            cut_at: AtomicU64::new(u64::MAX),
            total: AtomicU64::new(0),
            free_at: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    fn cut_after(&self, nth: u64) {
        let now = self.total.load(Ordering::SeqCst);
        self.cut_at.store(now + nth, Ordering::SeqCst);
    }

    /// Lets `n` bytes through at the link's rate; false when they are the ones to cut at.
    async fn pass(&self, cuts: &AtomicU64, n: usize) -> bool {
        let before = self.total.fetch_add(n as u64, Ordering::SeqCst);
        let cut_at = self.cut_at.load(Ordering::SeqCst);
        if before < cut_at && before + n as u64 >= cut_at {
            cuts.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        let rate = self.rate.load(Ordering::SeqCst);
        if rate > 0 {
            let cost = Duration::from_secs_f64(n as f64 / rate as f64);
            let until = {
                let mut free_at = self.free_at.lock().await;
                let start = (*free_at).max(Instant::now());
                *free_at = start + cost;
                *free_at
            };
            tokio::time::sleep_until(until).await;
        }
        true
    }
}

#[derive(Debug)]
struct State {
    upstream: u16,
    /// What the server sends.
    down: Link,
    /// What the clients send.
    up: Link,
    cuts: AtomicU64,
    requests: AtomicU64,
    /// Swallow the answer to the next COMMIT after an INSERT INTO media_files.
    commit_armed: AtomicBool,
    commits_lost: AtomicU64,
    /// The server is unreachable: every connection is dropped.
    down_now: AtomicBool,
    /// Partitioned: no byte passes and no connection ends or opens until it is over.
    silent: AtomicBool,
    /// Partition the link as the server answers the statement with this text (once).
    silence_after: std::sync::Mutex<Option<Vec<u8>>>,
}

impl State {
    /// Waits out a partition.
    async fn hold(&self) {
        while self.silent.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Marks the connection whose client sends the armed statement's text (its Parse, on the
    /// statement's first use there).
    fn watch_partition(&self, conn: &Conn, data: &[u8]) {
        let mut armed = self.silence_after.lock().expect("silence_after");
        if armed
            .as_deref()
            .is_some_and(|needle| contains(data, needle))
        {
            *armed = None;
            conn.partition_at_update.store(true, Ordering::SeqCst);
        }
    }
}

/// A running proxy on 127.0.0.1:`port`, on a thread and runtime of its own (a test blocking
/// its own runtime on a child process must not stall the link); stopped on drop.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// Proxies 127.0.0.1:`port` to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            upstream,
            down: Link::new(),
            up: Link::new(),
            cuts: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            commit_armed: AtomicBool::new(false),
            commits_lost: AtomicU64::new(0),
            down_now: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            silence_after: std::sync::Mutex::new(None),
        });
        let s = state.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        tokio::spawn(serve(client, s.clone()));
                    }
                };
                tokio::select! {
                    () = accept => {},
                    _ = stopped => {},
                }
            });
            rt.shutdown_background();
        });
        Self {
            port,
            state,
            stop: Some(stop),
        }
    }

    /// Throttles what the server sends to `bytes_per_s` in all.
    pub fn throttle(&self, bytes_per_s: u64) {
        self.state.down.rate.store(bytes_per_s, Ordering::SeqCst);
    }

    /// Cuts, once, the connection that carries the server's `nth` byte from now.
    pub fn cut_after(&self, nth: u64) {
        self.state.down.cut_after(nth);
    }

    /// Throttles what the clients send to `bytes_per_s` in all.
    pub fn throttle_up(&self, bytes_per_s: u64) {
        self.state.up.rate.store(bytes_per_s, Ordering::SeqCst);
    }

    /// Cuts, once, the connection that carries the clients' `nth` byte from now.
    pub fn cut_up_after(&self, nth: u64) {
        self.state.up.cut_after(nth);
    }

    /// Starts (true) or ends (false) an outage of the server behind the proxy.
    pub fn outage(&self, on: bool) {
        self.state.down_now.store(on, Ordering::SeqCst);
    }

    /// Starts (true) or ends (false) a partition: nothing passes, nothing is closed.
    pub fn partition(&self, on: bool) {
        self.state.silent.store(on, Ordering::SeqCst);
    }

    /// Partitions the link as the server answers the next UPDATE whose text contains `needle`
    /// (on the statement's first use on a connection): the server has run it and holds its
    /// row locks, and the client never hears back.
    pub fn partition_at_update(&self, needle: &[u8]) {
        *self.state.silence_after.lock().expect("silence_after") = Some(needle.to_vec());
    }

    /// Whether the link is partitioned now.
    pub fn partitioned(&self) -> bool {
        self.state.silent.load(Ordering::SeqCst)
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.state.cuts.load(Ordering::SeqCst)
    }

    /// HTTP requests sent through the proxy so far.
    #[allow(
        dead_code,
        reason = "used by the store-call count of the reconciler's pass"
    )]
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Loses the answer to the next COMMIT of a transaction that inserted a media file.
    pub fn lose_next_media_commit(&self) {
        self.state.commit_armed.store(true, Ordering::SeqCst);
    }

    /// COMMIT answers lost so far.
    pub fn commits_lost(&self) -> u64 {
        self.state.commits_lost.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Per connection: what the client side has seen that the server side must act on.
#[derive(Debug, Default)]
struct Conn {
    inserted_media: AtomicBool,
    swallow: AtomicBool,
    /// The server's next UPDATE tag starts the partition.
    partition_at_update: AtomicBool,
}

async fn serve(client: TcpStream, state: Arc<State>) {
    if state.down_now.load(Ordering::SeqCst) {
        return;
    }
    // A connection opened during a partition waits for it to end, as a SYN is retried.
    state.hold().await;
    let Ok(server) = TcpStream::connect(("127.0.0.1", state.upstream)).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let conn = Arc::new(Conn::default());
    let up = {
        let (state, conn) = (state.clone(), conn.clone());
        async move {
            let mut http = HttpCounter::default();
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return state.hold().await,
                    Ok(n) => n,
                };
                let data = &buf[..n];
                state.requests.fetch_add(http.feed(data), Ordering::SeqCst);
                watch_postgres(&state, &conn, data);
                if state.down_now.load(Ordering::SeqCst) {
                    return;
                }
                // Bytes sent into a partition arrive once it ends (TCP retransmits them).
                state.hold().await;
                state.watch_partition(&conn, data);
                if !state.up.pass(&state.cuts, n).await || sw.write_all(data).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            // A side that closes during a partition is heard of only once it ends.
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return state.hold().await,
                Ok(n) => n,
            };
            if state.down_now.load(Ordering::SeqCst) {
                return;
            }
            // The armed UPDATE's command tag ("UPDATE <rows>"): the partition begins, unheard.
            if conn.partition_at_update.load(Ordering::SeqCst) && contains(&buf[..n], b"UPDATE ") {
                conn.partition_at_update.store(false, Ordering::SeqCst);
                state.silent.store(true, Ordering::SeqCst);
            }
            state.hold().await;
            if conn.swallow.load(Ordering::SeqCst) {
                // The server answered the COMMIT: the client never hears it.
                state.commits_lost.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if !state.down.pass(&state.cuts, n).await || cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends the connection (both sockets drop here).
    tokio::select! {
        () = up => {},
        () = down => {},
    }
}

/// Marks the connection when the client sends an INSERT INTO media_files, and arms the swallow
/// of the server's next answer when it then sends COMMIT (a simple-protocol Query message).
fn watch_postgres(state: &State, conn: &Conn, data: &[u8]) {
    if !state.commit_armed.load(Ordering::SeqCst) {
        return;
    }
    if contains(data, b"INSERT INTO media_files") {
        conn.inserted_media.store(true, Ordering::SeqCst);
    }
    if conn.inserted_media.load(Ordering::SeqCst)
        && contains(data, b"COMMIT\0")
        && state
            .commit_armed
            .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        conn.swallow.store(true, Ordering::SeqCst);
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Counts HTTP/1.1 requests in a client's byte stream: a head up to its blank line, then a
/// body of its `Content-Length`.
#[derive(Debug, Default)]
struct HttpCounter {
    head: Vec<u8>,
    body_left: u64,
}

impl HttpCounter {
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut requests = 0;
        while !data.is_empty() {
            if self.body_left > 0 {
                let skip = (self.body_left as usize).min(data.len());
                self.body_left -= skip as u64;
                data = &data[skip..];
                continue;
            }
            self.head.push(data[0]);
            data = &data[1..];
            if self.head.ends_with(b"\r\n\r\n") {
                requests += 1;
                let head = String::from_utf8_lossy(&self.head).to_ascii_lowercase();
                self.body_left = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                self.head.clear();
            }
        }
        requests
    }
}
