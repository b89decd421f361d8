//! A reconciler pass costs what is stuck, not what is stored. With 1,000,000 media rows of
//! history (naming 3,000,000 objects) and 10 stuck items on a real S3 server (`s3s-fs`) behind
//! a proxy that counts the store calls, one pass makes one store call per stuck item and takes
//! under a second. The stuck items: two files whose queue task vanished, two whose original is
//! gone, three upload sessions whose owner died, three objects of deleted files.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::common::TestApp;
use crate::proxy::Proxy;
use crate::s3_faults::{S3Server, as_refs, s3_env, s3_storage, upload_through};

/// One user's ten years: a million completed photos with an original, a thumbnail and a
/// preview each (rows only: the pass must never look at them). Loaded without the audit
/// triggers, as a bulk import would be.
async fn load_history(pool: &PgPool, user: Uuid) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("bulk mode");
    sqlx::query(
        "INSERT INTO media_files (id, user_id, filename, file_path, thumbnail_path, preview_path,
                                  file_size, mime_type, file_hash, processing_status)
         SELECT m, $1::uuid, 'IMG_' || i || '.jpg', 'media/' || $1::uuid::text || '/' || m || '/original',
                'media/' || $1::uuid::text || '/' || m || '/thumb', 'media/' || $1::uuid::text || '/' || m || '/preview',
                3000000, 'image/jpeg', encode(sha256(int8send(i)), 'hex'), 'completed'
         FROM (SELECT i, md5(i::text)::uuid AS m FROM generate_series(1, 1000000) i) s",
    )
    .bind(user)
    .execute(&mut *tx)
    .await
    .expect("history");
    tx.commit().await.expect("commit");
    sqlx::query("ANALYZE media_files")
        .execute(pool)
        .await
        .expect("analyze");
}

#[sqlx::test(migrations = false)]
async fn a_pass_costs_what_is_stuck_not_what_is_stored(pool: PgPool) {
    let s3 = S3Server::start();
    let proxy = Proxy::start(s3.port).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let mut env = s3_env(&s3);
    for (k, v) in env.iter_mut() {
        if *k == "AWS_ENDPOINT" {
            v.clone_from(&endpoint);
        }
    }
    let app = TestApp::start(pool, false).await;
    let (user, token) = app.user("stuck@example.org").await;
    let serve = app.spawn_serve_env(&as_refs(&env)).await;
    let (_, ids) = upload_through(&app, &serve, &token, 4).await;
    let (history_user, _) = app.user("history@example.org").await;
    let loaded = Instant::now();
    load_history(&app.pool, history_user).await;
    eprintln!(
        "1,000,000 rows of history loaded in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );

    // Two files whose tasks vanished, two of them with their original gone too.
    for id in &ids {
        sqlx::query(
            "DELETE FROM apalis.jobs WHERE convert_from(job, 'UTF8')::jsonb ->> 'media_file_id' = $1",
        )
        .bind(id)
        .execute(&app.pool)
        .await
        .expect("lose the task");
        // Two hours ago (the trigger that stamps updated_at is off for this statement).
        let mut tx = app.pool.begin().await.expect("begin");
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .expect("no triggers");
        sqlx::query(
            "UPDATE media_files SET processing_status = 'processing',
                    updated_at = now() - interval '2 hours' WHERE id = $1::uuid",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("stuck");
        tx.commit().await.expect("commit");
    }
    for id in &ids[2..] {
        std::fs::remove_file(s3.object_path(&format!("tl/media/{user}/{id}/original")))
            .expect("lose the original");
    }
    // Three sessions whose owner died mid-upload, three objects of deleted files: each with
    // its object in the store.
    for i in 0..6 {
        let media = Uuid::new_v4();
        let key = format!("media/{user}/{media}/original");
        let file = s3.object_path(&format!("tl/{key}"));
        std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
        std::fs::write(&file, b"half an upload").expect("object");
        let session = (i < 3).then(Uuid::new_v4);
        if let Some(s) = session {
            sqlx::query(
                "INSERT INTO upload_sessions (id, user_id, protocol, last_progress_at, expires_at)
                 VALUES ($1, $2, 'form', now() - interval '2 hours', now() + interval '1 day')",
            )
            .bind(s)
            .bind(user)
            .execute(&app.pool)
            .await
            .expect("session");
        }
        sqlx::query(
            "INSERT INTO pending_objects (object_key, user_id, media_file_id, session_id)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&key)
        .bind(user)
        .bind(media)
        .bind(session)
        .execute(&app.pool)
        .await
        .expect("pending");
    }

    let storage = s3_storage(&endpoint);
    let before = proxy.requests();
    let started = Instant::now();
    let report =
        timeline::reconcile::run(&app.pool, &app.pool, &storage, Duration::from_secs(3600))
            .await
            .expect("pass");
    let took = started.elapsed();
    let calls = proxy.requests() - before;
    eprintln!("one pass over 1,000,000 rows with 10 stuck items: {calls} store calls, {took:?}");
    assert_eq!(report.requeued_files, 2, "{report:?}");
    assert_eq!(report.missing_originals_failed, 2, "{report:?}");
    assert_eq!(report.sessions_aborted, 3, "{report:?}");
    assert_eq!(report.orphan_objects_deleted, 6, "{report:?}");
    assert_eq!(calls, 10, "one HEAD per stuck file, one DELETE per orphan");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // The next pass finds nothing, and asks the store nothing.
    let before = proxy.requests();
    let report =
        timeline::reconcile::run(&app.pool, &app.pool, &storage, Duration::from_secs(3600))
            .await
            .expect("pass");
    assert_eq!(report, timeline::reconcile::Report::default());
    assert_eq!(proxy.requests() - before, 0);
    drop(serve);
}
