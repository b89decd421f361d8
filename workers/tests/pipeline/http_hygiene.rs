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
    // Answers no handler writes: a target or a header block over the caps, a path that is
    // not UTF-8 (axum's own rejection), a form the framework cannot parse. Each is a problem
    // with a plain reason and the request id.
    let long = format!("/v1/media?x={}", "a".repeat(9000));
    let r = get(&long).await.expect("414");
    assert_eq!(r.status().as_u16(), 414);
    assert!(is_problem(&r) && r.headers().contains_key("x-request-id"));
    let r = app
        .http
        .get(format!("{}/v1/media", app.base))
        .bearer_auth(&token)
        .header("x-pad", "p".repeat(70 * 1024))
        .send()
        .await
        .expect("431");
    assert_eq!(r.status().as_u16(), 431);
    assert!(is_problem(&r));
    let mut many = app
        .http
        .get(format!("{}/v1/media", app.base))
        .bearer_auth(&token);
    for i in 0..150 {
        many = many.header(format!("x-h{i}"), "1");
    }
    let r = many.send().await.expect("431");
    assert_eq!(r.status().as_u16(), 431, "too many fields");
    assert!(is_problem(&r));
    let r = get("/v1/media/%FF%FE").await.expect("400");
    assert_eq!(r.status().as_u16(), 400);
    assert!(is_problem(&r));
    let body: serde_json::Value = r.json().await.expect("json");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        !detail.contains("UTF") && !detail.contains("Invalid URL"),
        "no parser internals: {body}"
    );
    let r = app
        .http
        .post(format!("{}/admin/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("nothing=here")
        .send()
        .await
        .expect("dashboard");
    assert!(
        r.status().is_client_error(),
        "the dashboard keeps its own HTML answers"
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

    // A part whose header block never ends (the probe sent 1 GiB of `X-Pad:`): 431 once the
    // block passes 8 KiB, not a web process holding the whole line.
    let mut body =
        b"--b0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\nX-Pad: "
            .to_vec();
    body.extend(std::iter::repeat_n(b'a', 256 << 10));
    body.extend(b"\r\n\r\n");
    body.extend(&jpeg);
    body.extend(b"\r\n--b0und--\r\n");
    let r = app
        .http
        .post(format!("{}/v1/media", app.base))
        .bearer_auth(&token)
        .header("Content-Type", "multipart/form-data; boundary=b0und")
        .body(body)
        .send()
        .await
        .expect("long part header");
    assert_eq!(r.status().as_u16(), 431);
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

/// Runs the `timeline` binary against the test's database; returns its stdout lines as JSON.
fn timeline_cli(app: &TestApp, args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let out = std::process::Command::new(crate::ingest_cli::timeline_bin())
        .args(args)
        .env("DATABASE_URL", crate::common::url_of(&app.pool))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run timeline");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect())
}

#[sqlx::test(migrations = false)]
async fn tokens_expire_can_be_revoked_and_record_their_last_use(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let created = timeline_cli(&app, &["users", "create", "--email", "tok@example.org"])
        .expect("users create")
        .remove(0);
    let token = created["token"].as_str().expect("token").to_owned();
    let token_id = created["token_id"].as_str().expect("token_id").to_owned();
    let expires: chrono::DateTime<chrono::Utc> = created["expires_at"]
        .as_str()
        .expect("expiry")
        .parse()
        .expect("time");
    let days = (expires - chrono::Utc::now()).num_days();
    assert!((364..=365).contains(&days), "default lifetime: {days} days");

    let status = |token: String| {
        let app = &app;
        async move {
            app.http
                .get(format!("{}/v1/media", app.base))
                .bearer_auth(token)
                .send()
                .await
                .expect("get")
                .status()
                .as_u16()
        }
    };
    // A job poll checks the token in its one statement (`db::poll`): the same rules.
    let poll = |token: String| {
        let app = &app;
        async move {
            app.http
                .get(format!("{}/v1/jobs/{}", app.base, uuid::Uuid::new_v4()))
                .bearer_auth(token)
                .send()
                .await
                .expect("poll")
                .status()
                .as_u16()
        }
    };
    let last_used = |id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
                "SELECT last_used_at FROM api_tokens WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("token row")
        }
    };
    assert_eq!(last_used(token_id.clone()).await, None);
    assert_eq!(status(token.clone()).await, 200);
    let first = last_used(token_id.clone()).await.expect("use recorded");
    assert_eq!(status(token.clone()).await, 200);
    assert_eq!(
        last_used(token_id.clone()).await,
        Some(first),
        "a use within minutes of the last is not written again"
    );
    assert_eq!(poll(token.clone()).await, 404, "no such job");
    assert_eq!(last_used(token_id.clone()).await, Some(first));
    sqlx::query("UPDATE api_tokens SET last_used_at = NULL WHERE id = $1::uuid")
        .bind(&token_id)
        .execute(&app.pool)
        .await
        .expect("forget the use");
    assert_eq!(poll(token.clone()).await, 404);
    assert!(
        last_used(token_id.clone()).await.is_some(),
        "a poll records its token's use when due"
    );

    // A second token, then its expiry passes: refused.
    let second = timeline_cli(
        &app,
        &[
            "users",
            "token",
            "create",
            "--email",
            "tok@example.org",
            "--name",
            "phone",
            "--expires-in-days",
            "1",
        ],
    )
    .expect("token create")
    .remove(0);
    let token2 = second["token"].as_str().expect("token").to_owned();
    assert_eq!(status(token2.clone()).await, 200);
    sqlx::query(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(second["token_id"].as_str().expect("id"))
    .execute(&app.pool)
    .await
    .expect("expire");
    assert_eq!(
        status(token2.clone()).await,
        401,
        "an expired token is refused"
    );
    assert_eq!(poll(token2).await, 401, "by a poll too");

    // Listing shows both, never a secret; revoking the first refuses it from the next request.
    let listed = timeline_cli(
        &app,
        &["users", "token", "list", "--email", "tok@example.org"],
    )
    .expect("token list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|t| t.get("token_hash").is_none() && t.get("token").is_none())
    );
    assert!(listed.iter().any(|t| t["name"] == "phone"));
    timeline_cli(&app, &["users", "token", "revoke", "--id", &token_id]).expect("revoke");
    assert_eq!(
        status(token.clone()).await,
        401,
        "a revoked token is refused"
    );
    assert_eq!(poll(token).await, 401, "by a poll too");
    assert!(
        timeline_cli(&app, &["users", "token", "revoke", "--id", &token_id]).is_err(),
        "revoking twice is an error"
    );

    // Recording uses wrote no audit rows; the revocation and the expiry change did.
    let updates: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT new_values FROM audit_logs WHERE resource_type = 'api_tokens' AND action = 'update'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(updates.len(), 2, "{updates:?}");
}

/// Made-up HTTP methods do not grow `/metrics`: the probe's 15,000 invented methods took it
/// from 46 KB to 30.5 MB. Each is now counted under `method="other"`.
#[sqlx::test(migrations = false)]
async fn invented_methods_do_not_grow_the_metrics(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let serve = app.spawn_serve().await;
    let http = reqwest::Client::new();
    let scrape = || async {
        http.get(format!("{}/metrics", serve.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("PROBE{i}").as_bytes()).expect("method");
        let r = http
            .request(method, format!("{}/v1/media", serve.base))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 405);
    }
    let before = scrape().await;
    for i in 300..600 {
        let method = reqwest::Method::from_bytes(format!("PROBE{i}").as_bytes()).expect("method");
        http.request(method, format!("{}/v1/media", serve.base))
            .send()
            .await
            .expect("send");
    }
    let after = scrape().await;
    assert!(
        !after.contains("PROBE"),
        "an invented method became a label"
    );
    let series = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains("method=\"other\""))
            .count()
    };
    assert!(series(&after) > 0, "invented methods are counted as other");
    assert_eq!(
        series(&before),
        series(&after),
        "300 more invented methods added no series"
    );
}
