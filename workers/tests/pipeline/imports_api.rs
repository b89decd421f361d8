//! `POST /v1/imports` end to end on S3: a two-part Facebook export uploaded by tuspy as archives
//! (`purpose import`, never media files), imported by a worker reading the zips where they
//! are in the store (ranged reads), with every fact landing as from `timeline import`, the
//! skipped entries named in the job, and nothing stored twice when imported again. What the
//! request refuses, and the archives' end once their uploads expire.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::{TestApp, fixtures, photo, url_of};
use crate::imports::{rows, write_zip};
use crate::imports_services::facebook_export;
use crate::proxy::Proxy;
use crate::s3_faults::{S3Server, as_refs, s3_env};
use crate::tus::{finished, tuspy_with};
use crate::video::tempdir;

/// Uploads `file` with tuspy as an archive, declared as `how` says (see tests/tus/upload.py);
/// returns the upload's id.
fn upload_archive(base: &str, token: &str, file: &std::path::Path, how: &str) -> String {
    let endpoint = format!("{base}/v1/uploads");
    let out = finished(tuspy_with(&endpoint, token, file, &[how]));
    let url = out["url"].as_str().expect("url").to_owned();
    url.rsplit('/').next().expect("id").to_owned()
}

async fn post_import(app: &TestApp, base: &str, token: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{base}/v1/imports"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("import");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test(migrations = false)]
async fn an_export_uploaded_through_tus_is_imported_from_s3_by_ranged_reads(pool: PgPool) {
    let s3 = S3Server::start();
    let env = s3_env(&s3);
    let mut app = TestApp::start(pool.clone(), false).await;
    let serve = app.spawn_serve_env(&as_refs(&env)).await;
    app.start_worker_env(&[], &as_refs(&env));
    let (user, token) = app.user("api-import@example.org").await;
    let dir = tempdir("api-import");
    let part1 = facebook_export(&dir);
    // Part 2: a 2 MB photo and a clip no JSON names, read from the store in several ranges.
    // Named without `.zip`: only its `filetype` says it is an archive.
    let part2 = dir.join("facebook-jdoe-20261205-2.part");
    write_zip(
        &part2,
        &[
            (
                "your_facebook_activity/posts/media/Other/big.jpg",
                photo("HMD_Nokia_8.3_5G.jpg"),
            ),
            (
                "your_facebook_activity/posts/media/Other/clip.mp4",
                std::fs::read(fixtures().join("video/with-gps.mp4")).expect("clip"),
            ),
        ],
    );
    let ids = [
        upload_archive(&serve.base, &token, &part1, "import"),
        // API.md's form: `filename` and `filetype` only, no `purpose`.
        upload_archive(&serve.base, &token, &part2, "filetype=application/zip"),
    ];
    assert_eq!(
        count(&pool, "SELECT count(*) FROM media_files").await,
        0,
        "an archive is no media file"
    );
    assert_eq!(
        s3.objects()
            .iter()
            .filter(|o| o.starts_with(&format!("tl/imports/{user}/")))
            .count(),
        2,
        "{:?}",
        s3.objects()
    );

    // What the request refuses.
    let (_, other) = app.user("stranger@example.org").await;
    let (code, _) = post_import(&app, &serve.base, &other, json!({"uploads": [ids[0]]})).await;
    assert_eq!(code, 404, "another user's upload");
    let (code, _) = post_import(&app, &serve.base, &token, json!({"uploads": []})).await;
    assert_eq!(code, 400);
    let (code, _) = post_import(
        &app,
        &serve.base,
        &token,
        json!({"uploads": [ids[0]], "from": "myspace"}),
    )
    .await;
    assert_eq!(code, 400);
    // A photo is no archive: refused at its first bytes.
    let jpeg = photo("DSCN0010.jpg");
    let r = app
        .http
        .post(format!("{}/v1/uploads", serve.base))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", jpeg.len().to_string())
        .header("Upload-Metadata", "purpose aW1wb3J0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(jpeg)
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 415);

    // Sent as `curl -d` sends it (a form's `Content-Type`): the body is JSON all the same.
    let r = app
        .http
        .post(format!("{}/v1/imports", serve.base))
        .bearer_auth(&token)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(json!({"uploads": ids}).to_string())
        .send()
        .await
        .expect("import");
    let code = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(code, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    assert_eq!(body["job"]["job_type"], "import");
    // The archives are kept for the import (a week), past their uploads' day.
    let kept = count(
        &pool,
        "SELECT count(*) FROM upload_sessions
         WHERE purpose = 'archive' AND expires_at > now() + interval '6 days'",
    )
    .await;
    assert_eq!(kept, 2);
    let done = app.wait_job(&token, &job, Duration::from_secs(180)).await;
    assert_eq!(done["status"], "completed", "{done}");
    let out = &done["output_data"];
    assert_eq!(out["total"], 4, "{done}");
    assert_eq!(out["memories_made"], 1, "{done}");
    let skipped: Vec<&str> = out["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(skipped.iter().any(|n| n.ends_with("9.jpg")), "{done}");
    assert!(skipped.iter().any(|n| n.ends_with("likes.json")), "{done}");
    assert_eq!(
        out["without_sidecar"].as_array().map(Vec::len),
        Some(2),
        "{done}"
    );

    let found = rows(&pool, user).await;
    let names: Vec<&str> = found.iter().map(|r| r.filename.as_str()).collect();
    assert_eq!(
        names,
        ["1.jpg", "2.jpg", "big.jpg", "clip.mp4"],
        "{found:#?}"
    );
    assert!(
        found.iter().all(|r| r.processing_status == "completed"),
        "{found:#?}"
    );
    let one = &found[0];
    assert_eq!(one.taken_at.map(|t| t.timestamp()), Some(1_600_000_000));
    assert_eq!(one.taken_at_source.as_deref(), Some("sidecar"));
    assert_eq!(one.country_code.as_deref(), Some("CH"), "{one:?}");
    let big: String =
        sqlx::query_scalar("SELECT file_hash FROM media_files WHERE filename = 'big.jpg'")
            .fetch_one(&pool)
            .await
            .expect("hash");
    let want = <sha2::Sha256 as sha2::Digest>::digest(photo("HMD_Nokia_8.3_5G.jpg"));
    assert_eq!(big, hex::encode(want), "read whole through ranges");

    // Again: nothing stored twice, no second memory.
    let (code, body) = post_import(&app, &serve.base, &token, json!({"uploads": ids})).await;
    assert_eq!(code, 202, "{body}");
    let again = body["job"]["id"].as_str().expect("job").to_owned();
    let done = app.wait_job(&token, &again, Duration::from_secs(120)).await;
    assert_eq!(done["output_data"]["memories_existing"], 1, "{done}");
    assert_eq!(rows(&pool, user).await.len(), 4);
    assert_eq!(count(&pool, "SELECT count(*) FROM memories").await, 1);

    // Once the uploads expire, the reconciler deletes the archives (from the rows).
    sqlx::query("UPDATE upload_sessions SET expires_at = now() - interval '1 minute'")
        .execute(&pool)
        .await
        .expect("expire");
    let db = url_of(&pool);
    let mut envs = as_refs(&env);
    envs.push(("DATABASE_URL", &db));
    for _ in 0..2 {
        let out = std::process::Command::new(crate::ingest_cli::timeline_bin())
            .args(["maintenance", "--grace", "0"])
            .envs(envs.iter().copied())
            .output()
            .expect("maintenance");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !s3.objects().iter().any(|o| o.starts_with("tl/imports/")),
        "{:?}",
        s3.objects()
    );
    assert!(s3.open_parts().is_empty(), "{:?}", s3.open_parts());
    assert_eq!(rows(&pool, user).await.len(), 4, "the media stay");
}

/// An import of six photos (`facebook` layout) run by a worker whose link to the store is
/// slowed, caught once its first chunk is recorded; the web process reaches the store directly.
struct SlowImport {
    s3: S3Server,
    proxy: Proxy,
    app: TestApp,
    serve: crate::common::Serve,
    /// The worker's environment (to start another like it).
    env: Vec<(&'static str, String)>,
    user: uuid::Uuid,
    token: String,
    upload: String,
    job: String,
    job_id: uuid::Uuid,
}

async fn slow_import(pool: &PgPool, email: &str, extra: &[(&'static str, &str)]) -> SlowImport {
    let s3 = S3Server::start();
    let proxy = Proxy::start(s3.port).await;
    let web_env = s3_env(&s3);
    let mut env = web_env.clone();
    for (k, v) in env.iter_mut() {
        if *k == "AWS_ENDPOINT" {
            *v = format!("http://127.0.0.1:{}", proxy.port);
        }
    }
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let mut app = TestApp::start(pool.clone(), false).await;
    let serve = app.spawn_serve_env(&as_refs(&web_env)).await;
    app.start_worker_env(&[], &as_refs(&env));
    let (user, token) = app.user(email).await;
    let dir = tempdir("slow-import");
    let big = photo("landscape_1.jpg");
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            let mut b = big.clone();
            b.extend_from_slice(format!("copy-{i}").as_bytes());
            (
                format!("your_facebook_activity/posts/media/Other/{i}.jpg"),
                b,
            )
        })
        .collect();
    let part = dir.join("facebook-export.zip");
    let entries: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    write_zip(&part, &entries);
    let upload = upload_archive(&serve.base, &token, &part, "import");

    // Both ways: the archive (one read-ahead block) is read in seconds, and the files are
    // stored a chunk at a time, so that the import is caught between its chunks.
    proxy.throttle(100_000);
    proxy.throttle_up(100_000);
    let (code, body) = post_import(&app, &serve.base, &token, json!({"uploads": [upload]})).await;
    assert_eq!(code, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job").to_owned();
    let job_id = uuid::Uuid::parse_str(&job).expect("uuid");
    let started = std::time::Instant::now();
    loop {
        let total: i32 =
            sqlx::query_scalar("SELECT total_count FROM data_processing_jobs WHERE id = $1")
                .bind(job_id)
                .fetch_one(pool)
                .await
                .expect("job");
        if total >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no chunk recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    SlowImport {
        s3,
        proxy,
        app,
        serve,
        env,
        user,
        token,
        upload,
        job,
        job_id,
    }
}

/// The six photos of [`slow_import`], each stored once.
async fn assert_six_once(pool: &PgPool, user: uuid::Uuid) {
    let found = rows(pool, user).await;
    let mut names: Vec<&str> = found.iter().map(|r| r.filename.as_str()).collect();
    names.dedup();
    assert_eq!(
        names,
        ["0.jpg", "1.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg"],
        "{found:#?}"
    );
}

#[sqlx::test(migrations = false)]
async fn an_import_whose_worker_is_killed_is_run_again_by_another(pool: PgPool) {
    let SlowImport {
        s3,
        proxy,
        mut app,
        serve,
        env,
        user,
        token,
        upload: id,
        job,
        job_id,
    } = slow_import(&pool, "killed-import@example.org", &[]).await;
    let mut worker = app.worker.take().expect("worker");
    worker.kill().expect("kill -9");
    worker.wait().expect("wait");
    let sealed: bool = sqlx::query_scalar("SELECT sealed FROM data_processing_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&pool)
        .await
        .expect("job");
    assert!(!sealed, "killed mid-import");
    proxy.throttle(0);
    proxy.throttle_up(0);

    // The queue gives the dead worker's task back; another worker runs it again: every file
    // once.
    app.start_worker_env(&[], &as_refs(&env));
    let done = app.wait_job(&token, &job, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_data"]["total"], 6, "{done}");
    assert_eq!(done["output_data"]["restarts"], 1, "{done}");
    assert_six_once(&pool, user).await;

    // An erasure takes the archive its completed upload still keeps, with everything else.
    let archive = format!("tl/imports/{user}/{id}.zip");
    assert!(s3.objects().contains(&archive), "{:?}", s3.objects());
    let r = app
        .http
        .delete(format!("{}/v1/account", serve.base))
        .bearer_auth(&token)
        .json(&json!({"confirm": "killed-import@example.org"}))
        .send()
        .await
        .expect("erase");
    assert_eq!(r.status().as_u16(), 202);
    let started = std::time::Instant::now();
    while count(
        &pool,
        "SELECT count(*) FROM users WHERE email = 'killed-import@example.org'",
    )
    .await
        > 0
    {
        assert!(started.elapsed() < Duration::from_secs(60), "not erased");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mine: Vec<String> = s3
        .objects()
        .into_iter()
        .filter(|o| o.contains(&user.to_string()))
        .collect();
    assert!(mine.is_empty(), "{mine:?}");
}

/// An outage of the store amid an import is not the archive's fault: the run stops with the
/// job left open (not failed), and once the store is back the import is run again to its end,
/// every file once.
#[sqlx::test(migrations = false)]
async fn an_import_cut_off_from_the_store_is_run_again_once_it_is_back(pool: PgPool) {
    let run = slow_import(
        &pool,
        "outage-import@example.org",
        // The S3 client gives up within a second, so that the outage reaches the import rather
        // than being ridden out by the client's own retries.
        &[
            ("TIMELINE_S3_MAX_RETRIES", "1"),
            ("TIMELINE_S3_RETRY_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    run.proxy.outage(true);
    let out_since = std::time::Instant::now();
    // Through the outage (a run, and runs again, each stopped by it): open, no failure. 10 s
    // outlasts what a read rides out by resuming (5 tries, about 5 s here), and stays inside
    // what the steps of the files already recorded retry through (their 5th attempt comes
    // after 15 s at the least).
    while out_since.elapsed() < Duration::from_secs(10) {
        let (code, view) = run
            .app
            .get(&run.token, &format!("/v1/jobs/{}", run.job))
            .await;
        assert_eq!(code, 200, "{view}");
        assert_eq!(view["status"], "running", "an outage fails nothing: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run.proxy.outage(false);
    run.proxy.throttle(0);
    run.proxy.throttle_up(0);
    let done = run
        .app
        .wait_job(&run.token, &run.job, Duration::from_secs(120))
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output_data"]["total"], 6, "{done}");
    // Run again although its web process never stopped: the outage ended the first run.
    assert!(
        done["output_data"]["restarts"].as_i64().unwrap_or(0) >= 1,
        "run again: {done}"
    );
    assert_six_once(&pool, run.user).await;
    drop(run.serve);
    drop(run.s3);
}

/// An import left running by a dead process with no task left (the queue gave up on it) is
/// queued again by the reconciler, but not run forever: one that has stopped five times ends
/// `failed` with its reason, and one whose archive is gone from the store ends `failed` at
/// once (while an outage of the store would be tried again).
#[sqlx::test(migrations = false)]
async fn an_import_that_keeps_stopping_or_lost_its_archive_fails_with_a_reason(pool: PgPool) {
    let mut app = TestApp::start(pool.clone(), false).await;
    let (user, token) = app.user("stuck-import@example.org").await;
    let stuck = |restarts: i32, key: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "INSERT INTO data_processing_jobs
                     (user_id, job_type, status, sealed, input_data, output_data, started_at,
                      run_beat_at)
                 VALUES ($1, 'import', 'running', false,
                         jsonb_build_object('source', 'api', 'keys', jsonb_build_array($2::text),
                                            'from', 'auto'),
                         jsonb_build_object('restarts', $3::int, 'restart_total', 0),
                         now() - interval '2 hours', now() - interval '1 hour')
                 RETURNING id",
            )
            .bind(user)
            .bind(key)
            .bind(restarts)
            .fetch_one(&pool)
            .await
            .expect("job")
        }
    };
    let gone = format!("imports/{user}/{}.zip", uuid::Uuid::new_v4());
    let worn = stuck(5, gone.clone()).await;
    let lost = stuck(0, gone).await;
    let storage = timeline::storage::Storage::from_url(app.storage_dir.to_str().expect("utf-8"))
        .expect("store");
    let report = timeline::reconcile::run(&pool, &pool, &storage, Duration::ZERO)
        .await
        .expect("pass");
    assert_eq!(report.imports_resumed, 2, "{report:?}");
    let report = timeline::reconcile::run(&pool, &pool, &storage, Duration::ZERO)
        .await
        .expect("pass");
    assert_eq!(report.imports_resumed, 0, "queued once: {report:?}");
    app.start_worker(&[]);
    let started = std::time::Instant::now();
    for (job, why) in [
        (worn, "stopped 5 times without storing"),
        (lost, "no longer in the store"),
    ] {
        let done = loop {
            let (code, job) = app.get(&token, &format!("/v1/jobs/{job}")).await;
            assert_eq!(code, 200, "{job}");
            if job["status"] != "running" {
                break job;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(done["status"], "failed", "{done}");
        let reason = done["error_message"].as_str().unwrap_or_default();
        assert!(reason.contains(why), "{done}");
    }
}
