//! Exact-size downscaling of RGB buffers with fast_image_resize (SIMD convolution).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{RgbBuf, ThumbnailError};

/// The resampling filter. Lanczos3 keeps thumbnails sharp; see the stages bench for its cost.
const FILTER: FilterType = FilterType::Lanczos3;

/// Resizes to exactly `width`×`height`, consuming the source (returned as is when the size
/// already matches, which saves a copy for small images).
pub(super) fn resize(src: RgbBuf, width: u32, height: u32) -> Result<RgbBuf, ThumbnailError> {
    if src.width == width && src.height == height {
        return Ok(src);
    }
    resize_ref(&src, width, height)
}

/// Resizes to exactly `width`×`height` into a new buffer.
pub(super) fn resize_ref(src: &RgbBuf, width: u32, height: u32) -> Result<RgbBuf, ThumbnailError> {
    if src.width == width && src.height == height {
        return Ok(src.clone());
    }
    let internal = |e: &dyn std::fmt::Display| ThumbnailError::Internal(format!("resize: {e}"));
    let source = ImageRef::new(src.width, src.height, &src.data, PixelType::U8x3)
        .map_err(|e| internal(&e))?;
    let mut target = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FILTER));
    Resizer::new()
        .resize(&source, &mut target, &options)
        .map_err(|e| internal(&e))?;
    Ok(RgbBuf {
        data: target.into_vec(),
        width,
        height,
    })
}
