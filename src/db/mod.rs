//! All SQL of the platform. Functions take an executor (pool, connection or transaction) so
//! the caller decides the transaction; queries are compile-checked (`query!`) against the
//! committed `.sqlx/` cache.

pub mod catalog;
pub mod jobs;
pub mod maintenance;
pub mod media;
pub mod migrate;
pub mod pipeline;
pub mod queue;
pub mod report;
pub mod seed;
pub mod uploads;
pub mod users;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::DatabaseConfig;

/// Opens a pool. Connections are made lazily and re-made after a database restart; a bounded
/// acquire timeout turns "database away" into an error instead of a hang.
pub async fn connect(cfg: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = cfg.database_url.parse()?;
    PgPoolOptions::new()
        .max_connections(cfg.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(true)
        .connect_with(options.application_name("timeline"))
        .await
}

/// Whether `err` is a violation of the named unique constraint or index.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.is_unique_violation() && db.constraint() == Some(constraint))
}
