//! The clip inside a Motion Photo (Google `MicroVideo`/`MotionPhoto` JPEG, Samsung HEIC `mpvd`)
//! becomes a media file of its own: its bytes are copied, streamed by range, from the still's
//! original to an object of its own; its row points at the still (`motion_of`) and joins the
//! still's jobs; its `hash` step is queued, and from there it is processed like any video.
//! Everything is idempotent: the clip's id is derived from the still's.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use timeline_core::db::{self, pipeline::EmbeddedClip};
use timeline_core::jobs::{self, MediaTask, Step};
use timeline_core::storage::{Rendition, Storage};
use timeline_media::video::motion::EmbeddedVideo;
use timeline_media::{MediaFormat, VideoFormat};
use uuid::Uuid;

use crate::context::Context;
use crate::step::StepError;

/// The clip's id: the same for every run over the same still, so a retried copy overwrites
/// its own object and the row insert finds its own row.
pub fn clip_id(still: Uuid) -> Uuid {
    let digest = Sha256::new()
        .chain_update(still.as_bytes())
        .chain_update(b"timeline/motion-clip")
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Copies the embedded clip out of the still's original into its own object.
pub async fn store(
    ctx: &Context,
    still: &db::pipeline::MediaState,
    video: &EmbeddedVideo,
) -> Result<EmbeddedClip, StepError> {
    let id = clip_id(still.id);
    let from = Storage::key(still.user_id, still.id, Rendition::Original);
    let to = Storage::key(still.user_id, id, Rendition::Original);
    let end = video
        .offset
        .checked_add(video.len)
        .ok_or_else(|| StepError::Permanent("embedded clip out of range".into()))?;
    // Named before it is written, as the still's exif step's; recording the clip settles it.
    let keys = [to.to_string()];
    timeline_core::inflight::name_for_step(&ctx.db, still.user_id, still.id, &keys, "exif").await?;
    let chunks = ctx.storage.stream_range(&from, video.offset..end).await?;
    let size = ctx.storage.put_stream(&to, chunks).await?;
    let stem = still
        .filename
        .rsplit_once('.')
        .map_or(still.filename.as_str(), |(stem, _)| stem);
    Ok(EmbeddedClip {
        id,
        still_id: still.id,
        user_id: still.user_id,
        filename: format!("{stem}.mp4"),
        file_path: to.to_string(),
        file_size: i64::try_from(size).unwrap_or(i64::MAX),
        mime_type: MediaFormat::Video(VideoFormat::Mp4).mime(),
    })
}

/// Records the clip and queues its first step, on the caller's transaction (once: a rerun
/// finds the row and queues nothing).
pub async fn record_in(
    conn: &mut PgConnection,
    clip: &EmbeddedClip,
    job_id: Uuid,
    priority: u32,
) -> Result<(), StepError> {
    db::objects::settle(conn, std::slice::from_ref(&clip.file_path)).await?;
    if db::pipeline::insert_embedded_clip(conn, clip).await? {
        // The clip runs in its still's lane.
        let task = [MediaTask::new(clip.id, job_id, priority)];
        jobs::enqueue(conn, Step::Hash, &task).await?;
        tracing::info!(clip.id = %clip.id, "Motion Photo clip extracted");
    }
    Ok(())
}

/// [`record_in`] in a transaction of its own.
pub async fn record(
    ctx: &Context,
    clip: &EmbeddedClip,
    job_id: Uuid,
    priority: u32,
) -> Result<(), StepError> {
    let mut tx = ctx.db.begin().await?;
    record_in(&mut tx, clip, job_id, priority).await?;
    tx.commit().await?;
    Ok(())
}
