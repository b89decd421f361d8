//! SQL of `timeline-worker bench`: its scratch step table (named per run, created and dropped
//! by the bench, never by a migration), the progress of its scratch queue and the database's
//! transaction counters. The table's name is made by the bench from a UUID, never from input,
//! so the statements that name it are built as strings (`query!` needs fixed names).

use sqlx::{PgConnection, PgExecutor};

/// A record written again (a redelivered task) takes the new attempt.
const UPSERT: &str =
    "ON CONFLICT (n) DO UPDATE SET attempt = EXCLUDED.attempt, recorded_at = now()";

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
/// updates its row) and acknowledges the task, in one statement outside any transaction: the
/// final transaction of a step that writes one statement, `db::queue::ACKNOWLEDGE_DONE` its
/// `WITH` clause. Both commit together, as in any step's final transaction, in one round trip
/// instead of four (`BEGIN`, record, acknowledgement, `COMMIT`). The record is written
/// whether or not `worker` still holds the task; returns whether the task was marked `Done`.
pub async fn record_acknowledged(
    db: impl PgExecutor<'_>,
    table: &str,
    (n, attempt): (u64, i32),
    (task_id, worker): (&str, &str),
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "WITH done AS ({} RETURNING id), \
         record AS (INSERT INTO {} (n, attempt) VALUES ($4, $3) {UPSERT}) \
         SELECT count(*) FROM done",
        super::queue::ACKNOWLEDGE_DONE,
        ident(table)
    );
    let done: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(task_id)
        .bind(worker)
        .bind(attempt)
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .fetch_one(db)
        .await?;
    Ok(done == 1)
}

/// The records of many tasks in one statement, on the caller's transaction (a group
/// commit's): (n, attempt) pairs, each `n` at most once.
pub async fn record_many(
    conn: &mut PgConnection,
    table: &str,
    tasks: &[(u64, i32)],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {} (n, attempt) SELECT * FROM unnest($1::int8[], $2::int4[]) {UPSERT}",
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

/// Whether every task of `queue` is acknowledged: none is left that is not `Done`. One probe
/// of the live-task index, which stops at the first live task, so polling it costs nothing
/// that grows with the tasks done (a count of them read them all at every poll).
pub async fn drained(db: impl PgExecutor<'_>, queue: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT NOT EXISTS (SELECT 1 FROM apalis.jobs WHERE job_type = $1 AND status <> 'Done')
           AS "drained!""#,
        queue
    )
    .fetch_one(db)
    .await
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
