//! timeline-workers: the worker pools that process uploaded media.
//!
//! Until the ingestion pipeline lands this only connects, checks the schema is migrated and
//! idles until SIGTERM/Ctrl-C, so the Procfile's `worker` process type already runs.

use clap::Parser;
use timeline::config::DatabaseConfig;

/// Command-line flags of `timeline-worker`.
#[derive(Debug, Parser)]
#[command(name = "timeline-worker", version, about = "timeline worker pools")]
pub struct Args {
    #[command(flatten)]
    pub db: DatabaseConfig,
}

/// Errors that stop the worker process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs the pools until a shutdown signal.
pub async fn run() -> Result<(), Error> {
    let args = Args::parse();
    let pool = timeline::db::connect(&args.db).await?;
    sqlx::query("SELECT 1").execute(&pool).await?;
    tracing::info!("worker started; no pools configured yet");
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("worker stopping");
    Ok(())
}
