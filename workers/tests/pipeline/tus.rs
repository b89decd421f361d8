//! Resumable uploads (tus 1.0.0 at `/v1/uploads`) with real clients, as an app syncing a
//! camera roll would use them:
//! - tus-js-client 4.3.1 under Node into an S3 store (`s3s-fs`), 8 MiB chunks, through a proxy
//!   that slows the client down; the server is killed with -9 mid-upload and started again,
//!   then the client's connection is cut mid-chunk. It resumes each time;
//! - tuspy 1.1.0 into a `file://` store, each chunk with an `Upload-Checksum` (SHA-256), cut
//!   and killed the same way.
//!
//! Either way the media file's `file_hash` equals `sha256sum` of the file, there is exactly
//! one media row, and after one reconciler pass nothing is left in flight: no open session, no
//! pending object, no part of a multipart upload, no staging file. Also the protocol's edges
//! (offsets, limits, checksums, another user's upload, expiry, termination) and
//! `POST /v1/media/exists`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use sqlx::PgPool;

use crate::big_video::{make_clip, sha256_of};
use crate::common::{TestApp, fixtures, free_port, url_of, walk};
use crate::proxy::Proxy;
use crate::reconcile::{in_flight, maintenance, objects_match_rows};
use crate::s3_faults::{S3Server, as_refs, s3_env};
use crate::video::tempdir;

const CHUNK: &str = "8388608";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `node tests/tus/upload.mjs …` (tus-js-client, installed by `scripts/setup.sh --tests`).
fn tus_js(endpoint: &str, token: &str, file: &Path) -> Child {
    assert!(
        root().join("tests/tus/node_modules/tus-js-client").is_dir(),
        "tus-js-client is not installed: run scripts/setup.sh --tests"
    );
    Command::new("node")
        .arg(root().join("tests/tus/upload.mjs"))
        .args([endpoint, token])
        .arg(file)
        .arg(CHUNK)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node")
}

/// `python tests/tus/upload.py …` (tuspy, in the venv `scripts/setup.sh --tests` makes).
fn tuspy(endpoint: &str, token: &str, file: &Path) -> Child {
    tuspy_with(endpoint, token, file, &[])
}

/// [`tuspy`] with more arguments (`import`: an archive for `POST /v1/imports`).
pub(crate) fn tuspy_with(endpoint: &str, token: &str, file: &Path, more: &[&str]) -> Child {
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root().join("target"), PathBuf::from);
    let python = target.join("tus-venv/bin/python");
    assert!(
        python.exists(),
        "tuspy is not installed: run scripts/setup.sh --tests"
    );
    Command::new(python)
        .arg(root().join("tests/tus/upload.py"))
        .args([endpoint, token])
        .arg(file)
        .arg(CHUNK)
        .args(more)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python")
}

/// Waits until the upload has recorded at least `bytes`.
async fn wait_offset(pool: &PgPool, bytes: i64) {
    let started = Instant::now();
    loop {
        let got: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(bytes_received), 0) FROM upload_sessions WHERE protocol = 'tus'",
        )
        .fetch_one(pool)
        .await
        .expect("offset");
        if got >= bytes {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stuck at {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn kill_9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The client's one JSON line, once it has finished.
pub(crate) fn finished(client: Child) -> Value {
    let out = client.wait_with_output().expect("client");
    assert!(out.status.success(), "the tus client failed");
    serde_json::from_slice(&out.stdout).expect("json")
}

/// One media row, completed, whose hash is the file's.
async fn one_completed_media(app: &TestApp, token: &str, want: &str) -> Value {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM media_files")
        .fetch_all(&app.pool)
        .await
        .expect("rows");
    assert_eq!(ids.len(), 1, "exactly one media row");
    let started = Instant::now();
    loop {
        let (_, m) = app.get(token, &format!("/v1/media/{}", ids[0])).await;
        if m["processing_status"] == "completed" {
            assert_eq!(m["file_hash"].as_str(), Some(want), "{m}");
            return m;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn tus_js_client_resumes_into_s3_through_a_killed_server_and_a_cut_connection(pool: PgPool) {
    let dir = tempdir("tus-js");
    let clip = make_clip(&dir, 48 << 20);
    let size = std::fs::metadata(&clip).expect("clip").len();
    let want = sha256_of(&clip, 0..size);
    let s3 = S3Server::start();
    let env = s3_env(&s3);
    let env = as_refs(&env);
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("tus-js@example.org").await;
    let port = free_port();
    let mut serve = app.spawn_serve_on(port, &env).await;
    let proxy = Proxy::start(port).await;
    proxy.throttle_up(8_000_000);
    let endpoint = format!("http://127.0.0.1:{}/v1/uploads", proxy.port);
    let client = tus_js(&endpoint, &token, &clip);

    wait_offset(&app.pool, 16 << 20).await;
    kill_9(&mut serve.child);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _serve = app.spawn_serve_on(port, &env).await;
    wait_offset(&app.pool, 32 << 20).await;
    proxy.cut_up_after(2 << 20);
    let done = finished(client);
    assert_eq!(proxy.cuts(), 1, "{done}");
    assert!(done["retries"].as_u64() >= Some(2), "{done}");
    assert!(done["media_id"].is_string(), "{done}");

    app.start_worker_env(&[], &env);
    let m = one_completed_media(&app, &token, &want).await;
    assert_eq!(done["media_id"], m["id"]);
    assert_eq!(m["file_size"].as_u64(), Some(size));
    // One pass: nothing in flight is left, in the rows or in the store.
    let out = Command::new(crate::ingest_cli::timeline_bin())
        .args(["maintenance", "--grace", "0"])
        .env("DATABASE_URL", url_of(&app.pool))
        .envs(env.iter().copied())
        .output()
        .expect("maintenance");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM upload_sessions WHERE state = 'open'")
        .fetch_one(&app.pool)
        .await
        .expect("open");
    assert_eq!(open, 0);
    assert_eq!(in_flight(&app.pool).await.0, 0, "no pending object");
    assert_eq!(s3.open_parts(), Vec::<String>::new(), "no orphan part");
    let mut objects = s3.objects();
    objects.sort();
    assert_eq!(objects.len(), 3, "original, thumb, preview: {objects:?}");
    assert!(
        objects.iter().all(|o| o.starts_with("tl/media/")),
        "{objects:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrations = false)]
async fn tuspy_resumes_with_checksums_into_files_through_a_cut_and_a_killed_server(pool: PgPool) {
    let dir = tempdir("tuspy");
    let clip = make_clip(&dir, 40 << 20);
    let size = std::fs::metadata(&clip).expect("clip").len();
    let want = sha256_of(&clip, 0..size);
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("tuspy@example.org").await;
    let port = free_port();
    let mut serve = app.spawn_serve_on(port, &[]).await;
    let proxy = Proxy::start(port).await;
    proxy.throttle_up(8_000_000);
    let endpoint = format!("http://127.0.0.1:{}/v1/uploads", proxy.port);
    let client = tuspy(&endpoint, &token, &clip);

    wait_offset(&app.pool, 8 << 20).await;
    proxy.cut_up_after(3 << 20);
    wait_offset(&app.pool, 24 << 20).await;
    kill_9(&mut serve.child);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _serve = app.spawn_serve_on(port, &[]).await;
    let done = finished(client);
    assert_eq!(proxy.cuts(), 1, "{done}");

    app.start_worker(&[]);
    one_completed_media(&app, &token, &want).await;
    let report = maintenance(&app, 0);
    assert_eq!(report["sessions_aborted"], 0, "{report}");
    assert_eq!(in_flight(&app.pool).await.0, 0, "no pending object");
    let (stored, named) = objects_match_rows(&app).await;
    assert_eq!((stored, named), (3, 3), "no staging file left");
    let _ = std::fs::remove_dir_all(dir);
}

/// A tus request against the in-process API.
async fn tus(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.body(body).send().await.expect("send")
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Chunks of every shape into S3, where each part streams to the store while it arrives:
/// a chunk that ends mid-part (its bytes become a tail), a whole part refused by its checksum
/// (its streamed part is discarded), one that starts from a tail and spills into the next
/// part, and a last chunk of several parts, kept in flight together up to the short final
/// one. The stored file is the
/// file, byte for byte, and no part or tail is left.
#[sqlx::test(migrations = false)]
async fn chunks_of_every_shape_stream_into_s3_parts(pool: PgPool) {
    let dir = tempdir("tus-shapes");
    let clip = make_clip(&dir, (45 << 20) + 12_345);
    let bytes = std::fs::read(&clip).expect("clip");
    let want = sha256_of(&clip, 0..bytes.len() as u64);
    let s3 = S3Server::start();
    let env = s3_env(&s3);
    let env = as_refs(&env);
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("shapes@example.org").await;
    let port = free_port();
    let _serve = app.spawn_serve_on(port, &env).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method,
                url: String,
                headers: Vec<(&'static str, String)>,
                body: Vec<u8>| {
        let mut req = http
            .request(method, url)
            .bearer_auth(&token)
            .header("Tus-Resumable", "1.0.0");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.body(body).send()
    };
    let r = send(
        reqwest::Method::POST,
        format!("{base}/v1/uploads"),
        vec![
            ("Upload-Length", bytes.len().to_string()),
            (
                "Upload-Metadata",
                format!("filename {}", b64(b"shapes.mp4")),
            ),
        ],
        Vec::new(),
    )
    .await
    .expect("create");
    assert_eq!(r.status(), 201);
    let url = format!("{base}{}", header(&r, "location").trim_start_matches(&base));
    let patch = |from: usize, to: usize, checksum: Option<Vec<u8>>| {
        let mut headers = vec![
            ("Upload-Offset", from.to_string()),
            ("Content-Type", "application/offset+octet-stream".to_owned()),
        ];
        if let Some(sum) = checksum {
            headers.push(("Upload-Checksum", format!("sha256 {}", b64(&sum))));
        }
        send(
            reqwest::Method::PATCH,
            url.clone(),
            headers,
            bytes[from..to].to_vec(),
        )
    };
    let sha = |from: usize, to: usize| {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes[from..to]).to_vec()
    };
    let mib = 1usize << 20;

    // Ends mid-part: 5 MiB are a tail.
    let r = patch(0, 5 * mib, None).await.expect("patch 1");
    assert_eq!(
        (r.status().as_u16(), header(&r, "upload-offset")),
        (204, (5 * mib).to_string())
    );
    // A whole part's worth with a wrong checksum: refused, the offset stays.
    let r = patch(5 * mib, 13 * mib, Some(sha(0, 8 * mib)))
        .await
        .expect("patch 2");
    assert_eq!(r.status().as_u16(), 460);
    let r = send(reqwest::Method::HEAD, url.clone(), vec![], Vec::new())
        .await
        .expect("head");
    assert_eq!(header(&r, "upload-offset"), (5 * mib).to_string());
    // The same bytes, checked: the tail and 3 MiB make part 1, 5 MiB start part 2.
    let r = patch(5 * mib, 13 * mib, Some(sha(5 * mib, 13 * mib)))
        .await
        .expect("patch 3");
    assert_eq!(
        (r.status().as_u16(), header(&r, "upload-offset")),
        (204, (13 * mib).to_string())
    );
    // The rest, 32 MiB in one chunk: part 2 completes, parts 3 to 5 go on storing while the
    // next fills (four in flight), and the short last part streams too.
    let r = patch(13 * mib, bytes.len(), None).await.expect("patch 4");
    assert_eq!(
        r.status().as_u16(),
        204,
        "{}",
        r.text().await.unwrap_or_default()
    );

    app.start_worker_env(&[], &env);
    let m = one_completed_media(&app, &token, &want).await;
    assert_eq!(m["file_size"].as_u64(), Some(bytes.len() as u64));
    // Read back through the process that serves the S3 store.
    let r = send(
        reqwest::Method::GET,
        format!(
            "{base}/v1/media/{}/original",
            m["id"].as_str().unwrap_or("")
        ),
        vec![],
        Vec::new(),
    )
    .await
    .expect("original");
    assert_eq!(r.status(), 200);
    let original = r.bytes().await.expect("body");
    assert!(
        original == bytes,
        "the stored original is the file, byte for byte"
    );
    assert_eq!(
        s3.open_parts(),
        Vec::<String>::new(),
        "no open multipart upload"
    );
    assert_eq!(in_flight(&app.pool).await.0, 0, "no pending object");
    let objects = s3.objects();
    assert!(
        objects.iter().all(|o| !o.contains("/uploads/")),
        "no tail left: {objects:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrations = false)]
async fn the_tus_protocol_refuses_what_it_must_and_loses_nothing(pool: PgPool) {
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("edges@example.org").await;
    let (_, other) = app.user("other@example.org").await;
    let photo = std::fs::read(fixtures().join("landscape_1.jpg")).expect("fixture");
    let len = photo.len();
    use reqwest::Method;

    // Discovery needs no token.
    let r = app
        .http
        .request(Method::OPTIONS, format!("{}/v1/uploads", app.base))
        .send()
        .await
        .expect("options");
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "tus-version"), "1.0.0");
    assert_eq!(header(&r, "tus-checksum-algorithm"), "sha256");
    for ext in [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(
            header(&r, "tus-extension").split(',').any(|e| e == ext),
            "{ext}"
        );
    }

    // Without the protocol version: 412. Over the size limit: 413 at creation.
    let r = app
        .http
        .post(format!("{}/v1/uploads", app.base))
        .bearer_auth(&token)
        .header("Upload-Length", len.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 412);
    let r = tus(
        &app,
        Method::POST,
        "/v1/uploads",
        &token,
        &[("Upload-Length", (1u64 << 40).to_string())],
        vec![],
    )
    .await;
    assert_eq!(r.status(), 413);

    let meta = format!("filename {}", b64(b"edge.jpg"));
    let create = |length: usize| {
        let meta = meta.clone();
        let app = &app;
        let token = token.clone();
        async move {
            let r = tus(
                app,
                Method::POST,
                "/v1/uploads",
                &token,
                &[
                    ("Upload-Length", length.to_string()),
                    ("Upload-Metadata", meta),
                ],
                vec![],
            )
            .await;
            assert_eq!(r.status(), 201);
            assert!(!header(&r, "upload-expires").is_empty());
            header(&r, "location")
        }
    };
    let loc = create(len).await;
    let patch = |offset: usize, body: Vec<u8>, extra: Vec<(&'static str, String)>| {
        let app = &app;
        let token = token.clone();
        let loc = loc.clone();
        async move {
            let mut h = vec![
                ("Upload-Offset", offset.to_string()),
                ("Content-Type", "application/offset+octet-stream".to_owned()),
            ];
            h.extend(extra);
            tus(app, Method::PATCH, &loc, &token, &h, body).await
        }
    };
    // Another protocol version: 412. None (API.md's PATCH names only `Content-Type` and
    // `Upload-Offset`): taken as 1.0.0.
    let raw_patch = |version: Option<&'static str>| {
        let mut req = app
            .http
            .patch(format!("{}{loc}", app.base))
            .bearer_auth(&token)
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/offset+octet-stream")
            .body(photo[..1000].to_vec());
        if let Some(v) = version {
            req = req.header("Tus-Resumable", v);
        }
        req.send()
    };
    assert_eq!(raw_patch(Some("0.2.2")).await.expect("patch").status(), 412);
    let r = raw_patch(None).await.expect("patch");
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "upload-offset"), "1000");
    // A wrong offset: 409, nothing stored.
    assert_eq!(
        patch(10, photo[10..2000].to_vec(), vec![]).await.status(),
        409
    );
    // A checksum that does not match: 460, the chunk discarded.
    let wrong = format!("sha256 {}", b64(&[0u8; 32]));
    let r = patch(
        1000,
        photo[1000..5000].to_vec(),
        vec![("Upload-Checksum", wrong)],
    )
    .await;
    assert_eq!(r.status().as_u16(), 460);
    let r = tus(&app, Method::HEAD, &loc, &token, &[], vec![]).await;
    assert_eq!(header(&r, "upload-offset"), "1000");
    assert_eq!(header(&r, "cache-control"), "no-store");
    // Another user's upload is a 404, whatever the method.
    assert_eq!(
        tus(&app, Method::HEAD, &loc, &other, &[], vec![])
            .await
            .status(),
        404
    );
    assert_eq!(
        tus(&app, Method::DELETE, &loc, &other, &[], vec![])
            .await
            .status(),
        404
    );
    // Bytes past the length: 400, nothing stored past it.
    let mut long = photo[1000..].to_vec();
    long.extend_from_slice(b"past the end");
    assert_eq!(patch(1000, long, vec![]).await.status(), 400);
    let r = tus(&app, Method::HEAD, &loc, &token, &[], vec![]).await;
    assert_eq!(header(&r, "upload-offset"), "1000");
    // The rest, with a good checksum: the media file is made, and named in the answer.
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&photo[1000..]).to_vec()
    };
    let r = patch(
        1000,
        photo[1000..].to_vec(),
        vec![("Upload-Checksum", format!("sha256 {}", b64(&digest)))],
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "upload-offset"), len.to_string());
    let media = header(&r, "timeline-media-id");
    let job = header(&r, "timeline-job-id");
    let (_, view) = app.get(&token, &loc).await;
    assert_eq!(view["media_id"], media.as_str(), "{view}");
    assert_eq!(view["job_id"], job.as_str(), "{view}");
    // Sent twice (a client that did not hear the answer): the same answer, one media row.
    let r = patch(len, vec![], vec![]).await;
    assert_eq!(r.status(), 204);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&app.pool)
        .await
        .expect("rows");
    assert_eq!(rows, 1);

    // Not media: refused at the first chunk with 415, and nothing is left.
    let loc2 = create(4096).await;
    let r = tus(
        &app,
        Method::PATCH,
        &loc2,
        &token,
        &[
            ("Upload-Offset", "0".into()),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
        vec![b'x'; 4096],
    )
    .await;
    assert_eq!(r.status(), 415);
    assert_eq!(
        tus(&app, Method::DELETE, &loc2, &token, &[], vec![])
            .await
            .status(),
        204
    );
    assert_eq!(
        tus(&app, Method::HEAD, &loc2, &token, &[], vec![])
            .await
            .status(),
        404
    );

    // A JPEG's magic bytes and then zeros: `POST /v1/media` refuses them (415, the framing
    // broken), and so does the last PATCH, which makes nothing and keeps nothing.
    let mut fake = vec![0xFF, 0xD8, 0xFF, 0xE0];
    fake.resize(65_536, 0);
    let loc4 = create(fake.len()).await;
    let r = tus(
        &app,
        Method::PATCH,
        &loc4,
        &token,
        &[
            ("Upload-Offset", "0".into()),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
        fake,
    )
    .await;
    assert_eq!(r.status(), 415);
    let problem: Value = r.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not a valid image/jpeg")),
        "{problem}"
    );
    assert_eq!(
        tus(&app, Method::HEAD, &loc4, &token, &[], vec![])
            .await
            .status(),
        404,
        "the refused upload is gone"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&app.pool)
        .await
        .expect("rows");
    assert_eq!(rows, 1, "nothing made");

    // Expired: 404, and the reconciler aborts it and removes what it stored.
    let loc3 = create(len).await;
    let r = tus(
        &app,
        Method::PATCH,
        &loc3,
        &token,
        &[
            ("Upload-Offset", "0".into()),
            ("Content-Type", "application/offset+octet-stream".into()),
        ],
        photo[..3000].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 204);
    sqlx::query(
        "UPDATE upload_sessions SET expires_at = now() - interval '1 second' WHERE state = 'open'",
    )
    .execute(&app.pool)
    .await
    .expect("expire");
    assert_eq!(
        tus(&app, Method::HEAD, &loc3, &token, &[], vec![])
            .await
            .status(),
        404
    );
    let report = maintenance(&app, 3600);
    assert_eq!(report["sessions_aborted"], 1, "{report}");
    assert_eq!(
        in_flight(&app.pool).await,
        (0, 1),
        "only the completed upload's record is left"
    );
    assert!(
        walk(&app.storage_dir)
            .iter()
            .all(|p| !p.to_string_lossy().contains("/uploads/")),
        "no staging file left"
    );

    // Which hashes do I have already?
    app.start_worker(&[]);
    app.wait_job(&token, &job, Duration::from_secs(60)).await;
    let have = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&photo))
    };
    let r = app
        .http
        .post(format!("{}/v1/media/exists", app.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sha256": [have.to_uppercase(), "0".repeat(64)]}))
        .send()
        .await
        .expect("exists");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    // Keyed as sent: a client finds its own (upper-case) string.
    assert_eq!(
        body["existing"],
        serde_json::json!({ have.to_uppercase(): media })
    );
    let r = app
        .http
        .post(format!("{}/v1/media/exists", app.base))
        .bearer_auth(&other)
        .json(&serde_json::json!({"sha256": [have]}))
        .send()
        .await
        .expect("exists");
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body["existing"],
        serde_json::json!({}),
        "only the caller's own media"
    );
}
