//! `timeline migrate` applies to an empty database and a second run changes nothing.

use sqlx::PgPool;

use crate::common::migrate;

async fn applied(pool: &PgPool) -> (i64, i64) {
    let ours: i64 =
        sqlx::query_scalar("SELECT count(*) FROM public._sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .expect("ours");
    let queue: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis._sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .expect("apalis");
    (ours, queue)
}

#[sqlx::test(migrations = false)]
async fn applies_to_empty_database_then_is_a_no_op(pool: PgPool) {
    migrate(&pool).await;
    let first = applied(&pool).await;
    assert_eq!(
        first.0 as usize,
        timeline::db::migrate::MIGRATOR.iter().count()
    );
    assert!(first.1 > 0, "apalis migrations recorded in their own table");

    // Twice more: no VersionMissing clash between the two migrators, nothing re-applied.
    migrate(&pool).await;
    migrate(&pool).await;
    assert_eq!(applied(&pool).await, first);

    let queue_table: Option<String> = sqlx::query_scalar("SELECT to_regclass('apalis.jobs')::text")
        .fetch_one(&pool)
        .await
        .expect("regclass");
    assert_eq!(queue_table.as_deref(), Some("apalis.jobs"));
}
