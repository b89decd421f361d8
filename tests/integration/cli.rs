//! The `timeline` binary, run as an operator would.

use std::process::Command;

use sqlx::PgPool;

use crate::common::migrate;

/// The URL of the test's own database, for child processes.
fn url_of(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let db = pool
        .connect_options()
        .get_database()
        .expect("database name")
        .to_owned();
    let (server, _) = base.rsplit_once('/').expect("url has a database part");
    format!("{server}/{db}")
}

fn timeline(pool: &PgPool, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_timeline"))
        .args(args)
        .env("DATABASE_URL", url_of(pool))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run timeline")
}

#[sqlx::test(migrations = false)]
async fn migrate_then_users_create_prints_id_and_token(pool: PgPool) {
    let out = timeline(&pool, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = timeline(&pool, &["migrate"]);
    assert!(out.status.success(), "second migrate is a no-op");

    let out = timeline(
        &pool,
        &[
            "users",
            "create",
            "--email",
            "Op@Example.org",
            "--name",
            "Op",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let user_id: uuid::Uuid = line["user_id"].as_str().unwrap().parse().unwrap();
    let token = line["token"].as_str().unwrap();

    // Only the hash is stored, and it resolves to the user.
    let hash = timeline::auth::hash_token(token);
    assert_eq!(
        timeline::db::users::user_for_token(&pool, &hash)
            .await
            .unwrap(),
        Some(user_id)
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens WHERE token_hash = convert_to($1, 'UTF8')",
    )
    .bind(token)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 0, "the raw token is not stored");

    // Same email in other case: refused with a readable message, nothing written.
    let out = timeline(&pool, &["users", "create", "--email", "op@example.org"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = timeline(&pool, &["users", "create", "--email", "nope"]);
    assert!(!out.status.success());
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[sqlx::test(migrations = false)]
async fn seed_prints_a_summary(pool: PgPool) {
    migrate(&pool).await;
    let out = timeline(&pool, &["seed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["users"], 3);
}
