//! `timeline seed` loads development data and production defaults, idempotently.

use sqlx::PgPool;

use crate::common::migrate;
use timeline::db::seed::{SeedSet, run, summary};

#[sqlx::test(migrations = false)]
async fn seeds_once_and_again_without_duplicates(pool: PgPool) {
    migrate(&pool).await;
    run(&pool, SeedSet::Development).await.unwrap();
    let first = summary(&pool).await.unwrap();
    assert_eq!(first.users, 3);
    assert!(first.memories >= 5 && first.persons >= 3 && first.user_persons >= 3);
    assert!(first.locations >= 4 && first.collections >= 1 && first.system_configuration >= 8);

    run(&pool, SeedSet::Development).await.unwrap();
    let second = summary(&pool).await.unwrap();
    assert_eq!(
        (second.users, second.memories, second.system_configuration),
        (first.users, first.memories, first.system_configuration)
    );

    // Seeded rows were audited like any others.
    assert!(second.audit_logs > 0);
}

#[sqlx::test(migrations = false)]
async fn production_seed_keeps_operator_changes(pool: PgPool) {
    migrate(&pool).await;
    run(&pool, SeedSet::Production).await.unwrap();
    sqlx::query(
        "UPDATE system_configuration SET config_value = '7' WHERE config_key = 'jobs.max_attempts'",
    )
    .execute(&pool)
    .await
    .unwrap();
    run(&pool, SeedSet::Production).await.unwrap();
    let v: serde_json::Value = sqlx::query_scalar(
        "SELECT config_value FROM system_configuration WHERE config_key = 'jobs.max_attempts'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(v, serde_json::json!(7));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "production seed creates no users");
}
