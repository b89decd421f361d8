//! Exact-size downscaling of RGB buffers with fast_image_resize (SIMD convolution).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{RgbBuf, ThumbnailError};

/// The resampling filter for real downscales. Lanczos3 keeps thumbnails sharp and free of
/// aliasing; see the stages bench for its cost.
const FILTER: FilterType = FilterType::Lanczos3;

/// For mild downscales (the DCT-scaled decode is usually within a few percent of the preview
/// size: 2000x1500 → 1920x1440) there is nothing to alias, and bilinear costs about a third
/// of Lanczos3's seven-tap window.
const MILD_FILTER: FilterType = FilterType::Bilinear;
const MILD_SCALE: f64 = 0.75;

fn filter_for(src: &RgbBuf, width: u32, height: u32) -> FilterType {
    let scale = (f64::from(width) / f64::from(src.width.max(1)))
        .min(f64::from(height) / f64::from(src.height.max(1)));
    if scale >= MILD_SCALE {
        MILD_FILTER
    } else {
        FILTER
    }
}

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
    let filter = filter_for(src, width, height);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    Resizer::new()
        .resize(&source, &mut target, &options)
        .map_err(|e| internal(&e))?;
    Ok(RgbBuf {
        data: target.into_vec(),
        width,
        height,
    })
}
