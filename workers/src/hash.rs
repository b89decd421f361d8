//! The `hash` step: SHA-256 of the stored bytes, computed as they stream from the store (a
//! 10 GiB video costs a few chunks of memory) → `file_hash`; per-user deduplication; then the
//! next steps of the file's kind are enqueued in the same transaction that records the hash.

use timeline_core::db;
use timeline_core::jobs::{self, MediaTask, Step};
use timeline_core::storage::{Rendition, Storage};
use timeline_media::Kind;
use timeline_media::hash::StreamHasher;

use crate::context::Context;
use crate::step::{self, StepError};

/// Runs the step for one media file.
pub async fn run(ctx: &Context, task: MediaTask, attempt: i32) -> Result<(), StepError> {
    // The checks, the start and (when the upload hashed the bytes as they arrived, so that
    // nothing is read back from the store) the result: one transaction.
    let mut tx = ctx.db.begin().await?;
    let Some(m) = db::pipeline::load(&mut tx, task.media_file_id).await? else {
        return Ok(());
    };
    if m.duplicate_of.is_some() {
        // A redelivered task of a file that already ended as a duplicate: make sure its copy
        // is gone (the delete after commit may not have happened) and stop.
        drop(tx);
        ctx.storage
            .delete(&Storage::key(m.user_id, m.id, Rendition::Original))
            .await?;
        return Ok(());
    }
    if db::pipeline::step_done(&mut tx, task.media_file_id, Step::Hash).await? {
        // The follow-up tasks were enqueued with the record: nothing left to do.
        return Ok(());
    }
    let Some(media) = step::start_on(&mut tx, task, m).await? else {
        return Ok(());
    };
    let kind = Kind::of_mime(&media.mime_type)
        .ok_or_else(|| StepError::Permanent(format!("unsupported: {}", media.mime_type)))?;
    let hash = match media.upload_sha256.clone() {
        Some(hash) => hash,
        None => {
            // Reading a whole original takes a while: the start commits first.
            tx.commit().await?;
            let hash = stream_hash(ctx, &media).await?;
            tx = ctx.db.begin().await?;
            hash
        }
    };
    // In a savepoint: a duplicate's unique violation undoes the hash alone.
    let mut hashed = sqlx::Acquire::begin(&mut *tx).await?;
    match db::pipeline::set_hash(&mut hashed, media.id, &hash).await {
        Ok(()) => {
            hashed.commit().await?;
            db::pipeline::record_step(&mut tx, &media, Step::Hash, Ok(()), attempt).await?;
            // The next steps know the file from here (`jobs::Known`): they skip a first
            // transaction each, and the thumbnail's keys are named for its task right here.
            let known = jobs::Known::new(media.user_id, &media.mime_type, media.sidecar);
            let next = [MediaTask {
                known: Some(known),
                ..task
            }];
            for &step in Step::after_hash(kind) {
                let ids = jobs::enqueue(&mut tx, step, &next).await?;
                if let (Step::Thumbnail, Some(_), [id]) = (step, known.image, ids.as_slice()) {
                    step::name_renditions_for(&mut tx, &media, id).await?;
                }
            }
            step::commit_final(tx).await?;
            Ok(())
        }
        Err(e) if db::is_unique_violation(&e, "idx_media_files_user_hash") => {
            hashed.rollback().await?;
            tx.commit().await?;
            mark_duplicate(ctx, &media, &hash, attempt).await
        }
        Err(e) => Err(e.into()),
    }
}

/// SHA-256 of the original, never holding it whole: read in place in 1 MiB blocks on the
/// blocking pool for a `file://` store (the photo fast path: no per-chunk task hops), else as it
/// streams from the store. The deadline grows with the size (1 s per 16 MiB on top of the
/// step's).
async fn stream_hash(ctx: &Context, media: &db::pipeline::MediaState) -> Result<String, StepError> {
    use futures::StreamExt;
    let key = Storage::key(media.user_id, media.id, Rendition::Original);
    if let Some(path) = ctx.storage.local_path(&key) {
        let size = std::fs::metadata(&path)
            .map_err(|_| StepError::Permanent("the original is missing from storage".into()))?
            .len();
        let deadline = ctx.step_timeout + std::time::Duration::from_secs(size >> 24);
        let hashed = step::cpu(deadline, move || hash_file(&path)).await?;
        return hashed.map_err(|e| StepError::Transient(format!("reading the original: {e}")));
    }
    // No deadline over the whole read: a slow link is not a failure. The store's client fails
    // a read that stalls (no byte for TIMELINE_S3_STALL_SECS) and resumes a broken one.
    let (_, mut chunks) = ctx.storage.stream(&key).await?;
    let mut hasher = StreamHasher::new();
    while let Some(chunk) = chunks.next().await {
        hasher.update(&chunk?);
    }
    Ok(hasher.finish())
}

/// Hashes a local file in 1 MiB blocks.
fn hash_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = StreamHasher::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// The user already has these bytes: end as a duplicate of that file and drop the copy.
async fn mark_duplicate(
    ctx: &Context,
    media: &db::pipeline::MediaState,
    hash: &str,
    attempt: i32,
) -> Result<(), StepError> {
    let mut tx = ctx.db.begin().await?;
    let Some(original) = db::media::find_by_hash(&mut *tx, media.user_id, hash).await? else {
        // The original vanished between the two statements (deleted): try again.
        return Err(StepError::Transient(
            "original of a duplicate disappeared".into(),
        ));
    };
    db::pipeline::mark_duplicate(&mut tx, media.id, original, hash).await?;
    db::pipeline::record_step(&mut tx, media, Step::Hash, Ok(()), attempt).await?;
    db::jobs::file_ended(&mut tx, media.id).await?;
    // The copy goes with the commit: named as to delete, so the reconciler finishes a delete
    // that the worker did not live to make.
    let key = Storage::key(media.user_id, media.id, Rendition::Original).to_string();
    let owner = db::objects::Owner::Nobody;
    db::objects::name_objects(
        &mut tx,
        media.user_id,
        media.id,
        std::slice::from_ref(&key),
        owner,
    )
    .await?;
    tx.commit().await?;
    step::media_ended(
        &media.mime_type,
        timeline_core::models::ProcessingStatus::Duplicate,
    );
    tracing::info!(duplicate_of = %original, "duplicate of an earlier upload");
    timeline_core::inflight::clean(&ctx.db, &ctx.storage, &key)
        .await
        .map_err(|e| StepError::Transient(e.to_string()))?;
    Ok(())
}
