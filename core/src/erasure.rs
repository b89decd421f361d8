//! The right to erasure: an account and everything of it, rows and stored objects, deleted by
//! an `account_deletion` job (`DELETE /v1/account`, `timeline users erase`).
//!
//! The job works from the rows only, in batches, each step safe to run twice:
//! 1. the user's open upload sessions are aborted (what they stored becomes objects to delete);
//! 2. media files go a batch at a time: their objects are named as to delete in the same
//!    transaction that deletes the rows, then deleted (an interrupted delete is finished by the
//!    next batch or by the reconciler);
//! 3. the user's export archives are deleted (a run still writing one stops at its next
//!    beat), then the objects nobody writes any more;
//! 4. with the user row locked (an upload committing now waits, then fails), and nothing that
//!    owns objects left, the user row is deleted (the rest cascades from it: tokens,
//!    sessions, jobs, memories, collections, locations) and the audit trail about them is
//!    anonymized, in one transaction.
//!
//! A user's request runs as a task of the workers' `library` queue, queued with it. An erasure
//! whose process dies resumes: the queue gives a dead worker's task back, and the reconciler
//! runs every unfinished one not advanced for its grace period that no task will run. Objects a worker step is writing for a deleted file at that
//! moment are named by the step and cleaned by the reconciler once its task has ended.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db;
use crate::inflight::{self, CleanError};
use crate::storage::Storage;

/// Media files deleted per transaction.
const BATCH: i64 = 200;

/// Errors of an erasure run; the job stays unfinished and resumes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Export(#[from] crate::export::Error),
}

impl From<CleanError> for Error {
    fn from(e: CleanError) -> Self {
        match e {
            CleanError::Database(e) => Self::Database(e),
            CleanError::Storage(e) => Self::Storage(e),
        }
    }
}

/// What an erasure deleted (over all its runs, when it was resumed).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub job_id: Uuid,
    pub user_id: Uuid,
    pub media_files: i64,
    /// Object keys deleted: every key the rows could name (an original, its renditions),
    /// whether or not it had been written yet; the store cannot tell the difference.
    pub object_keys_deleted: i64,
    pub upload_sessions_aborted: i64,
    pub audit_rows_anonymized: i64,
    /// False when the job was not an unfinished erasure (already done, or unknown).
    pub erased: bool,
}

/// Records the request to erase `user`: from now on their account takes no uploads. Returns
/// the job (an unfinished one if there is one already); `None` for an unknown user. The
/// caller commits, then runs [`run`] itself (`timeline users erase`); [`request_queued`]
/// leaves the run to a worker instead.
pub async fn request(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    Ok(db::erasure::request(conn, user).await?.map(|(id, _)| id))
}

/// [`request`], queuing the new job's run on the workers' `library` queue on the same
/// transaction (a request that joins an unfinished erasure queues nothing more: its run is
/// already queued, or the reconciler's).
pub async fn request_queued(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
) -> Result<Option<Uuid>, crate::jobs::Error> {
    let Some((job_id, new)) = db::erasure::request(&mut *conn, user)
        .await
        .map_err(|e| crate::jobs::Error::Queue(apalis_postgres::Error::Database(e)))?
    else {
        return Ok(None);
    };
    if new {
        crate::jobs::enqueue_library(conn, crate::jobs::LibraryTask::Erasure { job_id }).await?;
    }
    Ok(Some(job_id))
}

/// Runs the erasure job `job` to its end (see the module comment).
pub async fn run(pool: &PgPool, storage: &Storage, job: Uuid) -> Result<Report, Error> {
    run_in_batches(pool, storage, job, BATCH).await
}

/// [`run`], deleting `batch` media files per transaction.
#[tracing::instrument(skip(pool, storage), fields(job.id = %job))]
pub async fn run_in_batches(
    pool: &PgPool,
    storage: &Storage,
    job: Uuid,
    batch: i64,
) -> Result<Report, Error> {
    let batch = batch.max(1);
    let Some(user) = in_tx!(pool, |c| db::erasure::claim(c, job)) else {
        return Ok(Report {
            job_id: job,
            ..Report::default()
        });
    };
    tracing::info!(user.id = %user, "erasing an account");
    loop {
        abort_sessions(pool, job, user).await?;
        while delete_media_batch(pool, storage, job, user, batch).await? {}
        crate::export::delete_all_of(pool, storage, user).await?;
        let cleaned = clean_unowned(pool, storage, user).await?;
        if cleaned > 0 {
            in_tx!(pool, |c| db::erasure::advance(c, job, 0, cleaned, 0, 0));
        }
        if let Some(report) = finish(pool, job, user).await? {
            tracing::info!(user.id = %user, media_files = report.media_files,
                           objects = report.object_keys_deleted, "account erased");
            return Ok(report);
        }
        // An upload committed (or a session opened) since the batches: go round again.
    }
}

/// Aborts the user's open upload sessions, and lets go of what completed ones keep (archives
/// for imports); their objects become objects to delete.
async fn abort_sessions(pool: &PgPool, job: Uuid, user: Uuid) -> Result<(), Error> {
    let mut aborted = 0;
    for id in in_tx!(pool, |c| db::erasure::open_sessions(c, user)) {
        if in_tx!(pool, |c| db::objects::abort_session(c, id)) {
            aborted += 1;
        }
    }
    if aborted > 0 {
        in_tx!(pool, |c| db::erasure::advance(c, job, 0, 0, aborted, 0));
    }
    // Completed uploads keep only archives for imports: those go too.
    in_tx!(pool, |c| db::erasure::release_completed_uploads(c, user));
    Ok(())
}

/// Deletes one batch of media files and their objects; false when none was left.
async fn delete_media_batch(
    pool: &PgPool,
    storage: &Storage,
    job: Uuid,
    user: Uuid,
    batch: i64,
) -> Result<bool, Error> {
    let mut tx = pool.begin().await?;
    let batch_ids = db::erasure::media_batch(&mut *tx, user, batch).await?;
    // Its places go with the account at the end (`db::erasure`).
    let gone = db::uploads::delete(&mut tx, user, &batch_ids).await?.ids;
    if gone.is_empty() {
        return Ok(false);
    }
    let keys = inflight::name_deleted(&mut tx, user, &gone).await?;
    tx.commit().await?;
    let mut objects = 0;
    for key in &keys {
        if inflight::clean(pool, storage, key).await? {
            objects += 1;
        }
    }
    let left = in_tx!(pool, |c| db::erasure::media_left(c, user));
    let deleted = i64::try_from(gone.len()).unwrap_or(i64::MAX);
    in_tx!(pool, |c| db::erasure::advance(
        c, job, deleted, objects, 0, left
    ));
    Ok(true)
}

/// Deletes the user's objects that nobody writes any more; returns how many were deleted.
async fn clean_unowned(pool: &PgPool, storage: &Storage, user: Uuid) -> Result<i64, Error> {
    let mut deleted = 0;
    loop {
        let keys = in_tx!(pool, |c| db::erasure::unowned_objects(c, user, BATCH));
        if keys.is_empty() {
            return Ok(deleted);
        }
        for key in &keys {
            if inflight::clean(pool, storage, key).await? {
                deleted += 1;
            }
        }
    }
}

/// The last transaction: deletes the user once nothing owning objects is left; `None` when
/// something is (the caller goes round again).
async fn finish(pool: &PgPool, job: Uuid, user: Uuid) -> Result<Option<Report>, Error> {
    let mut tx = pool.begin().await?;
    let counts = db::erasure::counts(&mut *tx, job).await?;
    match db::erasure::lock_and_check(&mut tx, user).await? {
        Some(true) => return Ok(None),
        Some(false) => {}
        // Erased by another runner meanwhile.
        None => {
            return Ok(Some(Report {
                job_id: job,
                user_id: user,
                erased: true,
                ..Report::default()
            }));
        }
    }
    let anonymized = db::erasure::delete_user(&mut tx, user).await?;
    tx.commit().await?;
    let count = |name: &str| {
        counts
            .as_ref()
            .and_then(|c| c.get(name))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0)
    };
    Ok(Some(Report {
        job_id: job,
        user_id: user,
        media_files: count("media_files"),
        object_keys_deleted: count("object_keys_deleted"),
        upload_sessions_aborted: count("upload_sessions_aborted"),
        audit_rows_anonymized: anonymized,
        erased: true,
    }))
}

/// Resumes up to `limit` erasures that nobody advanced for `stale_secs` (the reconciler's
/// part). Returns how many it finished.
pub async fn resume_stalled(
    pool: &PgPool,
    storage: &Storage,
    stale_secs: f64,
    limit: i64,
) -> Result<u64, Error> {
    let mut finished = 0;
    for job in in_tx!(pool, |c| db::erasure::stalled(c, stale_secs, limit)) {
        if run(pool, storage, job).await?.erased {
            finished += 1;
        }
    }
    Ok(finished)
}
