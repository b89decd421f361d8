//! Every hostile file ends `failed` with a reason or is refused with a 4xx, the worker keeps
//! running, and the next good file still completes.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use crate::common::{TestApp, fixtures, spawn_state, test_state, trickle, walk};

/// The repo's bad files, plus ../shared/corpus/bad when it is present (as in CI).
fn bad_files() -> Vec<PathBuf> {
    let mut dirs = vec![fixtures().join("bad")];
    let shared = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/bad"
    ));
    if shared.is_dir() {
        dirs.push(shared);
    }
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    // The repo's copies overlap the shared set: the same bytes twice would (rightly) end as
    // a duplicate, which is not what this test is about.
    let mut seen = std::collections::HashSet::new();
    files.retain(|p| seen.insert(std::fs::read(p).unwrap_or_default()));
    files
}

/// How each hostile file must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Refused at upload with this status (nothing stored).
    Refused(u16),
    /// Accepted, then `failed` with a reason containing this text.
    Failed(&'static str),
    /// Damaged only in its metadata (or hostile only to other software): still a picture.
    Completed,
}

/// The expected end state of every file in the two bad sets (repo and ../shared/corpus/bad).
fn expected(name: &str) -> End {
    match name {
        // Not images at all, whatever their names say.
        "apple-touch-icon.png" | "spoof.png" | "test.jpg" | "zip.png" => End::Refused(415),
        "corrupted.jpg" => End::Failed("truncated image"),
        "decompression_bomb.gif" => End::Failed("truncated image"),
        "huge_tag_exif.jpg"
        | "max_uint32_exif.jpg"
        | "test-issue-608-truncated-exif-tiff-dos.jpg" => End::Failed("corrupt image"),
        "lottapixel.jpg" => End::Failed("100000000-pixel limit"),
        "truncated_image.png" | "truncated_jpeg.jpg" | "ultrahdr.jpg" => {
            End::Failed("truncated image")
        }
        // Hostile EXIF (a PHP payload, an IFD loop, invalid entries, a GPS oddity) or a PNG
        // whose zlib stream would balloon in other decoders: the picture itself is fine.
        "POC_phpinfo-metadata.jpg"
        | "exif_gps.jpg"
        | "infinite_loop_exif.jpg"
        | "invalid-exif.jpg"
        | "png_decompression_dos.png"
        | "uber.gif" => End::Completed,
        other => panic!("no expected end state for {other}: add it to `expected`"),
    }
}

#[sqlx::test(migrations = false)]
async fn hostile_files_fail_cleanly_and_the_worker_survives(pool: PgPool) {
    let mut app = TestApp::start(pool, true).await;
    let (_, token) = app.user("hostile@example.org").await;
    let files = bad_files();
    assert!(files.len() >= 15, "bad fixtures missing: {files:?}");
    let mut jobs = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (status, body) = app
            .upload(&token, &[(&name, std::fs::read(path).unwrap())])
            .await;
        match (status, expected(&name)) {
            (202, End::Failed(_) | End::Completed) => jobs.push((
                name,
                body["job"]["id"].as_str().unwrap().to_owned(),
                body["media"][0]["id"].as_str().unwrap().to_owned(),
            )),
            (status, End::Refused(want)) if status == want => {
                assert_eq!(
                    body["status"], status,
                    "problem+json body for {name}: {body}"
                );
                assert!(
                    body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                    "{name}: {body}"
                );
            }
            (status, want) => panic!("{name}: upload answered {status}, expected {want:?}: {body}"),
        }
    }
    for (name, job, media) in &jobs {
        let done = app.wait_job(&token, job, Duration::from_secs(120)).await;
        let (_, m) = app.get(&token, &format!("/v1/media/{media}")).await;
        match (m["processing_status"].as_str(), expected(name)) {
            (Some("failed"), End::Failed(why)) => {
                let reason = m["error_message"].as_str().unwrap_or("");
                crate::common::assert_names_no_path(&app, name, reason);
                assert!(
                    reason.contains(why),
                    "{name}: {reason:?} does not say {why:?}"
                );
                assert_eq!(done["output_data"]["failed"], 1, "{name}: {done}");
                assert_eq!(done["output_data"]["errors"][0]["error"], reason);
            }
            (Some("completed"), End::Completed) => {
                assert!(m["thumbnails"].is_object(), "{name}: {m}");
            }
            (status, want) => panic!("{name} ended {status:?}, expected {want:?}: {m}"),
        }
        assert!(app.worker_alive(), "the worker died on {name}");
    }
    // The pipeline still works after all that.
    let good = std::fs::read(fixtures().join("no_exif.jpg")).unwrap();
    let (status, body) = app.upload(&token, &[("after.jpg", good)]).await;
    assert_eq!(status, 202);
    let job = app
        .wait_job(
            &token,
            body["job"]["id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["output_data"]["completed"], 1, "{job}");
}

#[sqlx::test(migrations = false)]
async fn refused_uploads_store_nothing(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("refused@example.org").await;
    let good = std::fs::read(fixtures().join("no_exif.jpg")).unwrap();
    // One good file and one script in the same request: 415, and the good one is not kept.
    let (status, body) = app
        .upload(
            &token,
            &[
                ("ok.jpg", good.clone()),
                ("evil.jpg", b"<?php system($_GET['c']); ?>".to_vec()),
            ],
        )
        .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["title"], "Unsupported Media Type");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let stored = walk(&app.storage_dir);
    assert!(stored.is_empty(), "objects left behind: {stored:?}");

    // Too large: 413 (the test app allows 30 MiB per file).
    let big = [good.clone(), vec![0u8; 31 * 1024 * 1024]].concat();
    let (status, _) = app.upload(&token, &[("big.jpg", big)]).await;
    assert_eq!(status, 413);
    assert!(walk(&app.storage_dir).is_empty());

    // A raw body with ?filename= works too; the name is kept for display only.
    let resp = app
        .http
        .post(format!("{}/v1/media?filename=../../etc/passwd", app.base))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert!(resp.headers().get("location").is_some());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["media"][0]["filename"], "passwd");
    let paths: Vec<String> = sqlx::query_scalar("SELECT file_path FROM media_files")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("passwd") && !p.contains("..")),
        "{paths:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn magic_bytes_then_garbage_are_refused_without_reading_the_rest(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    let (_, token) = app.user("magic@example.org").await;
    // A JPEG's four magic bytes, then 1 MiB of zeros, and a body that has not ended: the
    // server answers from the first broken segment, without waiting for the rest.
    let mut first = vec![0xFF, 0xD8, 0xFF, 0xE0];
    first.extend(std::iter::repeat_n(0u8, 1 << 20));
    let (body, more) = trickle(first.into());
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        app.http
            .post(format!("{}/v1/media?filename=fake.jpg", app.base))
            .bearer_auth(&token)
            .body(body)
            .send(),
    )
    .await
    .expect("answered before the body ended")
    .expect("response");
    assert_eq!(resp.status().as_u16(), 415);
    let problem: serde_json::Value = resp.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap_or("");
    assert!(detail.contains("not a valid image/jpeg"), "{problem}");
    assert!(
        !detail.contains('/') || !detail.contains("media/"),
        "no store key: {detail}"
    );
    drop(more);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert!(walk(&app.storage_dir).is_empty(), "nothing kept");
}

#[sqlx::test(migrations = false)]
async fn an_account_past_its_storage_quota_gets_413_with_the_reason(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let photo = std::fs::read(fixtures().join("no_exif.jpg")).unwrap();
    let other = std::fs::read(fixtures().join("landscape_1.jpg")).unwrap();
    let size = photo.len() as u64;
    // Room for the first photo and a little more, not for the second.
    let mut state = test_state(&app.pool, &app.storage_dir);
    state.limits.user_quota_bytes = Some(size + 1000);
    app.base = spawn_state(state, Default::default()).await;
    let (_, token) = app.user("quota@example.org").await;
    let (status, body) = app.upload(&token, &[("a.jpg", photo.clone())]).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = app.upload(&token, &[("b.jpg", other.clone())]).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("storage quota"),
        "{body}"
    );
    // Deleting frees the room: the counter follows the rows.
    let id = {
        let (_, page) = app.get(&token, "/v1/media").await;
        page["items"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let r = app
        .http
        .delete(format!("{}/v1/media/{id}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let used: i64 = sqlx::query_scalar("SELECT used_bytes FROM user_storage")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(used, 0);
    // A tus upload declaring more than the quota is refused at creation.
    let r = app
        .http
        .post(format!("{}/v1/uploads", app.base))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", (size + 5000).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Two uploads at once that each fit alone but not together: one is refused, and the
    // account never holds more than its quota.
    let half = size / 2;
    let mut state = test_state(&app.pool, &app.storage_dir);
    state.limits.user_quota_bytes = Some(size + half);
    app.base = spawn_state(state, Default::default()).await;
    let (c, d) = ([("c.jpg", photo.clone())], [("d.jpg", other.clone())]);
    let (a, b) = tokio::join!(app.upload(&token, &c), app.upload(&token, &d));
    let statuses = [a.0, b.0];
    assert!(statuses.contains(&413), "{a:?} {b:?}");
    let used: i64 = sqlx::query_scalar("SELECT used_bytes FROM user_storage")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(used as u64 <= size + half, "{used}");

    // What the account's uploads in flight declared counts too, until they end, and so does
    // an import archive while it is kept: room for 10,000 bytes more.
    let mut state = test_state(&app.pool, &app.storage_dir);
    state.limits.user_quota_bytes = Some(used as u64 + 10_000);
    app.base = spawn_state(state, Default::default()).await;
    let create = |length, metadata| tus_create(&app, &token, length, metadata);
    let (status, first) = create(9_000, None).await;
    assert_eq!(status, 201);
    assert_eq!(
        create(2_000, None).await.0,
        413,
        "9,000 bytes are on their way"
    );
    let ended = app
        .http
        .delete(first.expect("location"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status().as_u16(), 204);
    // `purpose import`: a zip kept for an import.
    let (status, archive) = create(9_000, Some("purpose aW1wb3J0")).await;
    assert_eq!(status, 201);
    let mut zip = b"PK\x03\x04".to_vec();
    zip.resize(9_000, 0);
    let sent = app
        .http
        .patch(archive.expect("location"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(zip)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 204);
    assert_eq!(create(2_000, None).await.0, 413, "the archive is kept");
    assert_eq!(create(900, None).await.0, 201, "what is left still fits");
}

/// The last PATCH checks the quota again, in the transaction that makes the file, as
/// `POST /v1/media` does: with the room gone meanwhile (here the quota lowered), it answers
/// 413 and makes nothing; the bytes stay, and the same PATCH completes once there is room,
/// with the bytes as they were sent (a retried completion once reopened the staging file at
/// its length, zeros, over the placed object). On the local store and on S3.
#[sqlx::test(migrations = false)]
async fn a_tus_upload_past_the_quota_at_its_end_makes_nothing_until_there_is_room(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let photo = std::fs::read(fixtures().join("no_exif.jpg")).unwrap();
    let size = photo.len() as u64;
    let server = |quota: u64| {
        let mut state = test_state(&app.pool, &app.storage_dir);
        state.limits.user_quota_bytes = Some(quota);
        spawn_state(state, Default::default())
    };
    let (room, full) = (server(10 * size).await, server(size - 1).await);
    app.base = room.clone();
    quota_at_the_end(&app, &room, &full, &photo).await;
}

#[sqlx::test(migrations = false)]
async fn a_tus_upload_into_s3_past_the_quota_at_its_end_makes_nothing_until_there_is_room(
    pool: PgPool,
) {
    let s3 = crate::s3_faults::S3Server::start();
    let env = crate::s3_faults::s3_env(&s3);
    let mut app = TestApp::start(pool, false).await;
    let photo = std::fs::read(fixtures().join("no_exif.jpg")).unwrap();
    let size = photo.len() as u64;
    let serve = |quota: u64| {
        let mut env = env.clone();
        env.push(("TIMELINE_USER_QUOTA_BYTES", quota.to_string()));
        let app = &app;
        async move { app.spawn_serve_env(&crate::s3_faults::as_refs(&env)).await }
    };
    let (room, full) = (serve(10 * size).await, serve(size - 1).await);
    app.base = room.base.clone();
    quota_at_the_end(&app, &room.base, &full.base, &photo).await;
}

/// Creates a tus upload of `photo` at `room`, sends all of it to `full` (413), then completes
/// it at `room` with an empty PATCH; the original served is `photo`.
async fn quota_at_the_end(app: &TestApp, room: &str, full: &str, photo: &[u8]) {
    let (_, token) = app.user("quota-end@example.org").await;
    let size = photo.len() as u64;
    let (status, upload) = tus_create(app, &token, size, None).await;
    assert_eq!(status, 201);
    let path = upload.expect("location").replacen(room, "", 1);
    let last_patch = |base: &str, offset: u64, body: Vec<u8>| {
        app.http
            .patch(format!("{base}{path}"))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(body)
            .send()
    };
    let r = last_patch(full, 0, photo.to_vec()).await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("storage quota")),
        "{problem}"
    );
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(made, 0, "nothing made");
    let r = last_patch(room, size, Vec::new()).await.unwrap();
    let status = r.status().as_u16();
    let media = r
        .headers()
        .get("timeline-media-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(status, 204, "{}", r.text().await.unwrap_or_default());
    let original = app
        .http
        .get(format!("{room}/v1/media/{media}/original"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(original.status().as_u16(), 200);
    assert!(
        original.bytes().await.unwrap().as_ref() == photo,
        "the original is the bytes sent"
    );
}

/// Creates a tus upload of `length` bytes (`metadata`: its `Upload-Metadata`); returns the
/// status and the upload's URL.
async fn tus_create(
    app: &TestApp,
    token: &str,
    length: u64,
    metadata: Option<&str>,
) -> (u16, Option<String>) {
    let mut r = app
        .http
        .post(format!("{}/v1/uploads", app.base))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string());
    if let Some(m) = metadata {
        r = r.header("upload-metadata", m);
    }
    let r = r.send().await.unwrap();
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(|l| format!("{}{l}", app.base));
    (r.status().as_u16(), location)
}

/// An import archive holds many files: it is held to its own limit, not to the largest file
/// (an export of 50 GB must upload for its import), and still to one.
#[sqlx::test(migrations = false)]
async fn an_import_archive_has_its_own_size_limit(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let mut state = test_state(&app.pool, &app.storage_dir);
    state.limits.max_file_bytes = 1_000;
    state.limits.max_archive_bytes = 5_000;
    app.base = spawn_state(state, Default::default()).await;
    let (_, token) = app.user("archive-limit@example.org").await;
    // `purpose import`, base64.
    let archive = Some("purpose aW1wb3J0");
    assert_eq!(tus_create(&app, &token, 2_000, None).await.0, 413);
    assert_eq!(tus_create(&app, &token, 2_000, archive).await.0, 201);
    assert_eq!(tus_create(&app, &token, 5_000, archive).await.0, 201);
    let r = app
        .http
        .post(format!("{}/v1/uploads", app.base))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "5001")
        .header("upload-metadata", "purpose aW1wb3J0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("5000-byte archive limit")),
        "{body}"
    );
}
