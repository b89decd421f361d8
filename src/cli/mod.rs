//! The `timeline` command line: one binary, one subcommand per operator task (as in the
//! Procfile: `release` runs `migrate`, `web` runs `serve`).

pub(crate) mod import;
mod ingest;
mod report;
mod users;

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::DatabaseConfig;
use crate::db;

/// timeline: media ingestion for a personal timeline.
#[derive(Debug, Parser)]
#[command(name = "timeline", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub db: DatabaseConfig,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the `web` process).
    Serve(crate::config::ServeConfig),
    /// Import every file under DIR for a user through the queues; waits and summarises.
    Ingest(ingest::IngestArgs),
    /// Import a service's export (zip parts and folders) with its sidecars and albums.
    Import(import::ImportArgs),
    /// Apply all migrations (ours and the queue's); creates the database if missing. Idempotent.
    Migrate,
    /// Load production defaults and (unless --production) the development data set.
    Seed {
        /// Only system configuration defaults.
        #[arg(long)]
        production: bool,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Print docs/DATABASE_SCHEMA.md generated from the live catalog.
    SchemaDoc,
    /// Put ended files back through steps, at bulk priority, as one tracked job per user;
    /// prints {"jobs": [...], "files": N, "steps": {...}}. Safe to run twice.
    Reprocess {
        /// The steps with no record at the current pipeline version.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        missing: bool,
        /// Only this step (hash, exif, thumbnail, video); with --missing.
        #[arg(long, requires = "missing")]
        step: Option<String>,
        /// Every step of every ended file (the hash is kept).
        #[arg(long)]
        all: bool,
    },
    /// Housekeeping: create audit partitions ahead, drop those past retention.
    Maintenance {
        /// Months of audit_logs partitions to keep (default: `audit.retention_months` in
        /// system_configuration, else 13).
        #[arg(long)]
        audit_retention_months: Option<i32>,
        /// Days to keep finished queue rows (apalis keeps them for ever otherwise; default:
        /// `jobs.retention_days`, else 30).
        #[arg(long)]
        queue_retention_days: Option<u64>,
        /// Days to keep finished `data_processing_jobs` rows (default: `jobs.retention_days`,
        /// else 30).
        #[arg(long)]
        job_retention_days: Option<u64>,
        /// Reconciliation grace period in seconds: media files pending/processing with no live
        /// queue task for this long are re-enqueued; upload sessions with no progress for this
        /// long (at least 15 s) are aborted and what they stored deleted.
        #[arg(long, env = "TIMELINE_RECONCILE_GRACE_SECS", default_value_t = crate::reconcile::DEFAULT_GRACE_SECS)]
        grace: u64,
        /// Audit the whole store against the rows (the default; kept for scripts that name
        /// it): page through every object and delete those no row names, last written more
        /// than the grace period ago. O(objects stored): this command's, never part of the
        /// workers' periodic pass. Resumes where an earlier audit stopped.
        #[arg(long, conflicts_with = "no_audit_store")]
        audit_store: bool,
        /// Skip the store's audit: the periodic pass alone, O(what is stuck), for a schedule.
        #[arg(long)]
        no_audit_store: bool,
        /// Stop the audit after this many pages of 1,000 keys (the next run resumes).
        #[arg(long, conflicts_with = "no_audit_store")]
        audit_pages: Option<u64>,
        #[command(flatten)]
        storage: crate::config::StorageConfig,
    },
}

/// Errors a command reports to the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Migrate(#[from] db::migrate::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Invalid(String),
    /// The work stopped on trouble of the database or the store, not of its input; running it
    /// again is worth it.
    #[error("{0}")]
    Interrupted(String),
    #[error("could not write output: {0}")]
    Io(#[from] std::io::Error),
}

impl From<crate::ingest::store::Error> for Error {
    fn from(e: crate::ingest::store::Error) -> Self {
        use crate::ingest::store::Error as E;
        match e {
            E::Database(e) => Self::Database(e),
            E::Invalid(m) => Self::Invalid(m),
            E::Interrupted(m) => Self::Interrupted(m),
        }
    }
}

/// Parses the command line and runs the command.
pub async fn run() -> Result<(), Error> {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => {
            let direct = cli.db.database_session_url.as_ref();
            db::migrate::create_database_if_missing(direct.unwrap_or(&cli.db.database_url)).await?;
            let pool = db::connect_direct(&cli.db).await?;
            db::migrate::run(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed { production } => {
            let pool = db::connect_direct(&cli.db).await?;
            let set = if production {
                db::seed::SeedSet::Production
            } else {
                db::seed::SeedSet::Development
            };
            db::seed::run(&pool, set).await?;
            let summary = db::seed::summary(&pool).await?;
            write_line(&serde_json::to_string(&summary).map_err(|e| Error::Invalid(e.to_string()))?)
        }
        Command::Serve(cfg) => {
            let pool = db::connect(&cli.db).await?;
            let storage = cfg
                .storage
                .open()
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let recorded = db::settings::recorded(&mut *pool.begin().await?).await?;
            crate::config::apply_max_attempts(&recorded);
            let limits = cfg.limits.resolve(&recorded).map_err(Error::Invalid)?;
            tracing::info!(
                max_file_bytes = limits.max_file_bytes,
                max_request_bytes = limits.max_request_bytes,
                max_attempts = crate::jobs::max_attempts(),
                "upload limits"
            );
            let session = db::session_pool(&cli.db, &pool)?;
            let replica = match cfg.replica.database_read_url.as_deref() {
                Some(url) => Some(crate::replica::Replica::start(
                    pool.clone(),
                    db::connect_replica(&cli.db, url)?,
                    Duration::from_millis(cfg.replica.database_read_max_lag_ms),
                )),
                None => None,
            };
            let mut state = crate::http::AppState::with_session(pool, session, storage, limits)
                .with_lean(db::lean_pool(&cli.db)?)
                .with_public_url(cfg.public_url.as_ref())
                .with_user_caps(crate::http::user_caps::Limits {
                    requests: cfg.user_caps.max_user_requests.max(1),
                    uploads: cfg.user_caps.max_user_uploads.max(1),
                    streams: cfg.user_caps.max_user_streams.max(1),
                });
            if let Some(replica) = replica {
                state = state.with_replica(replica);
            }
            crate::http::serve(
                state,
                &cfg.addr,
                crate::http::server::ServerLimits::from_config(&cfg.connections),
            )
            .await?;
            Ok(())
        }
        Command::Ingest(args) => ingest::run(&cli.db, args).await,
        Command::Import(args) => import::run(&cli.db, args).await,
        Command::Users { command } => users::run(&cli.db, command).await,
        Command::SchemaDoc => {
            let pool = db::connect_direct(&cli.db).await?;
            let doc = db::catalog::schema_markdown(&pool).await?;
            write_line(doc.trim_end())
        }
        Command::Reprocess { step, all, .. } => {
            let scope = if all {
                crate::reprocess::Scope::All
            } else {
                let step = step
                    .map(|s| {
                        crate::jobs::Step::from_queue(&s).ok_or_else(|| {
                            Error::Invalid(format!(
                                "unknown step {s:?} (hash, exif, thumbnail, video)"
                            ))
                        })
                    })
                    .transpose()?;
                crate::reprocess::Scope::Missing(step)
            };
            let pool = db::connect_direct(&cli.db).await?;
            crate::config::apply_max_attempts(&db::settings::recorded(&pool).await?);
            let report = crate::reprocess::run(&pool, scope)
                .await
                .map_err(|e| Error::Invalid(format!("reprocess failed: {e}")))?;
            write_line(&serde_json::to_string(&report).unwrap_or_default())
        }
        Command::Maintenance {
            audit_retention_months,
            queue_retention_days,
            job_retention_days,
            grace,
            audit_store: _,
            no_audit_store,
            audit_pages,
            storage,
        } => {
            let pool = db::connect_direct(&cli.db).await?;
            crate::config::apply_max_attempts(&db::settings::recorded(&pool).await?);
            let days = |d: u64| std::time::Duration::from_secs(d.saturating_mul(86_400));
            let configured = db::maintenance::Retention::configured(&pool).await?;
            let retention = db::maintenance::Retention {
                audit_months: audit_retention_months.unwrap_or(configured.audit_months),
                queue_rows: queue_retention_days.map_or(configured.queue_rows, days),
                jobs: job_retention_days.map_or(configured.jobs, days),
            };
            let report = db::maintenance::run(&pool, &retention).await?;
            let storage = storage.open().map_err(|e| Error::Invalid(e.to_string()))?;
            let reconciled = crate::reconcile::run(
                &pool,
                &pool,
                &storage,
                std::time::Duration::from_secs(grace),
            )
            .await
            .map_err(|e| Error::Invalid(format!("reconciliation failed: {e}")))?;
            let mut out = serde_json::json!({ "maintenance": report, "reconcile": reconciled });
            if !no_audit_store {
                let grace = std::time::Duration::from_secs(grace);
                let audit = crate::reconcile::audit_store(&pool, &storage, audit_pages, grace)
                    .await
                    .map_err(|e| Error::Invalid(format!("store audit failed: {e}")))?;
                out["audit"] = serde_json::json!(audit);
            }
            write_line(&out.to_string())
        }
    }
}

/// Writes one line to stdout (command output, not logging).
fn write_line(s: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")?;
    Ok(())
}
