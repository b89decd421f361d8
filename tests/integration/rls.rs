//! Row-level security: under the API's role, a user sees and writes only their own rows,
//! even when a query forgets its WHERE clause.

use sqlx::PgPool;

use crate::common::{act_as_api, media, memory, migrate, sqlstate, user};

#[sqlx::test(migrations = false)]
async fn the_api_role_sees_only_the_acting_users_rows(pool: PgPool) {
    migrate(&pool).await;
    let (a, b) = (
        user(&pool, "a@example.org").await,
        user(&pool, "b@example.org").await,
    );
    media(&pool, a, "a.jpg").await;
    media(&pool, b, "b.jpg").await;
    memory(&pool, a, "a").await;
    memory(&pool, b, "b").await;

    let mut tx = pool.begin().await.unwrap();
    act_as_api(&mut tx, a).await;
    for table in ["users", "media_files", "memories", "audit_logs"] {
        let owners: Vec<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM {table}",
            match table {
                "users" => "id",
                "audit_logs" => "owner_user_id",
                _ => "user_id",
            }
        )))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert!(!owners.is_empty(), "{table}: own rows visible");
        assert!(
            owners.iter().all(|o| *o == a),
            "{table}: another user's row leaked"
        );
    }
    // Writing a row for someone else is refused by the policy's WITH CHECK.
    let err =
        sqlx::query("INSERT INTO memories (user_id, title, memory_date) VALUES ($1, 'x', now())")
            .bind(b)
            .execute(&mut *tx)
            .await
            .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
    tx.rollback().await.unwrap();

    // Updates and deletes of another user's rows silently touch nothing.
    let mut tx = pool.begin().await.unwrap();
    act_as_api(&mut tx, a).await;
    let hit = sqlx::query("DELETE FROM media_files WHERE user_id = $1")
        .bind(b)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(hit.rows_affected(), 0);
    tx.commit().await.unwrap();

    // Without app.user_id the API role sees nothing at all.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE timeline_api")
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // And it cannot write the audit trail directly.
    let err = sqlx::query("INSERT INTO audit_logs (action, resource_type) VALUES ('access', 'x')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
}

#[sqlx::test(migrations = false)]
async fn the_owner_role_is_exempt(pool: PgPool) {
    migrate(&pool).await;
    let (a, b) = (
        user(&pool, "a@example.org").await,
        user(&pool, "b@example.org").await,
    );
    media(&pool, a, "a.jpg").await;
    media(&pool, b, "b.jpg").await;
    // Workers and migrations run as the owner and see every user's rows.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM media_files")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
}
