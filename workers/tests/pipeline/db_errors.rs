//! Database errors are classified by SQLSTATE: data and integrity errors (22xxx, 23xxx) are
//! permanent and fail a step at once with the database's reason; connection loss,
//! serialization failures, deadlocks and shutdowns stay transient and are retried.

use std::time::Duration;

use sqlx::PgPool;
use timeline::db::{ErrorClass, classify};

use crate::common::{TestApp, fixtures};

/// Raises `sqlstate` from the server itself, so the error is a real PostgreSQL error.
async fn raise(pool: &PgPool, sqlstate: &str) -> sqlx::Error {
    // `sqlstate` comes from this file's own constants, never from input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN RAISE EXCEPTION 'test' USING ERRCODE = '{sqlstate}'; END $$"
    )))
    .execute(pool)
    .await
    .expect_err("raised")
}

#[sqlx::test(migrations = false)]
async fn sqlstates_are_classified(pool: PgPool) {
    for code in ["22001", "22012", "22P02", "23505", "23514", "23503"] {
        assert_eq!(
            classify(&raise(&pool, code).await),
            ErrorClass::Permanent,
            "{code}"
        );
    }
    for code in ["08006", "40001", "40P01", "57P01", "53300"] {
        assert_eq!(
            classify(&raise(&pool, code).await),
            ErrorClass::Transient,
            "{code}"
        );
    }
    // And errors the server makes on its own, not only raised ones.
    let div = sqlx::query("SELECT 1 / 0")
        .execute(&pool)
        .await
        .expect_err("div");
    assert_eq!(classify(&div), ErrorClass::Permanent);
    assert_eq!(classify(&sqlx::Error::PoolTimedOut), ErrorClass::Transient);
}

#[sqlx::test(migrations = false)]
async fn a_constraint_violation_fails_the_step_at_once(pool: PgPool) {
    let app = TestApp::start(pool, false).await;
    // A rule this database has and the step does not know: NIKON is refused.
    sqlx::query(
        "ALTER TABLE media_files ADD CONSTRAINT test_no_nikon CHECK (camera_make IS DISTINCT FROM 'NIKON')",
    )
    .execute(&app.pool)
    .await
    .expect("constraint");
    let mut app = app;
    app.start_worker(&[]);
    let (_, token) = app.user("nikon@example.org").await;
    let bytes = std::fs::read(fixtures().join("DSCN0010.jpg")).expect("fixture");
    let (status, body) = app.upload(&token, &[("DSCN0010.jpg", bytes)]).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job");
    // Within seconds, not after five attempts with growing delays.
    app.wait_job(&token, job, Duration::from_secs(20)).await;
    let (attempts, error): (i32, Option<String>) = sqlx::query_as(
        "SELECT attempts, error_message FROM media_processing_steps WHERE step = 'exif'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("exif record");
    assert_eq!(attempts, 1);
    let error = error.unwrap_or_default();
    assert!(error.contains("test_no_nikon"), "{error}");
    // EXIF failures never fail the photo: it still gets its thumbnails.
    let id = body["media"][0]["id"].as_str().expect("id");
    let (_, m) = app.get(&token, &format!("/v1/media/{id}")).await;
    assert_eq!(m["processing_status"], "completed", "{m}");
}
