//! Imports of `POST /v1/imports`, run by the workers' `library` pool: the archives the user
//! uploaded, read in place in the store by ranged reads (see [`job::run_archives`]), on the
//! open `import` job the request made. The request records with the job what the import needs
//! (the archives' keys, the format, the upload limits of the web process that took it) and
//! queues its task in the same transaction.
//!
//! A run beats on its job. A run that stops on trouble of the store or the database leaves the
//! job open and is tried again by the queue after a backoff; one whose worker dies is run again
//! by the queue once the worker is seen dead, or queued again by the reconciler when no task
//! is left ([`requeue_stalled`]). Every run after the first counts in the job's output
//! (`restarts`: runs in a row that recorded no file, since the last that stopped cleanly on an
//! outage); past [`MAX_RESTARTS`] the job fails with that reason. A run again stores nothing
//! twice: files already stored are only linked.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::job::{self, Format};
use crate::config::UploadLimits;
use crate::db;
use crate::format::MediaFormat;
use crate::ingest::store::Error;
use crate::jobs::LibraryTask;
use crate::storage::Storage;

/// Runs in a row an import is given without progress: one whose run stops this often with no
/// file recorded in between (an archive that crashes or stalls it each time) is failed rather
/// than run forever; an outage or a deploy amid a long import, which goes on, is not.
pub const MAX_RESTARTS: i32 = 5;
/// How often a running import marks itself alive.
const BEAT: Duration = Duration::from_secs(2);

/// What `POST /v1/imports` records as the job's input: the uploads, their keys in the store,
/// the format asked for, and the limits the import is held to.
pub fn input(uploads: &[Uuid], keys: &[String], from: &str, limits: &UploadLimits) -> Value {
    let allowed = limits
        .allowed_types
        .as_ref()
        .map(|a| a.iter().map(|f| f.mime()).collect::<Vec<_>>());
    json!({ "source": "api", "uploads": uploads, "keys": keys,
            "from": from.to_ascii_lowercase(),
            "max_file_bytes": limits.max_file_bytes, "allowed_types": allowed })
}

/// The limits recorded in the job's input (an import queued without them: the defaults).
fn limits_of(input: &Value) -> UploadLimits {
    let allowed_types = input["allowed_types"].as_array().map(|list| {
        list.iter()
            .filter_map(|m| m.as_str().and_then(MediaFormat::from_mime))
            .collect::<Vec<_>>()
            .into()
    });
    UploadLimits {
        max_file_bytes: input["max_file_bytes"]
            .as_u64()
            .unwrap_or(crate::config::DEFAULT_MAX_FILE_BYTES),
        max_request_bytes: crate::config::DEFAULT_MAX_REQUEST_BYTES,
        max_parts: 0,
        allowed_types,
        user_quota_bytes: None,
        max_archive_bytes: crate::config::DEFAULT_MAX_ARCHIVE_BYTES,
    }
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded (or not an open import any more: done, failed or erased meanwhile).
    Done,
    /// Failed with its reason, for good.
    Failed,
    /// Stopped on trouble of the store or the database: to be run again.
    Interrupted(String),
}

/// Runs the API import `job` (a task of the `library` queue).
#[tracing::instrument(skip(pool, storage), fields(job.id = %job, user.id = tracing::field::Empty))]
pub async fn run(pool: &PgPool, storage: &Storage, job: Uuid) -> Result<Outcome, sqlx::Error> {
    let (claimed, open) = {
        let mut tx = pool.begin().await?;
        let c = db::jobs::claim_api_import(&mut tx, job).await?;
        let open = c.is_none() && db::jobs::api_import_open(&mut tx, job).await?;
        tx.commit().await?;
        (c, open)
    };
    let Some(db::jobs::ClaimedImport {
        user_id: user,
        input,
        restarts,
        ..
    }) = claimed
    else {
        // Still open, so another run beats (a worker cut off from the database that still
        // goes on): this task tries again after a backoff rather than ending, so that the
        // import is not left to the reconciler should that run die meanwhile.
        return Ok(match open {
            true => Outcome::Interrupted("another run of this import is alive".into()),
            false => Outcome::Done,
        });
    };
    tracing::Span::current().record("user.id", tracing::field::display(user));
    if restarts > MAX_RESTARTS {
        let reason = format!(
            "the import stopped {MAX_RESTARTS} times without storing anything more; its \
             archives may hold what it cannot read"
        );
        fail(pool, job, &reason).await?;
        return Ok(Outcome::Failed);
    }
    let keys: Vec<String> = input["keys"]
        .as_array()
        .map(|k| {
            k.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let from = input["from"].as_str().unwrap_or("auto");
    let format = <Format as clap::ValueEnum>::from_str(from, true).unwrap_or(Format::Auto);
    let limits = limits_of(&input);
    // Stops beating however the run ends (a panic included), so that it is seen stopped.
    let _beat = AbortOnDrop(tokio::spawn(heartbeat(pool.clone(), job)));
    let done = job::run_archives(pool, storage, &limits, (user, job), &keys, format).await;
    drop(_beat);
    match done {
        Ok(()) => {
            tracing::info!("import recorded");
            Ok(Outcome::Done)
        }
        Err(Error::Invalid(reason)) => {
            fail(pool, job, &reason).await?;
            Ok(Outcome::Failed)
        }
        Err(Error::Database(e)) if refused_data(&e) => {
            // The database refused what the archive holds: running it again changes nothing.
            tracing::warn!(error = %e, "import refused by the database");
            fail(pool, job, "the archive holds data that cannot be stored").await?;
            Ok(Outcome::Failed)
        }
        Err(e) => {
            let mut tx = pool.begin().await?;
            db::jobs::note_import_interrupted(&mut tx, job).await?;
            tx.commit().await?;
            Ok(Outcome::Interrupted(e.to_string()))
        }
    }
}

/// Ends the import's job as failed with `reason`.
async fn fail(pool: &PgPool, job: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    tracing::warn!(%reason, "import failed");
    let mut tx = pool.begin().await?;
    db::jobs::fail_open(&mut tx, job, reason).await?;
    tx.commit().await
}

/// Whether the database refused the data itself (SQLSTATE class 22, data exception; 23502, a
/// missing value; 23514, a check), as opposed to being unreachable or busy. Not a foreign key
/// or a unique key: those come of races (a file deleted meanwhile, another run), which pass.
fn refused_data(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c.starts_with("22") || c == "23502" || c == "23514")
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn heartbeat(pool: PgPool, job: Uuid) {
    loop {
        let alive = async {
            let mut tx = pool.begin().await?;
            let alive = db::jobs::touch_open(&mut tx, job).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(alive)
        };
        if matches!(alive.await, Ok(false)) {
            return;
        }
        tokio::time::sleep(BEAT).await;
    }
}

/// Queues again up to `limit` API imports silent for `stale_secs` that no live `library` task
/// will run (the queue gave up on them, or lost them). Returns how many.
pub async fn requeue_stalled(pool: &PgPool, stale_secs: f64, limit: i64) -> Result<u64, Error> {
    let mut tx = pool.begin().await?;
    let stalled = db::jobs::stalled_api_imports(&mut *tx, stale_secs, limit).await?;
    for &job_id in &stalled {
        crate::jobs::enqueue_library(&mut tx, LibraryTask::Import { job_id })
            .await
            .map_err(|e| Error::Interrupted(e.to_string()))?;
        tracing::warn!(job.id = %job_id, "import queued again: its run died");
    }
    tx.commit().await?;
    Ok(stalled.len() as u64)
}
