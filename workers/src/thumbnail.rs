//! The `thumbnail` step: `thumb` (shorter edge 250) and `preview` (1440), upright, stored under
//! deterministic keys (a rerun overwrites), plus the displayed width and height.

use timeline_core::db;
use timeline_core::jobs::{MediaTask, Step};
use timeline_media::ImageFormat;

use crate::context::Context;
use crate::step::{self, File, StepError};

/// Runs the step for one media file.
pub async fn run(ctx: &Context, task: MediaTask, attempt: i32) -> Result<(), StepError> {
    let Some((file, format)) = start(ctx, task).await? else {
        return Ok(());
    };
    let bytes = step::original(ctx, &file).await?;
    // In a child process: past the deadline the decode is killed, not abandoned.
    let bulk = timeline_core::jobs::Lane::of(task.priority) == timeline_core::jobs::Lane::Bulk;
    let thumbs = ctx
        .decoders
        .render(bytes, format, ctx.step_timeout, bulk)
        .await?;

    let dims = (
        i32::try_from(thumbs.display_width).unwrap_or(i32::MAX),
        i32::try_from(thumbs.display_height).unwrap_or(i32::MAX),
    );
    let at = (file.user_id(), file.id());
    let stored = step::write_renditions(ctx, at, thumbs).await?;
    // Crash tests kill the worker here: renditions stored, nothing recorded.
    timeline_core::test_pause!("TIMELINE_TEST_PAUSE_BEFORE_FINISH_SECS");
    let mut tx = ctx.db.begin().await?;
    let Some(media) = file.confirm_on(&mut tx).await? else {
        // Deleted or ended while it rendered: what was stored goes.
        drop(tx);
        return step::drop_renditions(ctx, at).await;
    };
    let keys = (stored.thumb_key.as_str(), stored.preview_key.as_str());
    db::pipeline::apply_thumbnails(&mut tx, media.id, dims, keys, stored.sizes).await?;
    db::objects::settle(
        &mut tx,
        &[stored.thumb_key.clone(), stored.preview_key.clone()],
    )
    .await?;
    db::pipeline::record_step(&mut tx, &media, Step::Thumbnail, Ok(()), attempt).await?;
    step::settle(&mut tx, &media).await?;
    step::commit_final(tx).await?;
    Ok(())
}

/// The file and its image format. A task the hash step queued knows both, and its keys were
/// named with it (`step::name_renditions_for`): no transaction. Any other task reads the file,
/// checks and marks it, and names the renditions' keys before anything is written, in one
/// transaction (a render that then fails drops them with its failure: `step::finish`).
async fn start(ctx: &Context, task: MediaTask) -> Result<Option<(File, ImageFormat)>, StepError> {
    if let Some((known, format)) = task.known.and_then(|k| Some((k, k.image?))) {
        return Ok(Some((File::Known(task, known), format)));
    }
    let mut tx = ctx.db.begin().await?;
    let Some(media) = step::begin_on(&mut tx, task).await? else {
        return Ok(None);
    };
    step::name_renditions_on(&mut tx, &media, Step::Thumbnail).await?;
    tx.commit().await?;
    let format = ImageFormat::from_mime(&media.mime_type)
        .ok_or_else(|| StepError::Permanent(format!("unsupported: {}", media.mime_type)))?;
    Ok(Some((File::Loaded(media), format)))
}
