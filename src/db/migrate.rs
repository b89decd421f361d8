//! Applies the schema: ours (`migrations/`, bookkeeping in `public._sqlx_migrations`) and the
//! queue's (apalis-postgres, bookkeeping in `apalis._sqlx_migrations`). The two migrators keep
//! separate tables, so neither sees the other's versions as "missing" (see docs/MIGRATIONS.md).

use sqlx::migrate::{MigrateDatabase, MigrateError, Migrator};
use sqlx::{PgPool, Postgres};

/// Our migrations, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Errors while preparing the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not create the database: {0}")]
    Create(#[source] sqlx::Error),
    #[error("timeline migrations failed: {0}")]
    Ours(#[source] MigrateError),
    #[error("queue (apalis) migrations failed: {0}")]
    Queue(#[source] MigrateError),
    #[error("granting queue access failed: {0}")]
    Grants(#[source] sqlx::Error),
}

/// Creates the database named in `url` if it does not exist yet (fresh machines).
pub async fn create_database_if_missing(url: &str) -> Result<bool, Error> {
    if Postgres::database_exists(url)
        .await
        .map_err(Error::Create)?
    {
        return Ok(false);
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(true),
        // Someone else created it meanwhile.
        Err(e) if Postgres::database_exists(url).await.unwrap_or(false) => {
            tracing::debug!(error = %e, "database appeared concurrently");
            Ok(false)
        }
        Err(e) => Err(Error::Create(e)),
    }
}

/// Applies every pending migration, ours and the queue's. Idempotent: a second run is a no-op.
#[tracing::instrument(skip_all)]
pub async fn run(pool: &PgPool) -> Result<(), Error> {
    MIGRATOR.run(pool).await.map_err(Error::Ours)?;
    apalis_postgres::PostgresStorage::<()>::migrations()
        .run(pool)
        .await
        .map_err(Error::Queue)?;
    grant_queue_access(pool).await.map_err(Error::Grants)?;
    Ok(())
}

/// The API enqueues jobs in its own transaction while running as `timeline_api`, so that role
/// needs the queue's schema too. Runs after both migrators because the grants span both;
/// GRANT is idempotent.
async fn grant_queue_access(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "GRANT USAGE ON SCHEMA apalis TO timeline_api;
         GRANT SELECT, INSERT ON apalis.jobs TO timeline_api;
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA apalis TO timeline_api;",
    )
    .execute(pool)
    .await
    .map(|_| ())
}
