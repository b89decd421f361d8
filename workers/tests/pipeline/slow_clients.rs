//! Connections cannot be held open for free (slowloris): a socket that never speaks, headers
//! sent a byte at a time, an idle keep-alive connection, a body that stops half-way and a client
//! that stops reading its download are all closed by the server's deadlines (1 s here), and the
//! connection cap makes the next client wait for a free slot instead of exhausting the process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use timeline::http::server::ServerLimits;

use crate::common::{TestApp, fixtures, spawn_api};

fn limits() -> ServerLimits {
    ServerLimits {
        header_timeout: Duration::from_secs(1),
        body_idle_timeout: Duration::from_secs(1),
        write_idle_timeout: Duration::from_secs(1),
        max_connections: 3,
        ..ServerLimits::default()
    }
}

/// Reads until the server closes the connection (or 10 s pass); returns what came and when.
fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (got, started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[sqlx::test(migrations = false)]
async fn slow_and_idle_connections_are_closed(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("slow@example.org").await;
    let base = spawn_api(&app.pool, &app.storage_dir, limits()).await;
    let addr = base.trim_start_matches("http://").to_owned();

    tokio::task::spawn_blocking(move || {
        // A socket that never speaks.
        let mut silent = TcpStream::connect(&addr).expect("connect");
        let (_, after) = read_to_close(&mut silent);
        assert!(
            after < Duration::from_secs(4),
            "silent socket open {after:?}"
        );

        // Headers at a byte every 200 ms: the head is not complete within the deadline.
        let mut slow = TcpStream::connect(&addr).expect("connect");
        let started = Instant::now();
        let mut closed = false;
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
        {
            if slow.write_all(&[*b]).is_err() {
                closed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let (answer, _) = read_to_close(&mut slow);
        assert!(
            closed || !String::from_utf8_lossy(&answer).contains("200 OK"),
            "a head dribbled over {:?} was served",
            started.elapsed()
        );
        assert!(started.elapsed() < Duration::from_secs(15));

        // An idle keep-alive connection after one answered request.
        let mut idle = TcpStream::connect(&addr).expect("connect");
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let (answer, after) = read_to_close(&mut idle);
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
        assert!(
            after < Duration::from_secs(4),
            "idle keep-alive open {after:?}"
        );

        // A body that stops after 10 of its 1000 declared bytes.
        let mut half = TcpStream::connect(&addr).expect("connect");
        write!(
            half,
            "POST /v1/media?filename=a.jpg HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n"
        )
        .expect("write");
        half.write_all(b"\xff\xd8\xff\xe0abcdef").expect("write");
        let (answer, after) = read_to_close(&mut half);
        assert!(after < Duration::from_secs(5), "half body open {after:?}");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    })
    .await
    .expect("join");

    // Nothing was stored for the half-sent upload.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(rows, 0);
}

#[sqlx::test(migrations = false)]
async fn a_client_that_stops_reading_its_download_is_cut_off(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("reader@example.org").await;
    // 24 MB: more than the kernel's socket buffers on both sides.
    let mut big = std::fs::read(fixtures().join("no_exif.jpg")).expect("fixture");
    big.resize(24 << 20, 0);
    let (status, body) = app.upload(&token, &[("big.jpg", big.clone())]).await;
    assert_eq!(status, 202, "{body}");
    let id = body["media"][0]["id"].as_str().expect("id").to_owned();
    let base = spawn_api(&app.pool, &app.storage_dir, limits()).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let got = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).expect("connect");
        write!(
            s,
            "GET /v1/media/{id}/original HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .expect("write");
        // Stop reading for longer than the write deadline, then read what is left.
        std::thread::sleep(Duration::from_secs(4));
        read_to_close(&mut s).0.len()
    })
    .await
    .expect("join");
    assert!(
        got < big.len(),
        "the whole {} bytes were sent to a stalled reader ({got})",
        big.len()
    );
}

#[sqlx::test(migrations = false)]
async fn the_connection_cap_makes_the_next_client_wait(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let base = spawn_api(
        &app.pool,
        &app.storage_dir,
        ServerLimits {
            header_timeout: Duration::from_secs(30),
            max_connections: 2,
            ..limits()
        },
    )
    .await;
    let addr = base.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        let hogs: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(&addr).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut next = TcpStream::connect(&addr).expect("connect (backlog)");
        next.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        next.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        assert!(
            next.read(&mut buf).is_err(),
            "a third connection was served while two slots were taken"
        );
        drop(hogs);
        let (answer, _) = read_to_close(&mut next);
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
            "the waiting client is served once a slot frees"
        );
    })
    .await
    .expect("join");
}
