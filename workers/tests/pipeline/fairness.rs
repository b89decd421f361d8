//! One user cannot take the whole server: while one account holds every slot its caps allow
//! (event streams, uploads trickling in, requests whose bodies never end) and keeps asking
//! for more, its extra requests get 429 with `Retry-After`, and another account is still
//! served within a second. When the held requests end, every slot comes back.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::common::{TestApp, photo, spawn_state, test_state, trickle};
use timeline::http::server::ServerLimits;
use timeline::http::user_caps::Limits;

const CAPS: Limits = Limits {
    requests: 10,
    uploads: 3,
    streams: 3,
};

#[sqlx::test(migrations = false)]
async fn a_user_at_its_caps_gets_429_while_another_is_served_at_once(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let state = test_state(&app.pool, &app.storage_dir).with_user_caps(CAPS);
    let caps = state.caps.clone();
    app.base = spawn_state(state, ServerLimits::default()).await;
    let (_, greedy) = app.user("greedy@example.org").await;
    let (_, other) = app.user("other@example.org").await;

    // A job that stays pending (no worker), so its event streams stay open.
    let (status, body) = app
        .upload(&greedy, &[("a.jpg", photo("landscape_1.jpg"))])
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let (status, body) = app
        .upload(&other, &[("b.jpg", photo("landscape_5.jpg"))])
        .await;
    assert_eq!(status, 202, "{body}");
    let other_job = body["job"]["id"].as_str().expect("job").to_owned();

    let http = reqwest::Client::new();
    let events = |token: &str, job: &str| {
        http.get(format!("{}/v1/jobs/{job}/events", app.base))
            .bearer_auth(token)
            .send()
    };
    let mut held = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..CAPS.streams {
        let r = events(&greedy, &job).await.expect("stream");
        assert_eq!(r.status(), 200);
        held.push(r);
    }
    let r = events(&greedy, &job).await.expect("stream");
    assert_eq!(r.status(), 429, "a stream past the cap");
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Uploads whose bodies trickle, then requests (an existence check) whose bodies never end.
    let mut pending = Vec::new();
    let start = |path: &str, content_type: &str, first: &'static [u8]| {
        let (body, tx) = trickle(bytes::Bytes::from_static(first));
        let req = http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&greedy)
            .header("content-type", content_type.to_owned())
            .body(body);
        (tokio::spawn(req.send()), tx)
    };
    for _ in 0..CAPS.uploads {
        let (p, tx) = start("/v1/media", "multipart/form-data; boundary=X", b"--X\r\n");
        pending.push(p);
        senders.push(tx);
    }
    let plain = CAPS.requests - CAPS.streams - CAPS.uploads;
    for _ in 0..plain {
        let (p, tx) = start("/v1/media/exists", "application/json", b"{");
        pending.push(p);
        senders.push(tx);
    }
    // Wait until every slot is taken, by counting them: a poll of our own would take a slot
    // for a moment, and a held request arriving in that moment would be refused and never
    // fill its slot. Then each further request of theirs is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    while caps.requests_held() < CAPS.requests {
        if let Some(p) = pending.iter().position(|p| p.is_finished()) {
            let done = pending.remove(p).await.expect("request task");
            panic!("a held request ended early: {:?}", done.map(|r| r.status()));
        }
        assert!(Instant::now() < deadline, "the caps never filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = http
        .get(format!("{}/v1/jobs/{job}", app.base))
        .bearer_auth(&greedy)
        .send()
        .await
        .expect("poll");
    assert_eq!(r.status(), 429, "a request past the caps");
    assert_eq!(r.headers()["retry-after"], "1");
    let (status, _) = app
        .upload(&greedy, &[("c.jpg", photo("landscape_6.jpg"))])
        .await;
    assert_eq!(status, 429, "an upload past the caps");

    // Meanwhile the other account: a poll, an upload and an event stream, each within 1 s.
    for _ in 0..5 {
        let t = Instant::now();
        let (status, body) = app.get(&other, &format!("/v1/jobs/{other_job}")).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "poll took {:?}",
            t.elapsed()
        );
    }
    let t = Instant::now();
    let (status, body) = app
        .upload(&other, &[("d.jpg", photo("landscape_8.jpg"))])
        .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "upload took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let r = events(&other, &other_job).await.expect("stream");
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stream took {:?}",
        t.elapsed()
    );
    drop(r);

    // The held requests end (bodies cut, streams closed): every slot comes back.
    drop(senders);
    drop(held);
    for p in pending {
        let _ = p.await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while caps.users_holding() > 0 {
        assert!(Instant::now() < deadline, "slots were not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = app.get(&greedy, &format!("/v1/jobs/{job}")).await;
    assert_eq!(status, 200, "served again once its requests ended");
}
