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

/// The database's own settings (`ALTER DATABASE … SET`), as `name=value`, sorted.
async fn database_settings(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c FROM pg_db_role_setting s, unnest(s.setconfig) c
         WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND s.setrole = 0 ORDER BY c",
    )
    .fetch_all(pool)
    .await
    .expect("settings")
}

/// Runs `ALTER DATABASE <this one> <what>`.
async fn alter_database(pool: &PgPool, what: &str) {
    let sql = format!(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I {what}', current_database()); END $$"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .expect("alter database");
}

/// A restore by `pg_dump`, or a copy from a template, keeps the migrations' bookkeeping and
/// drops the database's settings (which live in the cluster's catalogue, not in the
/// database): the next `timeline migrate` makes the vanished-client settings again, and keeps
/// a value the operator set.
#[sqlx::test(migrations = false)]
async fn a_restored_database_gets_its_settings_back(pool: PgPool) {
    migrate(&pool).await;
    let migrated = [
        "idle_in_transaction_session_timeout=5min",
        "tcp_keepalives_count=6",
        "tcp_keepalives_idle=60",
        "tcp_keepalives_interval=10",
        "tcp_user_timeout=2min",
    ];
    // The migration's values, which `migrate::run` makes again: the two are the same.
    assert_eq!(database_settings(&pool).await, migrated);

    // What a restore leaves: no setting, every migration recorded as applied.
    alter_database(&pool, "RESET ALL").await;
    assert!(database_settings(&pool).await.is_empty());
    migrate(&pool).await;
    assert_eq!(database_settings(&pool).await, migrated);

    // An operator's own value stays; only what is missing is made.
    alter_database(&pool, "SET tcp_keepalives_idle = 30").await;
    alter_database(&pool, "RESET tcp_user_timeout").await;
    migrate(&pool).await;
    let mut want = migrated.to_vec();
    want[2] = "tcp_keepalives_idle=30";
    assert_eq!(database_settings(&pool).await, want);
}
