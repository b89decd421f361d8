//! The `thumbnail` step: `thumb` (shorter edge 250) and `preview` (1440), upright, stored under
//! deterministic keys (a rerun overwrites), plus the displayed width and height.

use timeline_core::db;
use timeline_core::jobs::{MediaTask, Step};
use timeline_media::ImageFormat;

use crate::context::Context;
use crate::step::{self, StepError};

/// Runs the step for one media file.
pub async fn run(ctx: &Context, task: MediaTask, attempt: i32) -> Result<(), StepError> {
    // The start and the renditions' keys, named before anything is written, in one
    // transaction (a render that then fails drops them with its failure: `step::finish`).
    let media = {
        let mut tx = ctx.pool.begin().await?;
        let Some(media) = step::begin_on(&mut tx, task).await? else {
            return Ok(());
        };
        step::name_renditions_on(&mut tx, &media, Step::Thumbnail).await?;
        tx.commit().await?;
        media
    };
    let format = ImageFormat::from_mime(&media.mime_type)
        .ok_or_else(|| StepError::Permanent(format!("unsupported: {}", media.mime_type)))?;
    let bytes = step::original(ctx, &media).await?;
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
    let stored = step::write_renditions(ctx, &media, thumbs).await?;
    // Crash tests kill the worker here: renditions stored, nothing recorded.
    timeline_core::test_pause!("TIMELINE_TEST_PAUSE_BEFORE_FINISH_SECS");
    let mut tx = ctx.pool.begin().await?;
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
