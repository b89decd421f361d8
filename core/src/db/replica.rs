//! Where a streaming replica stands against its primary, in write-ahead-log positions: what
//! `crate::replica` needs to bound the staleness of reads served by the replica.

use sqlx::PgConnection;

/// The primary's current WAL write position, as a byte offset. Every transaction that has
/// committed by now has its commit record at or before it.
pub async fn primary_position(db: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS "lsn!""#)
        .fetch_one(db)
        .await
}

/// How far a server has replayed: `None` when it is not a standby (a primary, or a replica
/// promoted since), whose data is current by definition.
pub async fn replayed_position(db: &mut PgConnection) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT pg_is_in_recovery() AS "standby!",
                  (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed"#
    )
    .fetch_one(db)
    .await?;
    // A standby that has replayed nothing yet is at position 0: behind every sample.
    Ok(row.standby.then(|| row.replayed.unwrap_or(0)))
}
