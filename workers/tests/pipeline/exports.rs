//! `POST /v1/exports` end to end: a library made by a Facebook import and by uploads (a Live
//! Photo pair, a Motion Photo, photos with and without GPS, a duplicate) is exported, downloaded
//! in two ranges, and imported into another account by `timeline import --from timeline`, where
//! every media file's hash, date, offset, place, kind, pairing, albums and memories are equal;
//! then the archive expires and the reconciler deletes it. On S3, an export whose worker is
//! killed mid-write is queued again by the reconciler once the queue has given up its task,
//! resumed by another worker, and no multipart part is left; an outage of the store longer than
//! the export's attempts does not fail it.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{TestApp, fixtures, photo, url_of};
use crate::imports::import;
use crate::imports_services::facebook_export;
use crate::ingest_cli::timeline_bin;
use crate::proxy::Proxy;
use crate::s3_faults::{S3Server, as_refs, s3_env, s3_storage, upload_through};
use crate::video::{tempdir, video_dir};

/// Every fact of a media file that an export must carry over, keyed by its bytes' hash.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Facts {
    file_hash: Option<String>,
    filename: String,
    kind: String,
    mime_type: String,
    taken_at: Option<chrono::DateTime<chrono::Utc>>,
    taken_at_offset_minutes: Option<i16>,
    taken_at_source: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    city: Option<String>,
    country_code: Option<String>,
    paired_with: Option<String>,
    motion_source: Option<String>,
    description: Option<String>,
    albums: Vec<String>,
    memories: Vec<String>,
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct MemoryFacts {
    title: String,
    description: Option<String>,
    memory_date: chrono::DateTime<chrono::Utc>,
    memory_type: String,
    place: Option<String>,
    latitude: Option<f64>,
    media: Vec<String>,
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct AlbumFacts {
    name: String,
    description: Option<String>,
    media: Vec<String>,
}

/// A user's library as the round trip compares it.
#[derive(Debug, PartialEq)]
struct Library {
    media: BTreeMap<String, Facts>,
    albums: Vec<AlbumFacts>,
    memories: Vec<MemoryFacts>,
}

async fn library(pool: &PgPool, user: Uuid) -> Library {
    let rows: Vec<Facts> = sqlx::query_as(
        "SELECT m.file_hash, m.filename, m.kind, m.mime_type, m.taken_at,
                m.taken_at_offset_minutes, m.taken_at_source, l.latitude, l.longitude, l.city,
                l.country_code, p.file_hash AS paired_with, m.motion_source,
                m.import_facts->>'description' AS description,
                ARRAY(SELECT c.name FROM collection_media_files cm
                      JOIN collections c ON c.id = cm.collection_id
                      WHERE cm.media_file_id = m.id ORDER BY c.name) AS albums,
                ARRAY(SELECT me.title FROM memory_media_files mm
                      JOIN memories me ON me.id = mm.memory_id
                      WHERE mm.media_file_id = m.id ORDER BY me.title) AS memories
         FROM media_files m
         LEFT JOIN locations l ON l.id = m.location_id
         LEFT JOIN media_files p ON p.id = coalesce(m.motion_of,
               (SELECT c.id FROM media_files c WHERE c.motion_of = m.id))
         WHERE m.user_id = $1 AND m.duplicate_of IS NULL ORDER BY m.file_hash",
    )
    .bind(user)
    .fetch_all(pool)
    .await
    .expect("media");
    let media = rows
        .into_iter()
        .map(|f| (f.file_hash.clone().unwrap_or_default(), f))
        .collect();
    let albums = sqlx::query_as(
        "SELECT c.name, c.description,
                ARRAY(SELECT mf.file_hash FROM collection_media_files cm
                      JOIN media_files mf ON mf.id = cm.media_file_id
                      WHERE cm.collection_id = c.id ORDER BY mf.file_hash) AS media
         FROM collections c WHERE c.user_id = $1 ORDER BY c.name",
    )
    .bind(user)
    .fetch_all(pool)
    .await
    .expect("albums");
    let memories = sqlx::query_as(
        "SELECT me.title, me.description, me.memory_date, me.memory_type, l.name AS place,
                l.latitude,
                ARRAY(SELECT mf.file_hash FROM memory_media_files mm
                      JOIN media_files mf ON mf.id = mm.media_file_id
                      WHERE mm.memory_id = me.id ORDER BY mm.position) AS media
         FROM memories me LEFT JOIN locations l ON l.id = me.location_id
         WHERE me.user_id = $1 ORDER BY me.title",
    )
    .bind(user)
    .fetch_all(pool)
    .await
    .expect("memories");
    Library {
        media,
        albums,
        memories,
    }
}

/// POSTs an export on `base` and returns its id.
async fn start_export(app: &TestApp, base: &str, token: &str) -> String {
    let r = app
        .http
        .post(format!("{base}/v1/exports"))
        .bearer_auth(token)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let body: Value = r.json().await.expect("json");
    let id = body["export"]["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/v1/exports/{id}"));
    assert_eq!(body["job"]["job_type"], "export");
    id
}

/// Polls an export until it is completed; returns its state.
async fn wait_export(app: &TestApp, base: &str, token: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let body: Value = app
            .http
            .get(format!("{base}/v1/exports/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        match body["status"].as_str() {
            Some("completed") => return body,
            Some("pending" | "running") => {}
            _ => panic!("export ended badly: {body}"),
        }
        assert!(started.elapsed() < Duration::from_secs(180), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Downloads the archive in two ranges and whole; asserts they agree.
async fn download(app: &TestApp, base: &str, token: &str, id: &str, size: u64) -> Vec<u8> {
    let url = format!("{base}/v1/exports/{id}/archive");
    let get = |range: Option<String>| {
        let mut req = app.http.get(&url).bearer_auth(token);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send()
    };
    let whole = get(None).await.expect("archive");
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(whole.headers()["content-type"], "application/zip");
    let whole = whole.bytes().await.expect("bytes").to_vec();
    assert_eq!(whole.len() as u64, size);
    let half = size / 2;
    let first = get(Some(format!("bytes=0-{}", half - 1)))
        .await
        .expect("first");
    assert_eq!(first.status().as_u16(), 206);
    assert_eq!(
        first.headers()["content-range"].to_str().ok(),
        Some(format!("bytes 0-{}/{size}", half - 1).as_str())
    );
    let mut joined = first.bytes().await.expect("bytes").to_vec();
    let rest = get(Some(format!("bytes={half}-"))).await.expect("rest");
    assert_eq!(rest.status().as_u16(), 206);
    joined.extend_from_slice(&rest.bytes().await.expect("bytes"));
    assert!(joined == whole, "the ranges joined are the archive");
    whole
}

/// The archive's entries: name → bytes.
fn entries(zip: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).expect("entry");
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("entry bytes");
            (f.name().expect("a name").to_string(), data)
        })
        .collect()
}

/// The original the archive holds for the file the user named `filename`.
fn original_of(entries: &BTreeMap<String, Vec<u8>>, filename: &str) -> Vec<u8> {
    let sidecar: Value = entries
        .iter()
        .filter(|(n, _)| n.starts_with("media/") && n.ends_with(".json"))
        .map(|(_, b)| serde_json::from_slice::<Value>(b).expect("sidecar"))
        .find(|s| s["filename"] == filename)
        .unwrap_or_else(|| panic!("no sidecar of {filename}"));
    entries[sidecar["file"].as_str().expect("file")].clone()
}

fn maintenance(envs: &[(&str, &str)]) -> Value {
    let out = Command::new(timeline_bin())
        .args(["maintenance", "--grace", "0"])
        .envs(envs.iter().copied())
        .output()
        .expect("maintenance");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report")
}

#[sqlx::test(migrations = false)]
async fn a_library_exports_and_imports_back_into_another_account_exactly(pool: PgPool) {
    let mut app = TestApp::start(pool.clone(), false).await;
    app.start_worker(&[]);
    let (alice, token) = app.user("alice@example.org").await;
    let dir = tempdir("export");
    import(&app, &[&facebook_export(&dir)], "alice@example.org");
    let read = |d: std::path::PathBuf, n: &str| std::fs::read(d.join(n)).expect("fixture");
    let files = vec![
        ("IMG_7943.HEIC", read(video_dir(), "IMG_7943.HEIC")),
        ("IMG_7943_HEVC.MOV", read(video_dir(), "IMG_7943_HEVC.MOV")),
        ("motion_google.jpg", read(video_dir(), "motion_google.jpg")),
        ("gps_sahara.jpg", photo("gps_sahara.jpg")),
        ("DSCN0010.jpg", read(fixtures(), "DSCN0010.jpg")),
    ];
    let (code, body) = app.upload(&token, &files).await;
    assert_eq!(code, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    app.wait_job(&token, &job, Duration::from_secs(120)).await;
    // A duplicate: a record of bytes another row holds, not exported twice.
    let (code, body) = app
        .upload(&token, &[("copy.jpg", photo("DSCN0010.jpg"))])
        .await;
    assert_eq!(code, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    app.wait_job(&token, &job, Duration::from_secs(60)).await;
    let before = library(&pool, alice).await;
    // Two from Facebook, the pair, the Motion Photo and its clip, two photos.
    assert_eq!(before.media.len(), 8, "{before:#?}");
    assert!(
        before
            .media
            .values()
            .any(|f| f.motion_source.as_deref() == Some("live_photo")),
        "{before:#?}"
    );
    assert!(
        before
            .media
            .values()
            .any(|f| f.motion_source.as_deref() == Some("embedded")),
        "{before:#?}"
    );
    assert_eq!(before.memories.len(), 1);
    assert_eq!(before.albums.len(), 1);

    let id = start_export(&app, &app.base, &token).await;
    let state = wait_export(&app, &app.base, &token, &id).await;
    let size = state["size"].as_u64().expect("size");
    assert_eq!(state["download"], format!("/v1/exports/{id}/archive"));
    let expires = state["expires_at"].as_str().expect("expiry");
    let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("date");
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "kept 7 days: {expires}");
    // Another user's export is a 404, its state and its archive.
    let (_, stranger) = app.user("mallory@example.org").await;
    assert_eq!(
        app.get(&stranger, &format!("/v1/exports/{id}")).await.0,
        404
    );
    let path = format!("/v1/exports/{id}/archive");
    assert_eq!(app.get_bytes(&stranger, &path).await.0, 404);

    let zip = download(&app, &app.base, &token, &id, size).await;
    let inside = entries(&zip);
    for name in ["timeline-export.json", "collections.json", "memories.json"] {
        assert!(inside.contains_key(name), "{name}: {:?}", inside.keys());
    }
    let sidecars = inside
        .keys()
        .filter(|n| n.starts_with("media/") && n.ends_with(".json"))
        .count();
    assert_eq!(sidecars, 7, "every media file but the embedded clip");
    assert!(original_of(&inside, "DSCN0010.jpg") == photo("DSCN0010.jpg"));
    let manifest: Value = serde_json::from_slice(&inside["timeline-export.json"]).expect("json");
    assert_eq!(
        (
            manifest["format"].as_str(),
            manifest["media_files"].as_u64()
        ),
        (Some("timeline-export"), Some(7))
    );

    // Into another account: everything equal.
    let archive = dir.join("timeline-export.zip");
    std::fs::write(&archive, &zip).expect("write");
    let (bob, _) = app.user("bob@example.org").await;
    let out = import(&app, &[&archive], "bob@example.org");
    assert!(out.contains("memories: 1 made, 0 already there"), "{out}");
    let after = library(&pool, bob).await;
    assert_eq!(after, before, "{out}");
    // Twice changes nothing.
    let again = import(&app, &[&archive], "bob@example.org");
    assert!(
        again.contains("memories: 0 made, 1 already there"),
        "{again}"
    );
    assert_eq!(library(&pool, bob).await, before, "{again}");

    // Past its expiry the reconciler deletes the archive; the row says so.
    let object = app.storage_dir.join(format!("exports/{alice}/{id}.zip"));
    assert!(object.is_file());
    sqlx::query("UPDATE exports SET expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(Uuid::parse_str(&id).expect("uuid"))
        .execute(&pool)
        .await
        .expect("expire");
    let storage = app.storage_dir.to_string_lossy().into_owned();
    let db = url_of(&pool);
    let report = maintenance(&[("DATABASE_URL", &db), ("TIMELINE_STORAGE", &storage)]);
    assert_eq!(report["reconcile"]["exports_expired"], 1, "{report}");
    assert!(!object.exists());
    let (_, state) = app.get(&token, &format!("/v1/exports/{id}")).await;
    assert_eq!(state["status"], "expired");
    assert_eq!(app.get_bytes(&token, &path).await.0, 404);
}

#[sqlx::test(migrations = false)]
async fn an_export_on_s3_killed_mid_write_is_resumed_and_leaves_no_part(pool: PgPool) {
    let s3 = S3Server::start();
    // The store's link, slowed so that the export is caught mid-write.
    let proxy = Proxy::start(s3.port).await;
    let mut env = s3_env(&s3);
    for (k, v) in env.iter_mut() {
        if *k == "AWS_ENDPOINT" {
            *v = format!("http://127.0.0.1:{}", proxy.port);
        }
    }
    let mut app = TestApp::start(pool.clone(), false).await;
    let serve = app.spawn_serve_env(&as_refs(&env)).await;
    // The export runs in a worker (its `library` pool), not in the web process.
    app.start_worker_env(&["--queues", "library"], &as_refs(&env));
    let (user, token) = app.user("s3-export@example.org").await;
    // Five 2 MB photos (distinct bytes): the archive passes one 8 MiB part.
    let big = photo("HMD_Nokia_8.3_5G.jpg");
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            let mut b = big.clone();
            b.extend_from_slice(format!("copy-{i}").as_bytes());
            (format!("{i}.jpg"), b)
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in &refs {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
        );
    }
    let r = app
        .http
        .post(format!("{}/v1/media", serve.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 202);

    proxy.throttle(1_500_000);
    proxy.throttle_up(1_500_000);
    let id = start_export(&app, &serve.base, &token).await;
    let export = Uuid::parse_str(&id).expect("uuid");
    // A request while it runs joins it.
    assert_eq!(start_export(&app, &serve.base, &token).await, id);
    // Killed once its first part is on the way.
    let started = Instant::now();
    while s3.open_parts().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no part was stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut worker = app.worker.take().expect("worker");
    worker.kill().expect("kill -9");
    worker.wait().expect("wait");
    let (status, open): (String, Option<String>) =
        sqlx::query_as("SELECT status, multipart_id FROM exports WHERE id = $1")
            .bind(export)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(status, "running");
    assert!(open.is_some(), "the row names the upload in progress");
    proxy.throttle(0);
    proxy.throttle_up(0);

    // Its task is still the queue's (held by a worker not yet seen dead): the reconciler
    // leaves it alone, however long it has been silent.
    let db = url_of(&pool);
    let mut envs = as_refs(&env);
    envs.push(("DATABASE_URL", &db));
    tokio::time::sleep(Duration::from_secs(16)).await;
    let report = maintenance(&envs);
    assert_eq!(report["reconcile"]["exports_resumed"], 0, "{report}");
    // The queue gives up on the task (as after its last attempt): the reconciler, from the
    // export's row, queues it again, once; a new worker resumes it, aborting the dead run's
    // upload first.
    sqlx::query("UPDATE apalis.jobs SET status = 'Killed' WHERE job_type = 'library'")
        .execute(&pool)
        .await
        .expect("give the task up");
    let report = maintenance(&envs);
    assert_eq!(report["reconcile"]["exports_resumed"], 1, "{report}");
    let report = maintenance(&envs);
    assert_eq!(
        report["reconcile"]["exports_resumed"], 0,
        "queued once: {report}"
    );
    app.start_worker_env(&["--queues", "library"], &as_refs(&env));
    let started = Instant::now();
    loop {
        let (status, attempt): (String, i32) =
            sqlx::query_as("SELECT status, attempt FROM exports WHERE id = $1")
                .bind(export)
                .fetch_one(&pool)
                .await
                .expect("row");
        if status == "completed" {
            assert_eq!(attempt, 2, "resumed once");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not resumed: {status} {attempt}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s3.open_parts().is_empty(), "{:?}", s3.open_parts());
    assert!(
        s3.objects()
            .contains(&format!("tl/exports/{user}/{id}.zip")),
        "{:?}",
        s3.objects()
    );

    let state = wait_export(&app, &serve.base, &token, &id).await;
    let size = state["size"].as_u64().expect("size");
    let zip = download(&app, &serve.base, &token, &id, size).await;
    let inside = entries(&zip);
    for (name, bytes) in &files {
        assert!(original_of(&inside, name) == *bytes, "{name}");
    }

    // An export that failed while its last run could not abort its upload (its process died
    // with it): the reconciler aborts the upload from the row.
    proxy.throttle(1_500_000);
    proxy.throttle_up(1_500_000);
    let second = start_export(&app, &serve.base, &token).await;
    let second = Uuid::parse_str(&second).expect("uuid");
    let started = Instant::now();
    while s3.open_parts().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "no part");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut worker = app.worker.take().expect("worker");
    worker.kill().expect("kill -9");
    worker.wait().expect("wait");
    proxy.throttle(0);
    proxy.throttle_up(0);
    sqlx::query("UPDATE exports SET status = 'failed', error_message = 'x' WHERE id = $1")
        .bind(second)
        .execute(&pool)
        .await
        .expect("fail it");
    let report = maintenance(&envs);
    assert_eq!(report["reconcile"]["exports_expired"], 1, "{report}");
    assert!(s3.open_parts().is_empty(), "{:?}", s3.open_parts());
    let (status, open): (String, Option<String>) =
        sqlx::query_as("SELECT status, multipart_id FROM exports WHERE id = $1")
            .bind(second)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!((status.as_str(), open), ("failed", None));
}

/// An outage of the store that stops more runs than an export is given (5) does not fail it:
/// each run it stops is recorded as such (`outage_runs`) and not counted, and the first run
/// once the store is back writes the whole archive.
#[sqlx::test(migrations = false)]
async fn an_export_waits_out_a_store_outage_longer_than_its_attempts(pool: PgPool) {
    let s3 = S3Server::start();
    let proxy = Proxy::start(s3.port).await;
    let app = TestApp::start(pool.clone(), false).await;
    // The web process stores the originals straight into S3; no worker runs: the test runs
    // the export itself, through the proxy that it takes down.
    let serve = app.spawn_serve_env(&as_refs(&s3_env(&s3))).await;
    let (_, token) = app.user("outage-export@example.org").await;
    upload_through(&app, &serve, &token, 2).await;
    let id = start_export(&app, &serve.base, &token).await;
    let export = Uuid::parse_str(&id).expect("uuid");
    let storage = s3_storage(&format!("http://127.0.0.1:{}", proxy.port));
    let row = |pool: PgPool| async move {
        sqlx::query_as::<_, (String, i32, i32, Option<String>)>(
            "SELECT status, attempt, outage_runs, error_message FROM exports WHERE id = $1",
        )
        .bind(export)
        .fetch_one(&pool)
        .await
        .expect("row")
    };

    proxy.outage(true);
    for run in 1..=timeline::export::MAX_ATTEMPTS + 2 {
        let stopped = timeline::export::run(&pool, &storage, export).await;
        assert!(stopped.is_err(), "run {run}: {stopped:?}");
        let (status, attempt, outages, why) = row(pool.clone()).await;
        assert_eq!((status.as_str(), attempt, outages), ("running", run, run));
        assert!(
            why.is_some_and(|w| !w.contains("127.0.0.1")),
            "a reason, no URL"
        );
    }
    // The reconciler's count sees no run that died: nothing to fail.
    let (_, state) = app.get(&token, &format!("/v1/exports/{id}")).await;
    assert_ne!(state["status"], "failed", "{state}");

    proxy.outage(false);
    let report = timeline::export::run(&pool, &storage, export)
        .await
        .expect("the store is back")
        .expect("written");
    assert_eq!(report.media_files, 2, "{report:?}");
    let (status, attempt, outages, why) = row(pool.clone()).await;
    assert_eq!((status.as_str(), attempt, outages), ("completed", 8, 7));
    assert_eq!(why, None);
    let done = wait_export(&app, &serve.base, &token, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
}
