//! Scheduled housekeeping SQL: audit partitions ahead of time and retention.

use sqlx::PgPool;

/// Creates audit partitions for the next 12 months and drops those older than
/// `retention_months`. Returns (created, dropped).
pub async fn audit_partitions(
    pool: &PgPool,
    retention_months: i32,
) -> Result<(i32, i32), sqlx::Error> {
    let made = sqlx::query_scalar!(r#"SELECT ensure_audit_partitions(1, 12) AS "n!""#)
        .fetch_one(pool)
        .await?;
    let dropped = sqlx::query_scalar!(
        r#"SELECT drop_audit_partitions_older_than(make_interval(months => $1)) AS "n!""#,
        retention_months
    )
    .fetch_one(pool)
    .await?;
    Ok((made, dropped))
}
