//! Every state reconciles: a pass that finds what a crash, a kill or an outage left half-done
//! and finishes or cleans it, without an operator.
//!
//! - A media file `pending`/`processing` for longer than the grace period with no queue task
//!   that may still run (its task vanished, or its last step's bookkeeping never committed)
//!   gets the steps it is missing enqueued again, on its newest job.
//! - A stored object under `media/{user}/{media}/…` that no row names (its media row does not
//!   exist — an upload killed before its transaction committed, a delete whose object removal
//!   failed — or the row does not name it: renditions a worker stored before it was killed
//!   ahead of its step's final transaction) and that is older than the grace period is
//!   deleted; so are the staging files a killed multipart
//!   upload leaves in a `file://` store (S3 expires incomplete multipart uploads by its own
//!   lifecycle rule; see docs/OPERATIONS.md).
//! - A queue task held by a worker pool that has not beaten for the grace period (at least a
//!   minute) goes back to its queue, even when no pool of its kind runs any more.
//!
//! One process leads at a time (a PostgreSQL advisory lock); the worker runs a pass
//! periodically and `timeline maintenance [--grace S]` runs one on demand.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db;
use crate::jobs::{self, MediaTask, Step};
use crate::models::JobType;
use crate::storage::Storage;

/// Errors of a pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] jobs::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
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
    /// Objects examined in the store.
    pub objects_seen: u64,
    /// Objects no row names, deleted.
    pub orphan_objects_deleted: u64,
    /// Open import jobs left unsealed by an importer that stopped, sealed.
    pub jobs_sealed: u64,
    /// Ended files of stalled jobs that had not been counted in their job's progress.
    pub files_counted: u64,
}

/// Default grace period: an hour (the contract's), far beyond any upload's transaction or a
/// step's retries.
pub const DEFAULT_GRACE_SECS: u64 = 3600;

/// A worker pool silent this long has stopped, whatever the grace period (a live one beats
/// every 5 s; `maintenance --grace 0` must not take tasks from live workers).
const SILENT_WORKER: Duration = Duration::from_secs(60);

/// Files handled per pass (the next pass takes the rest).
const BATCH: i64 = 1000;
/// Objects checked against the database per query.
const ID_BATCH: usize = 500;

/// One reconciliation pass with the given grace period.
pub async fn run(pool: &PgPool, storage: &Storage, grace: Duration) -> Result<Report, Error> {
    let mut lead = pool.acquire().await?;
    if !db::reconcile::try_lead(&mut lead).await? {
        return Ok(Report {
            skipped_not_leader: true,
            ..Report::default()
        });
    }
    let result = async {
        let tasks_released = {
            let mut conn = pool.acquire().await?;
            let silent = grace.max(SILENT_WORKER);
            db::reconcile::release_abandoned_tasks(&mut conn, silent.as_secs_f64()).await?
        };
        let requeued_files = requeue_stuck(pool, grace).await?;
        let (jobs_sealed, files_counted) = {
            let mut conn = pool.acquire().await?;
            let sealed = db::jobs::seal_abandoned(&mut conn, grace.as_secs_f64()).await?;
            (
                sealed,
                db::jobs::count_missed(&mut conn, grace.as_secs_f64()).await?,
            )
        };
        let (objects_seen, orphans) = sweep_store(pool, storage, grace).await?;
        let staging = storage.sweep_local_staging(grace).await?;
        Ok::<_, Error>(Report {
            skipped_not_leader: false,
            tasks_released,
            requeued_files,
            jobs_sealed,
            files_counted,
            objects_seen,
            orphan_objects_deleted: orphans + staging,
        })
    }
    .await;
    // Best effort: the lock also ends with the connection.
    let _ = db::reconcile::release(&mut lead).await;
    let report = result?;
    if report.requeued_files > 0
        || report.tasks_released > 0
        || report.orphan_objects_deleted > 0
        || report.jobs_sealed > 0
        || report.files_counted > 0
    {
        tracing::warn!(
            released = report.tasks_released,
            requeued = report.requeued_files,
            sealed = report.jobs_sealed,
            counted = report.files_counted,
            orphans = report.orphan_objects_deleted,
            "reconciler repaired leftovers of a crash or an outage"
        );
    } else {
        tracing::debug!(
            objects = report.objects_seen,
            "reconciler found nothing to repair"
        );
    }
    Ok(report)
}

async fn requeue_stuck(pool: &PgPool, grace: Duration) -> Result<u64, Error> {
    let mut conn = pool.acquire().await?;
    let stuck = db::reconcile::stuck_files(&mut conn, grace.as_secs_f64(), BATCH).await?;
    drop(conn);
    let mut n = 0;
    for file in stuck {
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
    Ok(n)
}

/// The media id in a key `media/{user}/{media}/{rendition}`.
fn media_id_of(key: &str) -> Option<Uuid> {
    let mut parts = key.split('/');
    (parts.next()? == "media").then_some(())?;
    let _user: Uuid = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

async fn sweep_store(
    pool: &PgPool,
    storage: &Storage,
    grace: Duration,
) -> Result<(u64, u64), Error> {
    let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let prefix = object_store::path::Path::from("media");
    let mut listing = storage.inner().list(Some(&prefix));
    let (mut seen, mut deleted) = (0u64, 0u64);
    let mut batch: Vec<(object_store::path::Path, Uuid)> = Vec::with_capacity(ID_BATCH);
    loop {
        let next = listing
            .next()
            .await
            .transpose()
            .map_err(crate::storage::Error::from)?;
        if let Some(meta) = &next {
            seen += 1;
            // Young objects may belong to an upload whose transaction is about to commit.
            if meta.last_modified < cutoff
                && let Some(id) = media_id_of(meta.location.as_ref())
            {
                batch.push((meta.location.clone(), id));
            }
        }
        if batch.len() >= ID_BATCH || (next.is_none() && !batch.is_empty()) {
            deleted += delete_orphans(pool, storage, std::mem::take(&mut batch)).await?;
        }
        if next.is_none() {
            return Ok((seen, deleted));
        }
    }
}

async fn delete_orphans(
    pool: &PgPool,
    storage: &Storage,
    batch: Vec<(object_store::path::Path, Uuid)>,
) -> Result<u64, Error> {
    let ids: Vec<Uuid> = batch.iter().map(|(_, id)| *id).collect();
    let mut conn = pool.acquire().await?;
    let named: std::collections::HashSet<String> = db::reconcile::named_keys(&mut conn, &ids)
        .await?
        .into_iter()
        .collect();
    drop(conn);
    let mut deleted = 0;
    for (key, id) in batch {
        if named.contains(key.as_ref()) {
            continue;
        }
        storage.delete(&key).await?;
        storage.remove_empty_media_dir(&key).await;
        tracing::info!(object = %key, media.id = %id, "orphan object deleted");
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::media_id_of;

    #[test]
    fn only_our_keys_name_a_media_file() {
        let u = "7f1b1c3e-0000-4000-8000-000000000001";
        let m = "7f1b1c3e-0000-4000-8000-000000000002";
        assert_eq!(
            media_id_of(&format!("media/{u}/{m}/original")).map(|i| i.to_string()),
            Some(m.to_owned())
        );
        for bad in ["media", "media/x/y/original", "other/a/b/c", ""] {
            assert_eq!(media_id_of(bad), None, "{bad}");
        }
    }
}
