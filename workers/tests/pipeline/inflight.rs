//! Bytes in flight are never lost: the rows decide, never an object's age.
//! - A reconciler pass at the smallest grace, run while an upload streams slowly and while a
//!   step has stored renditions it has not committed, touches none of their objects, and all
//!   of them complete.
//! - The answer to the upload's COMMIT is lost on the network (a proxy between `timeline
//!   serve` and PostgreSQL swallows it after the server committed): the upload looks before
//!   deleting, keeps its objects, and the file completes; no row names a missing object and no
//!   object is left that no row names.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::common::{TestApp, fixtures, url_of};
use crate::proxy::Proxy;
use crate::reconcile::{in_flight, maintenance, objects_match_rows};

/// A distinct JPEG of about `size` bytes (a photo with padding after its end).
fn padded_photo(tag: &str, size: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(fixtures().join("landscape_1.jpg")).expect("fixture");
    bytes.extend_from_slice(tag.as_bytes());
    bytes.resize(size.max(bytes.len()), 0);
    bytes
}

#[sqlx::test(migrations = false)]
async fn a_pass_at_the_smallest_grace_leaves_live_uploads_and_steps_alone(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (user, token) = app.user("live@example.org").await;
    // Every thumbnail step waits 8 s between storing its renditions and committing them.
    app.start_worker_env(&[], &[("TIMELINE_TEST_PAUSE_BEFORE_FINISH_SECS", "8")]);
    let (status, body) = app.upload(&token, &[("a.jpg", padded_photo("a", 0))]).await;
    assert_eq!(status, 202, "{body}");
    let first = body["media"][0]["id"].as_str().expect("id").to_owned();
    let first_job = body["job"]["id"].as_str().expect("job").to_owned();
    let thumb = app.storage_dir.join(format!("media/{user}/{first}/thumb"));
    crate::common::wait_for_file(&thumb).await;

    // Three 2 MB photos in one request at 1 MB/s: about 6 s of streaming.
    let dir = crate::video::tempdir("slow-upload");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail-with-body", "--limit-rate", "1M"])
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    for i in 0..3 {
        let path = dir.join(format!("slow-{i}.jpg"));
        std::fs::write(&path, padded_photo(&format!("slow-{i}"), 2 << 20)).expect("write");
        curl.arg("-F").arg(format!("file=@{}", path.display()));
    }
    // The answer goes to a file and the test polls: the API serves from this test's runtime,
    // which a blocking wait would stall.
    let answer = dir.join("answer.json");
    let mut slow = curl
        .arg(format!("{}/v1/media", app.base))
        .stdout(Stdio::from(
            std::fs::File::create(&answer).expect("answer file"),
        ))
        .spawn()
        .expect("curl");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The pass: the slow upload's first original is stored, its second is streaming; the
    // first photo's renditions are stored and not yet committed.
    let stored_before = crate::common::walk(&app.storage_dir);
    let report = maintenance(&app, 0);
    for field in [
        "sessions_aborted",
        "pending_objects_settled",
        "orphan_objects_deleted",
        "missing_originals_failed",
    ] {
        assert_eq!(report[field], 0, "{field}: {report}");
    }
    for path in &stored_before {
        assert!(path.exists(), "{} was touched", path.display());
    }
    let (pending, sessions) = in_flight(&app.pool).await;
    assert!(pending >= 3 && sessions == 1, "({pending}, {sessions})");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = slow.try_wait().expect("curl") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the slow upload never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = std::fs::read(&answer).expect("answer");
    assert!(status.success(), "{}", String::from_utf8_lossy(&out));
    let body: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let job = body["job"]["id"].as_str().expect("job");
    for job in [first_job.as_str(), job] {
        let done = app.wait_job(&token, job, Duration::from_secs(120)).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["output_data"]["failed"], 0, "{done}");
    }
    let (stored, named) = objects_match_rows(&app).await;
    assert_eq!(
        (stored, named),
        (12, 12),
        "4 photos × original, thumb, preview"
    );
    assert_eq!(in_flight(&app.pool).await, (0, 0));
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrations = false)]
async fn an_upload_whose_commit_answer_is_lost_keeps_its_objects(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("lost-commit@example.org").await;
    let direct = url_of(&app.pool);
    let url = url::Url::parse(&direct).expect("url");
    let proxy = Proxy::start(url.port().unwrap_or(5432)).await;
    let mut through = url.clone();
    through.set_host(Some("127.0.0.1")).expect("host");
    through.set_port(Some(proxy.port)).expect("port");
    // In clear: the proxy must see the COMMIT go by.
    through.query_pairs_mut().append_pair("sslmode", "disable");
    let serve = app
        .spawn_serve_env(&[("DATABASE_URL", through.as_str())])
        .await;

    proxy.lose_next_media_commit();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(padded_photo("lost", 0)).file_name("lost.jpg"),
    );
    let r = app
        .http
        .post(format!("{}/v1/media", serve.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(proxy.commits_lost(), 1, "the COMMIT's answer was swallowed");
    // The server looked: the session had ended, so the commit went through.
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(status, 202, "{body}");
    let (rows, tasks): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM media_files), (SELECT count(*) FROM apalis.jobs)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("counts");
    assert_eq!((rows, tasks), (1, 1));
    objects_match_rows(&app).await;
    assert_eq!(in_flight(&app.pool).await, (0, 0));

    app.start_worker(&[]);
    let job = body["job"]["id"].as_str().expect("job");
    let done = app.wait_job(&token, job, Duration::from_secs(60)).await;
    assert_eq!(done["output_data"]["completed"], 1, "{done}");
    let (stored, named) = objects_match_rows(&app).await;
    assert_eq!((stored, named), (3, 3));
    drop(serve);
}
