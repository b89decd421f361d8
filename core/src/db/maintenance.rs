//! Scheduled housekeeping: audit partitions ahead of time, audit retention, and pruning of
//! finished queue rows, job records and ended dashboard sessions. Run by `timeline maintenance` and hourly by every
//! `timeline-worker` (each statement is idempotent, so concurrent runs are harmless).

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Months of `audit_logs` partitions to keep.
    pub audit_months: i32,
    /// Finished queue rows older than this are deleted.
    pub queue_rows: Duration,
    /// Finished `data_processing_jobs` older than this are deleted.
    pub jobs: Duration,
}

impl Default for Retention {
    /// 13 months of audit, 30 days of finished jobs and queue rows (the seeded policy).
    fn default() -> Self {
        Self {
            audit_months: 13,
            queue_rows: Duration::from_secs(30 * 86_400),
            jobs: Duration::from_secs(30 * 86_400),
        }
    }
}

impl Retention {
    /// The policy recorded in `system_configuration` (`audit.retention_months`,
    /// `jobs.retention_days`, which covers both finished jobs and finished queue rows), with
    /// the defaults for keys that are missing or not positive numbers.
    pub async fn configured(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let rows = sqlx::query!(
            r#"SELECT config_key, config_value FROM system_configuration
               WHERE config_key IN ('audit.retention_months', 'jobs.retention_days')"#
        )
        .fetch_all(pool)
        .await?;
        let mut policy = Self::default();
        for row in rows {
            let Some(n) = row.config_value.as_u64().filter(|n| *n > 0) else {
                tracing::warn!(key = %row.config_key, "retention setting is not a positive number; using the default");
                continue;
            };
            if row.config_key == "audit.retention_months" {
                policy.audit_months = i32::try_from(n).unwrap_or(i32::MAX);
            } else {
                let d = Duration::from_secs(n.saturating_mul(86_400));
                (policy.jobs, policy.queue_rows) = (d, d);
            }
        }
        Ok(policy)
    }
}

/// What one maintenance run did.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Report {
    pub audit_partitions_created: i32,
    pub audit_partitions_dropped: i32,
    pub queue_rows_pruned: u64,
    pub jobs_pruned: u64,
    pub admin_sessions_pruned: u64,
}

/// Runs every housekeeping task once.
pub async fn run(pool: &PgPool, retention: &Retention) -> Result<Report, sqlx::Error> {
    let (created, dropped) = audit_partitions(pool, retention.audit_months).await?;
    let mut conn = pool.acquire().await?;
    let pruned = super::queue::prune(&mut conn, retention.queue_rows, retention.jobs).await?;
    let sessions = super::sessions::prune(&mut *conn).await?;
    let report = Report {
        audit_partitions_created: created,
        audit_partitions_dropped: dropped,
        queue_rows_pruned: pruned.queue_rows,
        jobs_pruned: pruned.jobs,
        admin_sessions_pruned: sessions,
    };
    tracing::info!(?report, "maintenance done");
    Ok(report)
}

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
