//! The HTTP edge's manners, found by a black-box probe: every error is problem+json (unknown
//! routes, wrong methods, bad query strings included), the bearer scheme is case-insensitive, a
//! client's request id that could forge log lines is replaced, invisible bidi characters leave
//! filenames, too many parts and an over-limit `Content-Length` are refused before anything is
//! stored.

use std::io::{Read, Write};
use std::time::Duration;

use sqlx::PgPool;

use crate::common::{TestApp, fixtures};

fn is_problem(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json")
}

#[sqlx::test(migrations = false)]
async fn every_error_is_problem_json_and_the_scheme_is_case_insensitive(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("edge@example.org").await;
    let get = |path: &str| {
        app.http
            .get(format!("{}{path}", app.base))
            .bearer_auth(&token)
            .send()
    };
    let r = get("/no/such/route").await.expect("404");
    assert_eq!(r.status().as_u16(), 404);
    assert!(is_problem(&r));
    let r = app
        .http
        .put(format!("{}/v1/media", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("405");
    assert_eq!(r.status().as_u16(), 405);
    assert!(is_problem(&r));
    let r = get("/v1/media?limit=lots").await.expect("400");
    assert_eq!(r.status().as_u16(), 400);
    assert!(is_problem(&r));
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("query")),
        "{body}"
    );
    for scheme in ["BEARER", "bearer", "Bearer"] {
        let r = app
            .http
            .get(format!("{}/v1/media", app.base))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .expect("auth");
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    // A safe request id is echoed; one with a newline (log forging) is replaced.
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "abc-123.X_y")
        .send()
        .await
        .expect("id");
    assert_eq!(r.headers()["x-request-id"], "abc-123.X_y");
    let forged = "x\tINFO forged line";
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", forged)
        .send()
        .await
        .expect("id");
    let echoed = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_ne!(echoed, forged);
    assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
}

#[sqlx::test(migrations = false)]
async fn uploads_are_refused_before_anything_is_stored(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (user, token) = app.user("limits@example.org").await;
    let jpeg = std::fs::read(fixtures().join("no_exif.jpg")).expect("fixture");

    // An RTL override cannot make "gpj.exe" show as "exe.jpg".
    let (status, body) = app
        .upload(&token, &[("photo\u{202E}gpj.exe", jpeg.clone())])
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["media"][0]["filename"], "photogpj.exe");

    // More parts than allowed (TestApp allows 200), counting parts not named `file`: 413.
    let mut form = reqwest::multipart::Form::new();
    for i in 0..150 {
        form = form.text(format!("note{i}"), "x");
    }
    for i in 0..60 {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(jpeg.clone()).file_name(format!("{i}.jpg")),
        );
    }
    let r = app
        .http
        .post(format!("{}/v1/media", app.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("parts");
    assert_eq!(r.status().as_u16(), 413);
    assert!(is_problem(&r));

    // A declared length over the limit is answered at once, without sending a body.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(
            s,
            "POST /v1/media?filename=big.mp4 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: video/mp4\r\nContent-Length: 999999999999\r\n\r\n"
        )
        .expect("write");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Only the one accepted photo exists, in rows and in the store.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files WHERE user_id = $1")
        .bind(user)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(rows, 1);
    assert_eq!(crate::common::walk(&app.storage_dir).len(), 1);
}
