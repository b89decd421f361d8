//! Every state reconciles: a pass that finds what a crash, a kill or an outage left half-done
//! and finishes or cleans it, without an operator. It decides from durable records of intent
//! only (never an object's age, never a listing of the store), and its work is in proportion
//! to what is stuck:
//!
//! - A queue task held by a worker pool that has not beaten for the grace period (at least a
//!   minute) goes back to its queue, even when no pool of its kind runs any more.
//! - An upload session past its deadline (expired, or no progress for the grace period, at
//!   least [`inflight::STALL_MIN`]; a paused resumable upload waits until it expires) is
//!   aborted: what it stored becomes objects to delete.
//! - A pending object nobody can still write (an aborted session's, a deleted file's, or one a
//!   step stored whose task can no longer run) is deleted unless a committed row names it.
//! - A media file `pending`/`processing` for longer than the grace period with no queue task
//!   that may still run gets the steps it is missing enqueued again, on its newest job; one
//!   whose original is missing from the store fails with that reason.
//! - An account erasure nobody has advanced for a while (its process died) is run to its end.
//! - An export or an import of the API nobody has advanced for a while, with no live task of
//!   the `library` queue to run it, is queued again there (an export's next run first aborts
//!   what the dead one stored); an archive past its expiry is deleted.
//!
//! One process leads at a time (a PostgreSQL advisory lock); the worker runs a pass
//! periodically and `timeline maintenance [--grace S]` runs one on demand. The full audit of
//! the store against the rows is an operator's command of its own ([`audit_store`]).

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::db;
use crate::inflight;
use crate::jobs::{self, MediaTask, Step};
use crate::models::JobType;
use crate::storage::{Rendition, Storage};

/// Errors of a pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] jobs::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error("export: {0}")]
    Export(#[from] crate::export::Error),
}

impl From<crate::erasure::Error> for Error {
    fn from(e: crate::erasure::Error) -> Self {
        match e {
            crate::erasure::Error::Database(e) => Self::Database(e),
            crate::erasure::Error::Storage(e) => Self::Storage(e),
            crate::erasure::Error::Export(e) => Self::Export(e),
        }
    }
}

impl From<inflight::CleanError> for Error {
    fn from(e: inflight::CleanError) -> Self {
        match e {
            inflight::CleanError::Database(e) => Self::Database(e),
            inflight::CleanError::Storage(e) => Self::Storage(e),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Another process was reconciling; this pass did nothing.
    pub skipped_not_leader: bool,
    /// Queue tasks held by a worker pool silent for the grace period, returned to their queue.
    pub tasks_released: u64,
    /// Stuck media files whose missing steps were enqueued again.
    pub requeued_files: u64,
    /// Stuck media files whose original is missing from the store, failed with that reason.
    pub missing_originals_failed: u64,
    /// Upload sessions past their deadline, aborted.
    pub sessions_aborted: u64,
    /// Pending objects nobody can still write, settled (deleted, or kept when a row names them).
    pub pending_objects_settled: u64,
    /// Objects no row names, deleted.
    pub orphan_objects_deleted: u64,
    /// Open import jobs left unsealed by an importer that stopped, sealed.
    pub jobs_sealed: u64,
    /// Ended files of stalled jobs that had not been counted in their job's progress.
    pub files_counted: u64,
    /// Account erasures whose runner stopped, resumed and finished.
    pub erasures_finished: u64,
    /// Exports whose run stopped with no task left to run it, queued again (`library`).
    pub exports_resumed: u64,
    /// Export archives past their expiry, deleted.
    pub exports_expired: u64,
    /// Imports of the API whose run stopped with no task left to run it, queued again.
    pub imports_resumed: u64,
}

/// Default grace period: an hour (the contract's), far beyond any upload's transaction or a
/// step's retries.
pub const DEFAULT_GRACE_SECS: u64 = 3600;

/// A worker pool silent this long has stopped, whatever the grace period (a live one beats
/// every 5 s; `maintenance --grace 0` must not take tasks from live workers).
const SILENT_WORKER: Duration = Duration::from_secs(60);

/// Files handled per pass (the next pass takes the rest).
const BATCH: i64 = 1000;

/// An erasure advances every few seconds (a batch of files); one not advanced for this long
/// (or the grace period, if shorter) has lost its runner. Running one twice is harmless.
const ERASURE_STALL: Duration = Duration::from_secs(300);

/// Erasures resumed per pass.
const ERASURES_PER_PASS: i64 = 10;

/// An export beats every few seconds while it writes; one silent this long (or the grace
/// period, if shorter, but never under a few missed beats) has lost its run.
const EXPORT_STALL: Duration = Duration::from_secs(300);

/// Exports resumed, and expired archives deleted, per pass.
const EXPORTS_PER_PASS: i64 = 10;

/// One reconciliation pass with the given grace period. The leader's lock is taken on a
/// connection of `session` (a session of its own: see `db::session_pool`); the work goes
/// through `pool`, a transaction each.
pub async fn run(
    pool: &PgPool,
    session: &PgPool,
    storage: &Storage,
    grace: Duration,
) -> Result<Report, Error> {
    let mut lead = session.acquire().await?;
    // The leader's session lock lives on this connection: it never goes back to the pool, so
    // the lock ends with the pass on every path (an error, a panic, a pass cancelled at
    // shutdown), never lingering on a pooled connection that blocks every later pass.
    lead.close_on_drop();
    if !db::reconcile::try_lead(&mut lead).await? {
        return Ok(Report {
            skipped_not_leader: true,
            ..Report::default()
        });
    }
    let result = async {
        let tasks_released = {
            let mut tx = pool.begin().await?;
            let silent = grace.max(SILENT_WORKER);
            let n = db::reconcile::release_abandoned_tasks(&mut tx, silent.as_secs_f64()).await?;
            tx.commit().await?;
            n
        };
        let sessions_aborted = {
            let mut tx = pool.begin().await?;
            let stall = grace.max(inflight::STALL_MIN).as_secs_f64();
            let aborted = db::objects::abort_stalled(&mut tx, stall, BATCH)
                .await?
                .len();
            // Completed resumable uploads are kept (for `GET /v1/uploads/{id}`) until they
            // expire; their objects are media files' now.
            db::resumable::prune_completed(&mut tx, BATCH).await?;
            tx.commit().await?;
            aborted as u64
        };
        let (pending_objects_settled, orphan_objects_deleted) =
            clean_pending(pool, storage).await?;
        let (requeued_files, missing_originals_failed) =
            requeue_stuck(pool, storage, grace).await?;
        let stall = grace.min(ERASURE_STALL).as_secs_f64();
        let erasures_finished =
            crate::erasure::resume_stalled(pool, storage, stall, ERASURES_PER_PASS).await?;
        let stall = grace
            .min(EXPORT_STALL)
            .max(inflight::STALL_MIN)
            .as_secs_f64();
        // An export's trouble (a store outage) is logged and left to the next pass; it does
        // not stop the pass's other work.
        let exports_resumed = logged(
            "resuming exports",
            crate::export::resume_stalled(pool, stall, EXPORTS_PER_PASS).await,
        );
        let exports_expired = logged(
            "deleting expired exports",
            crate::export::expire(pool, storage, EXPORTS_PER_PASS).await,
        );
        let imports_resumed = logged(
            "queueing stopped imports again",
            crate::import::api::requeue_stalled(pool, stall, EXPORTS_PER_PASS)
                .await
                .map_err(|e| e.to_string()),
        );
        let (jobs_sealed, files_counted) = {
            let mut tx = pool.begin().await?;
            let sealed = db::jobs::seal_abandoned(&mut tx, grace.as_secs_f64()).await?;
            let counted = db::jobs::count_missed(&mut tx, grace.as_secs_f64()).await?;
            tx.commit().await?;
            (sealed, counted)
        };
        Ok::<_, Error>(Report {
            skipped_not_leader: false,
            tasks_released,
            requeued_files,
            missing_originals_failed,
            sessions_aborted,
            pending_objects_settled,
            orphan_objects_deleted,
            jobs_sealed,
            files_counted,
            erasures_finished,
            exports_resumed,
            exports_expired,
            imports_resumed,
        })
    }
    .await;
    // Best effort: the lock also ends with the connection, closed when `lead` drops.
    let _ = db::reconcile::release(&mut lead).await;
    let report = result?;
    if report != (Report::default()) {
        tracing::warn!(
            released = report.tasks_released,
            requeued = report.requeued_files,
            missing = report.missing_originals_failed,
            aborted = report.sessions_aborted,
            settled = report.pending_objects_settled,
            orphans = report.orphan_objects_deleted,
            sealed = report.jobs_sealed,
            counted = report.files_counted,
            erasures = report.erasures_finished,
            exports_resumed = report.exports_resumed,
            exports_expired = report.exports_expired,
            imports_resumed = report.imports_resumed,
            "reconciler repaired leftovers of a crash or an outage"
        );
    } else {
        tracing::debug!("reconciler found nothing to repair");
    }
    Ok(report)
}

/// Deletes the objects of pending rows nobody can still write (a batch per pass); returns the
/// rows settled and the objects deleted.
async fn clean_pending(pool: &PgPool, storage: &Storage) -> Result<(u64, u64), Error> {
    let cleanable = {
        let mut tx = pool.begin().await?;
        db::objects::cleanable(&mut tx, BATCH).await?
    };
    let (mut settled, mut deleted) = (0, 0);
    for object in cleanable {
        settled += 1;
        if inflight::clean(pool, storage, &object.object_key).await? {
            tracing::info!(media.id = %object.media_file_id, user.id = %object.user_id,
                           "object of an unfinished upload or step deleted");
            deleted += 1;
        }
    }
    Ok((settled, deleted))
}

/// Requeues stuck files; returns how many were requeued, and how many failed because their
/// original is missing.
async fn requeue_stuck(
    pool: &PgPool,
    storage: &Storage,
    grace: Duration,
) -> Result<(u64, u64), Error> {
    let mut tx = pool.begin().await?;
    let stuck = db::reconcile::stuck_files(&mut tx, grace.as_secs_f64(), BATCH).await?;
    drop(tx);
    let (mut n, mut missing) = (0, 0);
    for file in stuck {
        let original = Storage::key(file.user_id, file.id, Rendition::Original);
        if !storage.exists(&original).await? {
            if fail_missing(pool, file.id).await? {
                missing += 1;
            }
            continue;
        }
        let mut tx = pool.begin().await?;
        let job_id = match file.job_id {
            Some(j) => j,
            None => {
                let input = serde_json::json!({ "media": [{"id": file.id}], "reconciled": true });
                db::jobs::create(
                    &mut tx,
                    file.user_id,
                    JobType::MediaReprocess,
                    input,
                    &[file.id],
                )
                .await?
                .id
            }
        };
        let missing = db::uploads::missing_steps(&mut tx, file.id).await?;
        let task = [MediaTask::new(
            file.id,
            job_id,
            jobs::priority(jobs::Lane::Bulk, 0),
        )];
        if missing.is_empty() {
            // Every step succeeded but the end state was never written (killed between the
            // last step's record and its settlement): settle it here.
            if db::pipeline::finalize(&mut tx, file.id).await?.is_some() {
                db::jobs::file_ended(&mut tx, file.id).await?;
            }
        } else if missing.iter().any(|s| s == "hash") {
            jobs::enqueue(&mut tx, Step::Hash, &task).await?;
        } else {
            for step in missing.iter().filter_map(|s| Step::from_queue(s)) {
                jobs::enqueue(&mut tx, step, &task).await?;
            }
        }
        db::reconcile::touch(&mut tx, file.id).await?;
        tx.commit().await?;
        tracing::info!(media.id = %file.id, user.id = %file.user_id, job.id = %job_id, ?missing, "stuck media file requeued");
        n += 1;
    }
    Ok((n, missing))
}

/// The reason a file whose original never arrived (or was lost) fails with.
pub const MISSING_ORIGINAL: &str = "the original is missing from storage";

/// Fails a stuck file whose original is missing: its hash step is recorded as failed with
/// [`MISSING_ORIGINAL`], which settles the file and its jobs. True if it was still unended.
async fn fail_missing(pool: &PgPool, id: uuid::Uuid) -> Result<bool, Error> {
    let mut tx = pool.begin().await?;
    let Some(media) = db::pipeline::load(&mut tx, id).await? else {
        return Ok(false);
    };
    if media.processing_status.is_final() {
        return Ok(false);
    }
    db::pipeline::record_step(&mut tx, &media, Step::Hash, Err(MISSING_ORIGINAL), 0).await?;
    if db::pipeline::finalize(&mut tx, id).await?.is_some() {
        db::jobs::file_ended(&mut tx, id).await?;
    }
    tx.commit().await?;
    tracing::warn!(media.id = %id, user.id = %media.user_id, "stuck media file failed: its original is missing");
    Ok(true)
}

/// What an audit of the store did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    /// Objects listed so far in this audit (across resumed runs).
    pub objects_seen: u64,
    /// Objects no row names, deleted so far in this audit.
    pub orphan_objects_deleted: u64,
    /// The audit reached the end of the store (the next one starts from the beginning).
    pub finished: bool,
    /// Where a run stopped by `max_pages` resumes.
    pub resume_after: Option<String>,
    /// Another audit was running (on any host): this one did nothing.
    pub skipped_another_running: bool,
}

/// Keys listed per page of an audit.
const AUDIT_PAGE: usize = 1000;

/// The operator's full audit of the store (`timeline maintenance`, unless `--no-audit-store`):
/// pages through every object under `media/`, deleting those that neither a media row nor a
/// pending object names and that were last written more than `grace` ago. The rows decide:
/// objects being written are always named by a pending row first. The age only spares an
/// unnamed object a while longer, as API.md promises ("older than the grace period"), never
/// condemns one. Progress is kept after each page: a run that stops (killed, or `max_pages`
/// reached) resumes where it was. Never part of the periodic pass: it is O(objects in the
/// store).
pub async fn audit_store(
    pool: &PgPool,
    storage: &Storage,
    max_pages: Option<u64>,
    grace: Duration,
) -> Result<AuditReport, Error> {
    // One audit at a time (a session lock on a connection kept for the audit's length); the
    // lock is let go whatever the audit's outcome.
    let mut lock = pool.acquire().await?;
    if !db::objects::try_lock_audit(&mut lock).await? {
        tracing::info!("another store audit is running; this one does nothing");
        return Ok(AuditReport {
            skipped_another_running: true,
            ..AuditReport::default()
        });
    }
    let audited = audit_pages(pool, storage, max_pages, grace).await;
    let unlocked = db::objects::unlock_audit(&mut lock).await;
    let report = audited?;
    unlocked?;
    Ok(report)
}

/// [`audit_store`]'s pages, under its lock.
async fn audit_pages(
    pool: &PgPool,
    storage: &Storage,
    max_pages: Option<u64>,
    grace: Duration,
) -> Result<AuditReport, Error> {
    // A grace too long to subtract spares everything.
    let cutoff = chrono::Duration::from_std(grace)
        .ok()
        .and_then(|g| chrono::Utc::now().checked_sub_signed(g))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let (mut after, seen, deleted) = {
        let mut conn = pool.acquire().await?;
        db::objects::audit_position(&mut conn)
            .await?
            .map(|(after, seen, deleted)| match after {
                Some(after) => (Some(after), seen, deleted),
                None => (None, 0, 0),
            })
            .unwrap_or((None, 0, 0))
    };
    let (mut seen, mut deleted) = (seen.max(0) as u64, deleted.max(0) as u64);
    let mut pages = 0u64;
    loop {
        if max_pages.is_some_and(|m| pages >= m) {
            return Ok(AuditReport {
                objects_seen: seen,
                orphan_objects_deleted: deleted,
                finished: false,
                resume_after: after,
                skipped_another_running: false,
            });
        }
        let page = storage.list_page(after.as_deref(), AUDIT_PAGE).await?;
        pages += 1;
        let Some(last) = page.last().map(|(k, _)| k.to_string()) else {
            let mut conn = pool.acquire().await?;
            db::objects::audit_advance(&mut conn, None, 0, 0).await?;
            return Ok(AuditReport {
                objects_seen: seen,
                orphan_objects_deleted: deleted,
                finished: true,
                resume_after: None,
                skipped_another_running: false,
            });
        };
        seen += page.len() as u64;
        let old_enough: Vec<object_store::path::Path> = page
            .into_iter()
            .filter(|(_, written)| *written <= cutoff)
            .map(|(k, _)| k)
            .collect();
        deleted += delete_unnamed(pool, storage, &old_enough).await?;
        let mut conn = pool.acquire().await?;
        let (s, d) = (
            i64::try_from(seen).unwrap_or(i64::MAX),
            i64::try_from(deleted).unwrap_or(i64::MAX),
        );
        db::objects::audit_advance(&mut conn, Some(&last), s, d).await?;
        after = Some(last);
    }
}

/// Deletes the objects of a listed page that no row names; returns how many.
async fn delete_unnamed(
    pool: &PgPool,
    storage: &Storage,
    page: &[object_store::path::Path],
) -> Result<u64, Error> {
    let (keys, media): (Vec<String>, Vec<uuid::Uuid>) = page
        .iter()
        .map(|k| {
            (
                k.to_string(),
                Storage::media_of(k.as_ref()).unwrap_or_default(),
            )
        })
        .unzip();
    let unnamed = {
        let mut conn = pool.acquire().await?;
        db::objects::unnamed(&mut conn, &keys, &media).await?
    };
    for key in &unnamed {
        // Named as to delete first, then cleaned like any other: the claim re-checks the rows
        // under the pending row's lock, so an upload that names the key meanwhile wins.
        let mut conn = pool.acquire().await?;
        let media = Storage::media_of(key).unwrap_or_default();
        let user = key
            .split('/')
            .nth(1)
            .and_then(|u| u.parse().ok())
            .unwrap_or_default();
        let keys = [key.clone()];
        db::objects::name_new(&mut conn, user, media, &keys).await?;
        drop(conn);
        inflight::clean(pool, storage, key).await?;
        tracing::info!(object = %key, "audit: object no row names deleted");
    }
    Ok(unnamed.len() as u64)
}

/// A count from work a pass may leave to the next one: its error is logged, counted as 0.
fn logged(what: &str, done: Result<u64, impl std::fmt::Display>) -> u64 {
    done.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "{what} failed; the next pass tries again");
        0
    })
}

#[cfg(test)]
mod tests {
    use crate::storage::Storage;

    #[test]
    fn only_our_keys_name_a_media_file() {
        let u = "7f1b1c3e-0000-4000-8000-000000000001";
        let m = "7f1b1c3e-0000-4000-8000-000000000002";
        assert_eq!(
            Storage::media_of(&format!("media/{u}/{m}/original")).map(|i| i.to_string()),
            Some(m.to_owned())
        );
        for bad in ["media", "media/x/y/original", "other/a/b/c", ""] {
            assert_eq!(Storage::media_of(bad), None, "{bad}");
        }
    }
}
