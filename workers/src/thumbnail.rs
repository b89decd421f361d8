//! The `thumbnail` step: `thumb` (shorter edge 250) and `preview` (1440), upright, stored under
//! deterministic keys (a rerun overwrites), plus the displayed width and height.

use timeline::db;
use timeline::jobs::{MediaTask, Step};
use timeline_media::ImageFormat;
use timeline_media::thumbnail::{self, Thumbnails};

use crate::context::Context;
use crate::step::{self, StepError};

/// Runs the step for one media file.
pub async fn run(ctx: &Context, task: MediaTask, attempt: i32) -> Result<(), StepError> {
    let Some(media) = step::begin(ctx, task).await? else {
        return Ok(());
    };
    let format = ImageFormat::from_mime(&media.mime_type)
        .ok_or_else(|| StepError::Permanent(format!("unsupported: {}", media.mime_type)))?;
    let bytes = step::original(ctx, &media).await?;
    let limits = ctx.limits;
    let rendered = step::cpu(ctx.step_timeout, move || render(&bytes, format, &limits)).await?;
    let thumbs = rendered.map_err(|e| StepError::Permanent(e.to_string()))?;

    let dims = (
        i32::try_from(thumbs.display_width).unwrap_or(i32::MAX),
        i32::try_from(thumbs.display_height).unwrap_or(i32::MAX),
    );
    let stored = step::store_renditions(ctx, &media, thumbs).await?;
    let mut tx = ctx.pool.begin().await?;
    let keys = (stored.thumb_key.as_str(), stored.preview_key.as_str());
    db::pipeline::apply_thumbnails(&mut tx, media.id, dims, keys, stored.sizes).await?;
    db::pipeline::record_step(&mut tx, &media, Step::Thumbnail, Ok(()), attempt).await?;
    step::settle(&mut tx, media.id).await?;
    tx.commit().await?;
    Ok(())
}

/// Reads the EXIF orientation itself (a millisecond) rather than waiting for the EXIF step, so
/// the two steps run independently; HEIF pixels come back already rotated.
fn render(
    bytes: &[u8],
    format: ImageFormat,
    limits: &thumbnail::Limits,
) -> Result<Thumbnails, thumbnail::ThumbnailError> {
    let orientation = match format {
        ImageFormat::Heif => None,
        _ => timeline_media::exif::extract(bytes)
            .ok()
            .and_then(|f| f.orientation),
    };
    thumbnail::render(bytes, format, orientation, limits)
}
