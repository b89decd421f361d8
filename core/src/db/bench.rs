//! SQL of `timeline-worker bench`: its scratch step table (named per run, created and dropped
//! by the bench, never by a migration), the progress of its scratch queue and the database's
//! transaction counters. The table's name is made by the bench from a UUID, never from input,
//! so the statements that name it are built as strings (`query!` needs fixed names).

use sqlx::{PgConnection, PgExecutor};

/// Creates the run's step table (unlogged: it is scratch).
pub async fn create_table(db: impl PgExecutor<'_>, table: &str) -> Result<(), sqlx::Error> {
    let sql = format!(
        "CREATE UNLOGGED TABLE {} (n bigint PRIMARY KEY, attempt integer NOT NULL, \
         recorded_at timestamptz NOT NULL DEFAULT now())",
        ident(table)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(db).await?;
    Ok(())
}

/// Records task `n`'s step, as a real step records its own (idempotent: a redelivered task
/// updates its row).
pub async fn record(
    conn: &mut PgConnection,
    table: &str,
    n: u64,
    attempt: i32,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {} (n, attempt) VALUES ($1, $2) \
         ON CONFLICT (n) DO UPDATE SET attempt = EXCLUDED.attempt, recorded_at = now()",
        ident(table)
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .bind(attempt)
        .execute(conn)
        .await?;
    Ok(())
}

/// [`record`] for many tasks in one statement: (n, attempt) pairs, each `n` at most once.
pub async fn record_many(
    conn: &mut PgConnection,
    table: &str,
    tasks: &[(u64, i32)],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {} (n, attempt) SELECT * FROM unnest($1::int8[], $2::int4[]) \
         ON CONFLICT (n) DO UPDATE SET attempt = EXCLUDED.attempt, recorded_at = now()",
        ident(table)
    );
    let ns: Vec<i64> = tasks
        .iter()
        .map(|t| i64::try_from(t.0).unwrap_or(i64::MAX))
        .collect();
    let attempts: Vec<i32> = tasks.iter().map(|t| t.1).collect();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ns)
        .bind(attempts)
        .execute(conn)
        .await?;
    Ok(())
}

/// Step records in the run's table.
pub async fn recorded(db: impl PgExecutor<'_>, table: &str) -> Result<u64, sqlx::Error> {
    let sql = format!("SELECT count(*) FROM {}", ident(table));
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(db)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Tasks of `queue` acknowledged so far.
pub async fn acknowledged(db: impl PgExecutor<'_>, queue: &str) -> Result<u64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'"#,
        queue
    )
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Transactions the current database has committed or rolled back, as reported so far.
pub async fn transactions(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT (xact_commit + xact_rollback)::bigint AS "n!" FROM pg_stat_database
            WHERE datname = current_database()"#
    )
    .fetch_one(db)
    .await
}

/// Removes the run's queue rows, its pool's registration and its step table.
pub async fn clean(pool: &sqlx::PgPool, queue: &str, table: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("DELETE FROM apalis.jobs WHERE job_type = $1", queue)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("DELETE FROM apalis.workers WHERE worker_type = $1", queue)
        .execute(&mut *tx)
        .await?;
    let sql = format!("DROP TABLE IF EXISTS {}", ident(table));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// `name` as a quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
