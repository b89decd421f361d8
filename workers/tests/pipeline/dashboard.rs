//! The dashboard's sign-in, over HTTP as a browser speaks it: a server-side session whose
//! cookie is not the token, forms that need their CSRF token and their own origin, sign-out
//! and the 12-hour deadline ending the session on the server, and the security headers. The
//! browser half (a real cross-site page, a real sign-out) is in `operators`.

use reqwest::{StatusCode, redirect::Policy};
use sqlx::PgPool;

use crate::common::TestApp;

/// The dashboard's cookie pair (`timeline_admin=…`) from a sign-in answer.
fn session_cookie(r: &reqwest::Response) -> (String, String) {
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    let pair = set.split(';').next().expect("pair").trim().to_owned();
    (pair, set)
}

/// The CSRF token a dashboard page's forms carry.
fn csrf_in(page: &str) -> String {
    let (_, rest) = page
        .split_once(r#"name="csrf" value=""#)
        .expect("a csrf field");
    rest.split('"').next().expect("value").to_owned()
}

async fn paused(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM queue_pauses")
        .fetch_one(pool)
        .await
        .expect("pauses")
}

#[sqlx::test(migrations = false)]
async fn the_dashboard_signs_in_to_a_server_session_and_its_forms_need_their_token(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (admin, token) = app.user("ops@example.org").await;
    timeline::db::users::set_admin(&app.pool, admin, true)
        .await
        .expect("admin");
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let host = app.base.trim_start_matches("http://").to_owned();
    let login = |origin: &'static str| {
        let mut req = http
            .post(format!("{}/admin/login", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"));
        if !origin.is_empty() {
            req = req.header("origin", origin);
        }
        req.send()
    };

    // Another site's sign-in form is refused (login CSRF): no session is made.
    let r = login("http://evil.example").await.expect("login");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());

    let r = login("").await.expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (cookie, set) = session_cookie(&r);
    assert!(!set.contains(&token), "the cookie is not the token: {set}");
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=43200",
    ] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain http without a public https URL: {set}"
    );
    let stored: (i64, f64) = sqlx::query_as(
        "SELECT count(*), max(extract(epoch FROM expires_at - created_at))::float8 FROM admin_sessions",
    )
    .fetch_one(&app.pool)
    .await
    .expect("sessions");
    assert_eq!(stored, (1, 43_200.0), "one session, 12 hours");

    // The dashboard, with its headers.
    let r = http
        .get(format!("{}/admin", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("dashboard");
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let csrf = csrf_in(&r.text().await.expect("page"));

    let pause = |body: String, origin: Option<&str>| {
        let mut req = http
            .post(format!("{}/admin/queues/hash/pause", app.base))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    // Without the token, with another session's token, or from another origin: refused.
    for (body, origin) in [
        (String::new(), None),
        ("csrf=".to_owned() + &"0".repeat(64), None),
        (format!("csrf={csrf}"), Some("http://127.0.0.1:1")),
    ] {
        let r = pause(body, origin).await.expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(paused(&app.pool).await, 0, "a refused post changes nothing");
    }
    let own = format!("http://{host}");
    let r = pause(format!("csrf={csrf}"), Some(&own))
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(paused(&app.pool).await, 1);

    // A bearer caller (a script) needs no CSRF token: browsers never send that header alone.
    let r = http
        .post(format!("{}/admin/queues/hash/resume", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("resume");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(paused(&app.pool).await, 0);
    // The library queue (exports, erasures, API imports) pauses and resumes the same way; a
    // name that is no queue is a 404.
    for (action, after) in [("pause", 1), ("resume", 0)] {
        let r = http
            .post(format!("{}/admin/queues/library/{action}", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("library");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{action}");
        assert_eq!(paused(&app.pool).await, after, "{action}");
    }
    let r = http
        .post(format!("{}/admin/queues/nothing/pause", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("unknown");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Sign-out ends the session on the server: the same cookie, sent again, signs no one in.
    let r = http
        .post(format!("{}/admin/logout", app.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&r).1.contains("Max-Age=0"));
    let r = http
        .get(format!("{}/admin", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("dashboard");
    assert_eq!(r.headers()["location"], "/admin/login");

    // A session past its 12 hours, or of an operator who is one no longer, ends too.
    let r = login("").await.expect("login");
    let (cookie, _) = session_cookie(&r);
    let ok = |cookie: String| {
        let http = http.clone();
        let url = format!("{}/admin", app.base);
        async move {
            let r = http.get(url).header("cookie", cookie).send().await;
            r.expect("dashboard").status() == StatusCode::OK
        }
    };
    assert!(ok(cookie.clone()).await);
    sqlx::query("UPDATE admin_sessions SET created_at = now() - interval '13 hours', expires_at = now() - interval '1 hour' WHERE revoked_at IS NULL")
        .execute(&app.pool)
        .await
        .expect("age");
    assert!(!ok(cookie).await, "an expired session signs no one in");
    let r = login("").await.expect("login");
    let (cookie, _) = session_cookie(&r);
    timeline::db::users::set_admin(&app.pool, admin, false)
        .await
        .expect("demote");
    assert!(!ok(cookie).await, "a demoted operator's session ends");

    // Housekeeping deletes ended sessions.
    let report = timeline::db::maintenance::run(&app.pool, &Default::default())
        .await
        .expect("maintenance");
    assert_eq!(
        report.admin_sessions_pruned, 2,
        "the signed-out and the expired one"
    );
}
