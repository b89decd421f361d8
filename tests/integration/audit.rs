//! Triggers write the audit trail, into the right monthly partition.

use sqlx::PgPool;
use uuid::Uuid;

use crate::common::{act_as_api, media, migrate, user};

#[sqlx::test(migrations = false)]
async fn an_update_to_a_user_writes_an_audit_row(pool: PgPool) {
    migrate(&pool).await;
    let u = user(&pool, "audit@example.org").await;

    // As the API would: acting user from the transaction's setting.
    let mut tx = pool.begin().await.unwrap();
    act_as_api(&mut tx, u).await;
    sqlx::query("UPDATE users SET first_name = 'Ann', password_hash = '$argon2id$x' WHERE id = $1")
        .bind(u)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (actor, owner, action, old, new): (
        Option<Uuid>,
        Option<Uuid>,
        String,
        serde_json::Value,
        serde_json::Value,
    ) = sqlx::query_as(
        "SELECT user_id, owner_user_id, action, old_values, new_values FROM audit_logs
             WHERE resource_type = 'users' AND resource_id = $1 AND action = 'update'",
    )
    .bind(u)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (actor, owner, action.as_str()),
        (Some(u), Some(u), "update")
    );
    assert_eq!(old["first_name"], serde_json::Value::Null);
    assert_eq!(new["first_name"], "Ann");
    assert!(
        new.get("password_hash").is_none(),
        "secrets never reach the audit trail"
    );

    // An update that changes nothing writes nothing.
    sqlx::query("UPDATE users SET first_name = 'Ann' WHERE id = $1")
        .bind(u)
        .execute(&pool)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE resource_id = $1 AND action = 'update'",
    )
    .bind(u)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
}

#[sqlx::test(migrations = false)]
async fn inserts_and_deletes_are_audited_and_survive_the_user(pool: PgPool) {
    migrate(&pool).await;
    let u = user(&pool, "gone@example.org").await;
    let f = media(&pool, u, "a.jpg").await;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(u)
        .execute(&pool)
        .await
        .unwrap();
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_logs WHERE resource_type = 'media_files' AND resource_id = $1 ORDER BY timestamp, action",
    )
    .bind(f)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actions, ["create", "delete"]);

    // Erasure strips the values but keeps who/what/when.
    let n: i64 = sqlx::query_scalar("SELECT anonymize_audit_for_user($1)")
        .bind(u)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(n >= 3);
    let leftover: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE owner_user_id = $1 AND (old_values IS NOT NULL OR new_values IS NOT NULL)",
    )
    .bind(u)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leftover, 0);
}

#[sqlx::test(migrations = false)]
async fn rows_land_in_their_month_partition(pool: PgPool) {
    migrate(&pool).await;
    let placed: Vec<(String, String)> = sqlx::query_as(
        "WITH ins AS (
            INSERT INTO audit_logs (action, resource_type, \"timestamp\")
            SELECT 'access', 'test', t FROM unnest(ARRAY[
                date_trunc('month', now()) + interval '3 days',
                date_trunc('month', now()) + interval '2 months 1 hour',
                now() + interval '20 years'
            ]) AS t
            RETURNING tableoid::regclass::text AS part, to_char(\"timestamp\", 'YYYY_MM') AS month
         ) SELECT part, month FROM ins ORDER BY month",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(placed.len(), 3);
    assert_eq!(placed[0].0, format!("audit_logs_{}", placed[0].1));
    assert_eq!(placed[1].0, format!("audit_logs_{}", placed[1].1));
    assert_eq!(
        placed[2].0, "audit_logs_default",
        "beyond the partitions made ahead"
    );

    // Retention drops whole months; the current month stays.
    let (made, dropped) = timeline::db::maintenance::audit_partitions(&pool, 0)
        .await
        .unwrap();
    assert_eq!(made, 0, "the migration already made the next 12 months");
    assert_eq!(
        dropped, 1,
        "last month's partition is past a 0-month retention"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE resource_type = 'test'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
}
