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
    queue_indexes(pool).await.map_err(Error::Grants)?;
    Ok(())
}

/// Indexes our metrics and dashboard read on apalis's table, and the pause trigger (here, not in `migrations/`:
/// ours run before the queue's exist). `apalis.jobs` keeps every finished task until pruning;
/// these keep the per-scrape counts to the live tasks and the recent finished ones.
async fn queue_indexes(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE INDEX IF NOT EXISTS timeline_apalis_jobs_live ON apalis.jobs (job_type, status)
             WHERE status <> 'Done';
         CREATE INDEX IF NOT EXISTS timeline_apalis_jobs_done_at ON apalis.jobs (done_at)
             WHERE status = 'Done';
         -- A paused queue's new or rescheduled tasks wait 100 years (see queue_pauses).
         CREATE OR REPLACE FUNCTION public.timeline_hold_paused() RETURNS trigger
             LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
         BEGIN
             IF NEW.run_at < now() + interval '50 years'
                AND EXISTS (SELECT 1 FROM public.queue_pauses p WHERE p.queue = NEW.job_type) THEN
                 NEW.run_at := NEW.run_at + interval '100 years';
             END IF;
             RETURN NEW;
         END $$;
         DROP TRIGGER IF EXISTS timeline_hold_paused ON apalis.jobs;
         CREATE TRIGGER timeline_hold_paused BEFORE INSERT OR UPDATE OF run_at ON apalis.jobs
             FOR EACH ROW EXECUTE FUNCTION public.timeline_hold_paused();",
    )
    .execute(pool)
    .await
    .map(|_| ())
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
