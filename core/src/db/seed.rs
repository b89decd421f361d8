//! Seed data: production defaults (`system_configuration`) and a development data set (users,
//! memories, persons and relationships, locations, collections, social rows). Both are plain SQL
//! scripts, idempotent by their own `ON CONFLICT` / `WHERE NOT EXISTS` guards.

use sqlx::PgPool;

const PRODUCTION: &str = include_str!("seeds/production.sql");
const DEVELOPMENT: &str = include_str!("seeds/development.sql");

/// Which data to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedSet {
    /// System configuration defaults only.
    Production,
    /// Defaults plus the development data set.
    Development,
}

/// Row counts after seeding, for the summary.
#[derive(Debug, Clone, Default, serde::Serialize, sqlx::FromRow)]
pub struct Summary {
    pub users: i64,
    pub memories: i64,
    pub media_files: i64,
    pub persons: i64,
    pub user_persons: i64,
    pub locations: i64,
    pub collections: i64,
    pub system_configuration: i64,
    pub audit_logs: i64,
}

/// Loads the chosen set in one transaction.
#[tracing::instrument(skip(pool))]
pub async fn run(pool: &PgPool, set: SeedSet) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(PRODUCTION).execute(&mut *tx).await?;
    if set == SeedSet::Development {
        sqlx::raw_sql(DEVELOPMENT).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Counts the rows of the main tables.
pub async fn summary(pool: &PgPool) -> Result<Summary, sqlx::Error> {
    sqlx::query_as!(
        Summary,
        r#"SELECT
            (SELECT count(*) FROM users) AS "users!",
            (SELECT count(*) FROM memories) AS "memories!",
            (SELECT count(*) FROM media_files) AS "media_files!",
            (SELECT count(*) FROM persons) AS "persons!",
            (SELECT count(*) FROM user_persons) AS "user_persons!",
            (SELECT count(*) FROM locations) AS "locations!",
            (SELECT count(*) FROM collections) AS "collections!",
            (SELECT count(*) FROM system_configuration) AS "system_configuration!",
            (SELECT count(*) FROM audit_logs) AS "audit_logs!""#
    )
    .fetch_one(pool)
    .await
}
