//! What the three steps share: error classes, the failure path, and the end-state bookkeeping.

use std::time::Duration;

use timeline_core::db::{self, pipeline::MediaState, tx::Tx};
use timeline_core::jobs::{Known, MediaTask, Step};
use timeline_core::models::ProcessingStatus;
use timeline_core::storage::{Rendition, Storage};
use tracing::Instrument;
use uuid::Uuid;

use crate::context::Context;
pub use crate::error::StepError;

/// Default longest a single CPU stage (hash, EXIF, decode + render) may take before the file
/// is failed as pathological (`--step-timeout-secs`). A 100 MP image renders in a few seconds.
pub const CPU_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest failure reason stored, in characters: a job lists up to 100 failures, each with
/// its reason, and one decoder's page of complaints must not make that list megabytes.
const MAX_REASON_CHARS: usize = 1000;

/// A failure reason as it is stored for users to read: no path, URL or key
/// (`storage::scrub`), at most [`MAX_REASON_CHARS`] characters.
fn stored_reason(reason: &str) -> String {
    let clean = timeline_core::storage::scrub(reason);
    match clean.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// Runs `f` on the blocking pool with a deadline: CPU work never stalls the async threads, and
/// a hanging decoder is abandoned (its thread finishes on its own) while the pool moves on.
pub async fn cpu<T, F>(timeout: Duration, f: F) -> Result<T, StepError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(join)) => Err(StepError::Permanent(format!("processing crashed: {join}"))),
        Err(_) => Err(StepError::Permanent(format!(
            "processing took longer than {}s",
            timeout.as_secs_f64()
        ))),
    }
}

/// Loads the file and reports whether the step should run (`None`: deleted or already ended),
/// marking it processing; one transaction.
pub async fn begin(ctx: &Context, task: MediaTask) -> Result<Option<MediaState>, StepError> {
    let mut tx = ctx.db.begin().await?;
    let media = begin_on(&mut tx, task).await?;
    tx.commit().await?;
    Ok(media)
}

/// [`begin`] on the caller's transaction, so that a step's other first reads and writes (its
/// checks, the keys it will store) share it rather than costing a transaction each.
pub async fn begin_on(
    conn: &mut sqlx::PgConnection,
    task: MediaTask,
) -> Result<Option<MediaState>, StepError> {
    match db::pipeline::load(conn, task.media_file_id).await? {
        Some(media) => start_on(conn, task, media).await,
        None => Ok(None),
    }
}

/// Whether the step should run on the loaded `media`, marking it processing if so.
pub async fn start_on(
    conn: &mut sqlx::PgConnection,
    task: MediaTask,
    media: MediaState,
) -> Result<Option<MediaState>, StepError> {
    if !runnable(task, &media) {
        return Ok(None);
    }
    if media.processing_status.is_final() {
        return Ok(Some(media));
    }
    // The file's and the job's first step moves them on; later steps change nothing.
    if media.processing_status != ProcessingStatus::Processing {
        db::pipeline::mark_processing(conn, media.id).await?;
    }
    db::jobs::mark_running(conn, task.job_id).await?;
    Ok(Some(media))
}

/// Whether `task`'s step may still run on `media`: reprocessing a completed file runs its
/// step; nothing else touches an ended file.
fn runnable(task: MediaTask, media: &MediaState) -> bool {
    !media.processing_status.is_final()
        || (task.refresh && media.processing_status == ProcessingStatus::Completed)
}

/// The file a step works on before its final transaction.
#[derive(Debug)]
pub enum File {
    /// Loaded, checked and marked by the step's own first transaction ([`begin_on`]).
    Loaded(MediaState),
    /// Known from the task the hash step queued (`jobs::Known`), whose transaction had
    /// checked and marked the file: nothing read yet. The final transaction loads and checks
    /// it ([`File::confirm_on`]), one transaction fewer per step.
    Known(MediaTask, Known),
}

impl File {
    pub fn id(&self) -> Uuid {
        match self {
            File::Loaded(m) => m.id,
            File::Known(t, _) => t.media_file_id,
        }
    }

    pub fn user_id(&self) -> Uuid {
        match self {
            File::Loaded(m) => m.user_id,
            File::Known(_, k) => k.user_id,
        }
    }

    /// The file for the step's final transaction `conn`: a known one is loaded and checked
    /// there (`None`: deleted or ended meanwhile; the step then records nothing).
    pub async fn confirm_on(
        self,
        conn: &mut sqlx::PgConnection,
    ) -> Result<Option<MediaState>, StepError> {
        match self {
            File::Loaded(media) => Ok(Some(media)),
            File::Known(task, _) => Ok(db::pipeline::load(conn, task.media_file_id)
                .await?
                .filter(|media| runnable(task, media))),
        }
    }

    /// The loaded file, reading a known one now in a transaction of its own (for what only
    /// the row says, such as the file's name); `None` when it was deleted or ended.
    pub async fn loaded(self, ctx: &Context) -> Result<Option<MediaState>, StepError> {
        let mut tx = ctx.db.begin().await?;
        let media = self.confirm_on(&mut tx).await?;
        tx.commit().await?;
        Ok(media)
    }
}

/// Reads the stored original of an image into memory (image decoders need the whole file),
/// refusing one over `ctx.max_image_bytes` rather than holding an unbounded buffer.
pub async fn original(ctx: &Context, file: &File) -> Result<bytes::Bytes, StepError> {
    let key = Storage::key(file.user_id(), file.id(), Rendition::Original);
    ctx.storage
        .get_bounded(&key, ctx.max_image_bytes)
        .await?
        .ok_or_else(|| {
            StepError::Permanent(format!(
                "image too large to process: over {} bytes",
                ctx.max_image_bytes
            ))
        })
}

/// Where a file's `thumb` and `preview` were stored, and their sizes (`metadata.thumbnails`).
#[derive(Debug)]
pub struct StoredRenditions {
    pub thumb_key: String,
    pub preview_key: String,
    pub sizes: serde_json::Value,
}

/// The keys of a file's `thumb` and `preview`, as pending objects name them.
fn rendition_keys(user_id: Uuid, id: Uuid) -> [String; 2] {
    [Rendition::Thumb, Rendition::Preview].map(|r| Storage::key(user_id, id, r).to_string())
}

/// Names the file's `thumb` and `preview` keys for `step` on the caller's transaction, which
/// commits before [`write_renditions`] stores them; the step's final transaction settles them.
pub async fn name_renditions_on(
    conn: &mut sqlx::PgConnection,
    media: &MediaState,
    step: Step,
) -> Result<(), StepError> {
    let keys = rendition_keys(media.user_id, media.id);
    timeline_core::inflight::name_for_step_on(conn, media.user_id, media.id, &keys, step.queue())
        .await?;
    Ok(())
}

/// Names the `thumb` and `preview` keys of `media` for its thumbnail task `task_id`, on the
/// transaction that queues that task (the hash step's): the task then writes them without a
/// first transaction of its own.
pub async fn name_renditions_for(
    conn: &mut sqlx::PgConnection,
    media: &MediaState,
    task_id: &str,
) -> Result<(), StepError> {
    let owner = db::objects::Owner::Step(Step::Thumbnail.queue(), Some(task_id));
    name_renditions(conn, (media.user_id, media.id), owner).await?;
    Ok(())
}

/// Names a file's `thumb` and `preview` keys for `owner` on the caller's transaction; returns
/// them.
async fn name_renditions(
    conn: &mut sqlx::PgConnection,
    (user_id, id): (Uuid, Uuid),
    owner: db::objects::Owner<'_>,
) -> Result<[String; 2], StepError> {
    let keys = rendition_keys(user_id, id);
    db::objects::name_objects(conn, user_id, id, &keys, owner).await?;
    Ok(keys)
}

/// Stores a file's rendered `thumb` and `preview`, naming their keys first in a transaction
/// of their own: photos, video posters and audio waveforms alike.
pub async fn store_renditions(
    ctx: &Context,
    media: &MediaState,
    step: Step,
    t: timeline_media::thumbnail::Thumbnails,
) -> Result<StoredRenditions, StepError> {
    let mut tx = ctx.db.begin().await?;
    name_renditions_on(&mut tx, media, step).await?;
    tx.commit().await?;
    write_renditions(ctx, (media.user_id, media.id), t).await
}

/// Stores a file's rendered `thumb` and `preview` under keys named already
/// ([`name_renditions_on`], committed).
pub async fn write_renditions(
    ctx: &Context,
    (user_id, id): (Uuid, Uuid),
    t: timeline_media::thumbnail::Thumbnails,
) -> Result<StoredRenditions, StepError> {
    let sizes = serde_json::json!({
        "thumb": {"width": t.thumb.width, "height": t.thumb.height, "mime": t.thumb.mime},
        "preview": {"width": t.preview.width, "height": t.preview.height, "mime": t.preview.mime},
    });
    // The keys are deterministic: a rerun overwrites.
    let thumb_key = Storage::key(user_id, id, Rendition::Thumb);
    let preview_key = Storage::key(user_id, id, Rendition::Preview);
    ctx.storage.put(&thumb_key, t.thumb.bytes.into()).await?;
    ctx.storage
        .put(&preview_key, t.preview.bytes.into())
        .await?;
    Ok(StoredRenditions {
        thumb_key: thumb_key.to_string(),
        preview_key: preview_key.to_string(),
        sizes,
    })
}

/// Pairs the file with the other half of its Live Photo, if it has an identifier and the other
/// half is there (on the caller's transaction).
pub async fn pair_live_photo(
    conn: &mut sqlx::PgConnection,
    user_id: uuid::Uuid,
    content_identifier: Option<&str>,
) -> Result<(), StepError> {
    if let Some(cid) = content_identifier
        && let Some((still, clip)) = db::pipeline::link_live_photo(conn, user_id, cid).await?
    {
        tracing::info!(%still, %clip, "Live Photo paired");
    }
    Ok(())
}

/// Records a step's outcome, settles the file's end state and the job's progress, in one
/// transaction (nothing, if a known file turns out deleted or ended).
pub async fn finish(
    ctx: &Context,
    file: File,
    step: Step,
    outcome: Result<(), &str>,
    attempt: i32,
) -> Result<(), StepError> {
    let mut tx = ctx.db.begin().await?;
    let Some(media) = file.confirm_on(&mut tx).await? else {
        return Ok(());
    };
    db::pipeline::record_step(&mut tx, &media, step, outcome, attempt).await?;
    settle(&mut tx, &media).await?;
    // The thumbnail step's keys are named before it renders: a failure leaves them to delete
    // (nothing is kept that a committed row does not name; see `inflight::clean`).
    let dropped = if outcome.is_err() && step == Step::Thumbnail {
        drop_renditions_on(&mut tx, media.user_id, media.id).await?
    } else {
        Vec::new()
    };
    commit_final(tx).await?;
    clean(ctx, &dropped).await;
    Ok(())
}

/// Names a file's `thumb` and `preview` keys as to delete, on the caller's transaction;
/// returns them for [`clean`] once it commits.
async fn drop_renditions_on(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<Vec<String>, StepError> {
    let keys = name_renditions(conn, (user_id, id), db::objects::Owner::Nobody).await?;
    Ok(keys.to_vec())
}

/// Deletes renditions stored for a file that was deleted or ended while they rendered.
pub async fn drop_renditions(ctx: &Context, (user_id, id): (Uuid, Uuid)) -> Result<(), StepError> {
    let mut tx = ctx.db.begin().await?;
    let dropped = drop_renditions_on(&mut tx, user_id, id).await?;
    tx.commit().await?;
    clean(ctx, &dropped).await;
    Ok(())
}

/// Deletes objects named as to delete, best effort: the reconciler finishes a delete that
/// does not happen here.
async fn clean(ctx: &Context, keys: &[String]) {
    for key in keys {
        if let Err(e) = timeline_core::inflight::clean(&ctx.db, &ctx.storage, key).await {
            tracing::warn!(error = %e, "could not delete a dropped rendition yet");
        }
    }
}

/// Commits a step's final transaction together with its task's acknowledgement (see
/// `crate::ack`): nothing that can fail may follow it in the step.
pub async fn commit_final(tx: Tx) -> Result<(), StepError> {
    Ok(crate::ack::commit_done(tx).await?)
}

/// Decides the end state (if reached) and moves the progress of the file's jobs.
pub async fn settle(
    conn: &mut sqlx::PgConnection,
    media: &MediaState,
) -> Result<Option<ProcessingStatus>, StepError> {
    let end = db::pipeline::finalize(conn, media.id).await?;
    if let Some(status) = end {
        tracing::info!(status = %status, "media file reached its end state");
        db::jobs::file_ended(conn, media.id).await?;
        media_ended(&media.mime_type, status);
    }
    Ok(end)
}

/// Counts a file reaching its end state (`timeline_media_total`).
pub fn media_ended(mime_type: &str, status: ProcessingStatus) {
    let kind = timeline_media::Kind::of_mime(mime_type).map_or("unknown", |k| match k {
        timeline_media::Kind::Image => "image",
        timeline_media::Kind::Video => "video",
        timeline_media::Kind::Audio => "audio",
    });
    metrics::counter!(timeline_core::metrics::MEDIA_TOTAL, "kind" => kind, "status" => status.as_str())
        .increment(1);
}

/// After a step of a reprocessed (completed) file: once none of its steps lacks a record at
/// the current version, its reprocessing job counts it (as `failed` if a step failed).
async fn refreshed(
    ctx: &Context,
    task: MediaTask,
    failed: Option<ProcessingStatus>,
) -> Result<(), StepError> {
    let mut tx = ctx.db.begin().await?;
    let (unrecorded, fatal) =
        db::uploads::refresh_state(&mut tx, task.media_file_id, task.job_id).await?;
    if failed.is_some() || unrecorded == 0 {
        let status = if failed.is_some() || fatal > 0 {
            ProcessingStatus::Failed
        } else {
            // Every step stands again: an earlier reprocessing's failure note goes.
            db::pipeline::note_reprocessing(&mut tx, task.media_file_id, None).await?;
            ProcessingStatus::Completed
        };
        db::jobs::file_ended_as(&mut tx, task.media_file_id, Some(status)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Records how long a first attempt waited in its queue (`timeline_queue_wait_seconds`);
/// retries wait out their backoff on purpose and are not queueing delay.
fn record_wait(step: Step, task: &MediaTask, attempt: usize) {
    let Some(at) = task.enqueued_at_ms.filter(|_| attempt == 1) else {
        return;
    };
    let waited = (chrono::Utc::now().timestamp_millis() - at).max(0) as f64 / 1000.0;
    metrics::histogram!(timeline_core::metrics::QUEUE_WAIT, "queue" => step.queue(),
                        "priority" => timeline_core::jobs::lane_name(task.priority))
    .record(waited);
}

/// The apalis-facing wrapper of every step: instruments it, turns permanent errors and
/// exhausted retries into a recorded failure (so the file never stays `processing`), and hands
/// transient errors back to the queue for another attempt.
pub async fn run<F, Fut>(
    ctx: &Context,
    step: Step,
    task: MediaTask,
    (attempt, max_attempts): (usize, usize),
    body: F,
) -> Result<(), StepError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), StepError>>,
{
    let attempt = attempt.max(1);
    let span = tracing::info_span!("step", step = step.queue(), media.id = %task.media_file_id,
                                   job.id = %task.job_id, attempt);
    record_wait(step, &task, attempt);
    // Crash and lane tests hold bulk work here (a slot busy for as long as they need).
    #[cfg(feature = "test-hooks")]
    if timeline_core::jobs::Lane::of(task.priority) == timeline_core::jobs::Lane::Bulk {
        timeline_core::test_pause!("TIMELINE_TEST_PAUSE_BULK_STEP_SECS");
    }
    let started = std::time::Instant::now();
    let result = body().instrument(span.clone()).await;
    let _enter = span.enter();
    let took = |outcome: &'static str| {
        metrics::histogram!(timeline_core::metrics::STEP_DURATION, "step" => step.queue(), "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
    };
    let give_up = |reason: &str| format!("gave up after {attempt} attempts: {reason}");
    let reason = match result {
        Ok(()) if task.refresh => {
            took("ok");
            return refreshed(ctx, task, None).await;
        }
        Ok(()) => {
            took("ok");
            tracing::debug!(
                duration_ms = started.elapsed().as_millis() as u64,
                "step done"
            );
            return Ok(());
        }
        Err(StepError::Permanent(r)) => r,
        // The task's own limit, recorded when it was queued: the queue gives up on it then
        // too, so the step and the queue never disagree.
        Err(StepError::Transient(r)) if attempt >= max_attempts => give_up(&r),
        Err(e @ StepError::Transient(_)) => {
            took("retry");
            tracing::warn!(error = %e, "step failed; will retry");
            return Err(e);
        }
    };
    took("failed");
    tracing::warn!(error = %reason, "step failed");
    let reason = stored_reason(&reason);
    let media = {
        let mut tx = ctx.db.begin().await?;
        db::pipeline::load(&mut tx, task.media_file_id).await?
    };
    match media {
        Some(media) if task.refresh && media.processing_status == ProcessingStatus::Completed => {
            // The file keeps its earlier renditions; the reprocessing job counts a failure.
            let mut tx = ctx.db.begin().await?;
            let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
            db::pipeline::record_step(&mut tx, &media, step, Err(&reason), attempt).await?;
            let note = format!("reprocessing failed ({}): {reason}", step.queue());
            db::pipeline::note_reprocessing(&mut tx, media.id, Some(&note)).await?;
            tx.commit().await?;
            refreshed(ctx, task, Some(ProcessingStatus::Failed)).await
        }
        Some(media) if !media.processing_status.is_final() => {
            finish(
                ctx,
                File::Loaded(media),
                step,
                Err(&reason),
                i32::try_from(attempt).unwrap_or(i32::MAX),
            )
            .await
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_REASON_CHARS, stored_reason};

    #[test]
    fn stored_reasons_are_scrubbed_and_capped() {
        assert_eq!(
            stored_reason("unreadable file: file:/srv/media/u/m/original: End of file"),
            "unreadable file: […]: End of file"
        );
        let long = "é".repeat(5 * MAX_REASON_CHARS);
        let stored = stored_reason(&long);
        assert_eq!(stored.chars().count(), MAX_REASON_CHARS + 1);
        assert!(stored.ends_with('…'));
        assert_eq!(stored_reason("short"), "short");
    }
}
