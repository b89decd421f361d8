//! The right to erasure: `DELETE /v1/account` and `timeline users erase` delete every row and
//! every stored object of the user (an open resumable upload's included), kill the token, leave
//! the audit trail anonymized and another user's data untouched; an erasure that dies half-way
//! is finished by the reconciler; and collections list what is in them.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{TestApp, photo, url_of, walk};
use crate::ingest_cli::timeline_bin;

/// Every stored file, as paths relative to the store.
fn stored(app: &TestApp) -> BTreeSet<String> {
    walk(&app.storage_dir)
        .into_iter()
        .filter_map(|p| {
            p.strip_prefix(&app.storage_dir)
                .ok()
                .map(|r| r.display().to_string())
        })
        .collect()
}

/// Rows still naming `user` in any table with a `user_id` or `created_by_user_id` column
/// (the audit trail aside: it keeps who did what, with its values stripped).
async fn rows_of(pool: &PgPool, user: Uuid) -> Vec<(String, i64)> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name IN ('user_id', 'created_by_user_id', 'id')
           AND table_name NOT LIKE 'audit_logs%'
           AND table_name IN (SELECT table_name FROM information_schema.tables
                              WHERE table_schema = 'public' AND table_type = 'BASE TABLE')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut found = Vec::new();
    for (table, column) in columns {
        if column == "id" && table != "users" {
            continue;
        }
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE {column} = $1"
        )))
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            found.push((format!("{table}.{column}"), n));
        }
    }
    found
}

/// Uploads photos and waits for their job.
async fn upload_and_wait(app: &TestApp, token: &str, names: &[&str]) -> Vec<String> {
    let files: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (*n, photo(n))).collect();
    let (status, body) = app.upload(token, &files).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    app.wait_job(token, &job, Duration::from_secs(60)).await;
    body["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Opens a resumable upload with its first bytes, left unfinished.
async fn open_tus_upload(app: &TestApp, token: &str) -> String {
    let first = photo("DSCN0010.jpg");
    let r = app
        .http
        .post(format!("{}/v1/uploads", app.base))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", (first.len() * 2).to_string())
        .header("Upload-Metadata", "filename ZmlsZS5qcGc=")
        .header("Content-Type", "application/offset+octet-stream")
        .body(first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// An album with the user's media in it, made as an import makes them.
async fn album(pool: &PgPool, user: Uuid, name: &str, media: &[String]) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    let id = timeline::db::collections::ensure(&mut conn, user, name, Some("from a test"))
        .await
        .unwrap();
    for (i, m) in media.iter().enumerate() {
        let m: Uuid = m.parse().unwrap();
        timeline::db::collections::add_media(&mut *conn, user, id, m, i as i32)
            .await
            .unwrap();
    }
    id
}

#[sqlx::test(migrations = false)]
async fn an_erased_account_leaves_no_row_no_object_and_a_dead_token(pool: PgPool) {
    let app = TestApp::start(pool.clone(), true).await;
    let (gone, gone_token) = app.user("leaving@example.org").await;
    let (stays, stays_token) = app.user("staying@example.org").await;
    let mine = upload_and_wait(&app, &gone_token, &["DSCN0010.jpg", "Kodak_CX7530.jpg"]).await;
    let theirs = upload_and_wait(&app, &stays_token, &["DSCN0010.jpg"]).await;
    album(&pool, gone, "Holidays", &mine).await;
    album(&pool, stays, "Holidays", &theirs).await;
    sqlx::query("INSERT INTO memories (user_id, title, memory_date) VALUES ($1, 'A day', now())")
        .bind(gone)
        .execute(&pool)
        .await
        .unwrap();
    open_tus_upload(&app, &gone_token).await;
    let before = stored(&app);
    let (mine_before, theirs_before): (BTreeSet<_>, BTreeSet<_>) = before
        .iter()
        .cloned()
        .partition(|p| p.contains(&gone.to_string()));
    assert!(
        mine_before.len() >= 6,
        "originals, renditions, the upload's bytes: {mine_before:?}"
    );
    assert!(!theirs_before.is_empty());

    // The confirmation must be the account's own email.
    let erase = |confirm: &str| {
        app.http
            .delete(format!("{}/v1/account", app.base))
            .bearer_auth(&gone_token)
            .json(&json!({ "confirm": confirm }))
            .send()
    };
    let r = erase("staying@example.org").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(
        rows_of(&pool, gone).await.len() > 3,
        "nothing erased on a bad confirmation"
    );

    let r = erase("Leaving@Example.org").await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["job"]["job_type"], "account_deletion");
    assert_eq!(
        location,
        format!("/v1/jobs/{}", body["job"]["id"].as_str().unwrap())
    );

    // The token works for following the job until the erasure ends; then it is dead.
    let started = Instant::now();
    loop {
        let (status, job) = app.get(&gone_token, &location).await;
        // 404: a poll authenticated just before the erasure's commit reads the job after it.
        if status == 401 || status == 404 {
            break;
        }
        assert_eq!(status, 200, "{job}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "erasure not done: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.get(&gone_token, "/v1/media").await.0, 401);

    assert_eq!(
        rows_of(&pool, gone).await,
        vec![],
        "rows of the erased user remain"
    );
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pending_objects WHERE user_id = $1")
            .bind(gone)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(pending, 0);
    let after = stored(&app);
    assert!(
        after.iter().all(|p| !p.contains(&gone.to_string())),
        "objects of the erased user remain: {after:?}"
    );
    assert_eq!(
        after, theirs_before,
        "the other user's objects are untouched"
    );

    // The audit trail keeps who/what/when, without a single value of theirs.
    let (audit_rows, with_values): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE old_values IS NOT NULL OR new_values IS NOT NULL
                                              OR ip_address IS NOT NULL OR user_agent IS NOT NULL)
         FROM audit_logs WHERE owner_user_id = $1 OR user_id = $1",
    )
    .bind(gone)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(audit_rows > 0);
    assert_eq!(
        with_values, 0,
        "audit rows of the erased user still hold values"
    );

    // The other user sees everything of theirs, their album included.
    let (status, page) = app.get(&stays_token, "/v1/media").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), theirs.len());
    let (status, albums) = app.get(&stays_token, "/v1/collections").await;
    assert_eq!(status, 200, "{albums}");
    assert_eq!(albums["items"][0]["media_count"], 1);

    // A reconciler pass afterwards finds nothing of theirs to clean.
    let storage = timeline::storage::Storage::from_url(app.storage_dir.to_str().unwrap()).unwrap();
    let report = timeline::reconcile::run(&pool, &pool, &storage, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.sessions_aborted, 0, "{report:?}");
    assert_eq!(report.pending_objects_settled, 0, "{report:?}");
    assert_eq!(report.orphan_objects_deleted, 0, "{report:?}");
    assert_eq!(report.erasures_finished, 0, "{report:?}");
    let _ = stays;
}

#[sqlx::test(migrations = false)]
async fn an_account_being_erased_takes_no_uploads_and_a_dead_erasure_is_finished(pool: PgPool) {
    let app = TestApp::start(pool.clone(), false).await;
    let (user, token) = app.user("half@example.org").await;
    let (other, other_token) = app.user("whole@example.org").await;
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| (format!("p{i}.jpg"), photo("Kodak_CX7530.jpg")))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    assert_eq!(app.upload(&token, &refs).await.0, 202);
    assert_eq!(app.upload(&other_token, &refs[..2]).await.0, 202);
    let theirs: BTreeSet<String> = stored(&app)
        .into_iter()
        .filter(|p| p.contains(&other.to_string()))
        .collect();

    // The request is recorded; the erasure's process dies after a few batches.
    let mut tx = pool.begin().await.unwrap();
    let job = timeline::erasure::request(&mut tx, user)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let storage = timeline::storage::Storage::from_url(app.storage_dir.to_str().unwrap()).unwrap();
    let runner = {
        let (pool, storage) = (pool.clone(), storage.clone());
        tokio::spawn(
            async move { timeline::erasure::run_in_batches(&pool, &storage, job, 1).await },
        )
    };
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files WHERE user_id = $1")
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap();
        if left <= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    runner.abort();
    assert!(
        runner.await.unwrap_err().is_cancelled(),
        "the erasure ended before it was cut"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files WHERE user_id = $1")
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(left > 0 && left < 24, "half-way: {left} files left");
    let (status, job_view) = app.get(&token, &format!("/v1/jobs/{job}")).await;
    assert_eq!(status, 200);
    assert_eq!(job_view["status"], "running", "{job_view}");
    assert!(
        job_view["output_data"]["media_files"].as_i64().unwrap() >= 3,
        "{job_view}"
    );

    // Meanwhile the account takes no uploads, by any route.
    let (status, body) = app.upload(&token, &refs[..1]).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("being erased"),
        "{body}"
    );
    let r = app
        .http
        .post(format!("{}/v1/uploads", app.base))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let out = Command::new(timeline_bin())
        .args([
            "ingest",
            "/nonexistent-but-refused-first",
            "--email",
            "half@example.org",
        ])
        .env("DATABASE_URL", url_of(&pool))
        .env("TIMELINE_STORAGE", &app.storage_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("being erased"), "{err}");

    // The reconciler finds the unfinished erasure and runs it to its end.
    let report = timeline::reconcile::run(&pool, &pool, &storage, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.erasures_finished, 1, "{report:?}");
    assert_eq!(rows_of(&pool, user).await, vec![]);
    let after = stored(&app);
    assert!(
        after.iter().all(|p| !p.contains(&user.to_string())),
        "{after:?}"
    );
    assert_eq!(after, theirs);
    assert_eq!(app.get(&token, "/v1/media").await.0, 401);
    assert_eq!(app.get(&other_token, "/v1/media").await.0, 200);
}

#[sqlx::test(migrations = false)]
async fn users_erase_runs_the_erasure_and_prints_its_counts(pool: PgPool) {
    let app = TestApp::start(pool.clone(), false).await;
    let (user, token) = app.user("cli-erase@example.org").await;
    let (status, _) = app
        .upload(
            &token,
            &[
                ("a.jpg", photo("DSCN0010.jpg")),
                ("b.jpg", photo("Kodak_CX7530.jpg")),
            ],
        )
        .await;
    assert_eq!(status, 202);
    let erase = || {
        Command::new(timeline_bin())
            .args(["users", "erase", "--email", "CLI-erase@example.org"])
            .env("DATABASE_URL", url_of(&pool))
            .env("TIMELINE_STORAGE", &app.storage_dir)
            .output()
            .unwrap()
    };
    let out = erase();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["erased"], true, "{report}");
    assert_eq!(report["media_files"], 2, "{report}");
    // Each file's original, preview and thumbnail keys (the two not made yet included).
    assert_eq!(report["object_keys_deleted"], 6, "{report}");
    assert!(
        report["audit_rows_anonymized"].as_i64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(rows_of(&pool, user).await, vec![]);
    assert!(stored(&app).iter().all(|p| !p.contains(&user.to_string())));
    // Once erased there is no such user.
    let out = erase();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
}

#[sqlx::test(migrations = false)]
async fn collections_list_their_media_count_cover_and_media(pool: PgPool) {
    let app = TestApp::start(pool.clone(), true).await;
    let (user, token) = app.user("albums@example.org").await;
    let (other, other_token) = app.user("stranger@example.org").await;
    let media = upload_and_wait(
        &app,
        &token,
        &["DSCN0010.jpg", "Kodak_CX7530.jpg", "HMD_Nokia_8.3_5G.jpg"],
    )
    .await;
    let trip = album(&pool, user, "Trip", &media[..2]).await;
    let all = album(&pool, user, "Everything", &media).await;
    // Linking again (an import run twice) changes nothing.
    album(&pool, user, "Trip", &media[..2]).await;
    let empty = album(&pool, user, "Empty", &[]).await;

    let (status, page) = app.get(&token, "/v1/collections").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{page}");
    let by_id = |id: Uuid| {
        items
            .iter()
            .find(|c| c["id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} missing from {page}"))
    };
    assert_eq!(by_id(trip)["name"], "Trip");
    assert_eq!(by_id(trip)["description"], "from a test");
    assert_eq!(by_id(trip)["media_count"], 2);
    assert_eq!(by_id(all)["media_count"], 3);
    assert_eq!(by_id(empty)["media_count"], 0);
    assert!(by_id(empty)["cover"].is_null());
    let cover = by_id(trip)["cover"]["media_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        media[..2].contains(&cover),
        "the cover is one of the album's own"
    );
    let thumb = by_id(trip)["cover"]["thumbnail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.get_bytes(&token, &thumb).await.0, 200);

    // A page at a time.
    let (_, first) = app.get(&token, "/v1/collections?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(&token, &format!("/v1/collections?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());

    let (status, listed) = app
        .get(&token, &format!("/v1/collections/{trip}/media"))
        .await;
    assert_eq!(status, 200, "{listed}");
    let ids: BTreeSet<String> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, media[..2].iter().cloned().collect());
    assert_eq!(listed["items"][0]["processing_status"], "completed");
    let (_, one) = app
        .get(&token, &format!("/v1/collections/{all}/media?limit=1"))
        .await;
    let cursor = one["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(
            &token,
            &format!("/v1/collections/{all}/media?limit=5&cursor={cursor}"),
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);

    // Another user's collection is unknown, as is a made-up id.
    assert_eq!(
        app.get(&other_token, &format!("/v1/collections/{trip}/media"))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&token, "/v1/collections/not-an-id/media").await.0,
        404
    );
    let (_, theirs) = app.get(&other_token, "/v1/collections").await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let _ = other;
}
