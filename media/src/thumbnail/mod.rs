//! Preview and thumbnail rendering: decode (cheaply, at reduced size where the codec allows),
//! resize, convert to sRGB, make upright, encode.
//!
//! Pipeline, designed for throughput on 12 MP camera JPEGs: the JPEG decoder scales by a DCT
//! factor so it never produces much more than the 1440-px preview needs; the exact preview size
//! comes from one convolution resize; the 250-px thumbnail is made from the preview, never from
//! the full image; colour conversion and orientation are applied to the small buffers only.
//! Decoders are fed our [`Limits`] before they allocate, so decompression bombs are refused from
//! their headers.

mod color;
mod encode;
mod generic;
mod heif;
mod jpeg;
mod orient;
mod resize;

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::ImageFormat;

/// Shorter edge of the `thumb` rendition, in pixels.
pub const THUMB_SHORT_EDGE: u32 = 250;
/// Shorter edge of the `preview` rendition, in pixels.
pub const PREVIEW_SHORT_EDGE: u32 = 1440;

/// JPEG quality of the preview (libjpeg scale).
const PREVIEW_JPEG_QUALITY: i32 = 85;
/// WebP quality of the thumbnail (libwebp scale).
const THUMB_WEBP_QUALITY: f32 = 80.0;

/// Resource limits checked against the image's declared size before any pixel is decoded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted `width × height`.
    pub max_pixels: u64,
    /// Largest accepted width or height.
    pub max_dimension: u32,
    /// Largest decode buffer we may allocate, in bytes.
    pub max_alloc_bytes: u64,
}

impl Default for Limits {
    /// 100 megapixels, 65 000 px per side, 1 GiB of decode buffers.
    fn default() -> Self {
        Self {
            max_pixels: 100_000_000,
            max_dimension: 65_000,
            max_alloc_bytes: 1 << 30,
        }
    }
}

/// One encoded image.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Width in pixels (upright).
    pub width: u32,
    /// Height in pixels (upright).
    pub height: u32,
    /// `image/jpeg` or `image/webp`.
    pub mime: &'static str,
}

/// The renditions of one image, plus its full size as displayed.
#[derive(Debug, Clone)]
pub struct Thumbnails {
    /// Width of the full image as displayed (after orientation), from the decoded pixels.
    pub display_width: u32,
    /// Height of the full image as displayed (after orientation), from the decoded pixels.
    pub display_height: u32,
    /// Shorter edge `min(1440, shorter edge of the image)`, JPEG.
    pub preview: Rendition,
    /// Shorter edge `min(250, shorter edge of the preview)`, WebP (JPEG if WebP cannot encode it).
    pub thumb: Rendition,
}

/// Why an image could not be rendered. Messages are meant for users' failure lists.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// More pixels than [`Limits::max_pixels`] (decompression-bomb guard).
    #[error("image too large: {width}x{height} pixels exceeds the {limit}-pixel limit")]
    TooManyPixels {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit.
        limit: u64,
    },
    /// A side longer than [`Limits::max_dimension`].
    #[error("image too large: {width}x{height} pixels exceeds the {limit}-pixel side limit")]
    TooWide {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit.
        limit: u32,
    },
    /// A decoder limit (memory or size) was hit while decoding.
    #[error("image too large: {0}")]
    LimitExceeded(String),
    /// The data is not a valid image of the announced format.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// The data ends before the image does.
    #[error("truncated image: {0}")]
    Truncated(String),
    /// A valid image using a feature we cannot decode.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An encoder failed on pixels we produced.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// A bug (a caught panic); the file may be fine.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Decoded pixels handed from a decoder to the shared pipeline.
#[derive(Debug)]
struct Decoded {
    /// 8-bit RGB, alpha already flattened onto white; possibly smaller than the full image.
    pixels: RgbBuf,
    /// Stored (pre-orientation) size of the full image.
    full_width: u32,
    /// Stored (pre-orientation) size of the full image.
    full_height: u32,
    /// Embedded ICC profile, if any.
    icc: Option<Vec<u8>>,
}

/// A tightly packed 8-bit RGB buffer.
#[derive(Debug, Clone)]
struct RgbBuf {
    data: Vec<u8>,
    width: u32,
    height: u32,
}

/// Renders the preview and the thumbnail of an image.
///
/// `orientation` is the EXIF Orientation (1..=8) to apply; anything else means 1. It is IGNORED
/// for [`ImageFormat::Heif`], whose decoder already applies the container's rotation/mirroring.
pub fn render(
    bytes: &[u8],
    format: ImageFormat,
    orientation: Option<u16>,
    limits: &Limits,
) -> Result<Thumbnails, ThumbnailError> {
    // Last guard only: known panics are fixed at the source, but a hostile file must never take
    // a worker thread down.
    catch_unwind(AssertUnwindSafe(|| {
        render_inner(bytes, format, orientation, limits)
    }))
    .map_err(|panic| ThumbnailError::Internal(panic_message(&panic)))?
}

fn render_inner(
    bytes: &[u8],
    format: ImageFormat,
    orientation: Option<u16>,
    limits: &Limits,
) -> Result<Thumbnails, ThumbnailError> {
    if bytes.is_empty() {
        return Err(ThumbnailError::Corrupt("empty file".into()));
    }
    let (decoded, orientation) = match format {
        ImageFormat::Jpeg => (
            jpeg::decode(bytes, limits, PREVIEW_SHORT_EDGE)?,
            orientation,
        ),
        ImageFormat::Heif => (heif::decode(bytes, limits)?, None),
        other => (generic::decode(bytes, other, limits)?, orientation),
    };
    let orientation = orientation.filter(|o| (1..=8).contains(o)).unwrap_or(1);
    let Decoded {
        pixels,
        full_width,
        full_height,
        icc,
    } = decoded;

    let (pw, ph) = target_size(full_width, full_height, PREVIEW_SHORT_EDGE);
    let mut preview = resize::resize(pixels, pw, ph)?;
    color::to_srgb(&mut preview, icc.as_deref());
    let (tw, th) = target_size(pw, ph, THUMB_SHORT_EDGE);
    let thumb = resize::resize_ref(&preview, tw, th)?;

    let preview = orient::apply(preview, orientation);
    let thumb = orient::apply(thumb, orientation);
    let (display_width, display_height) = if orient::swaps_axes(orientation) {
        (full_height, full_width)
    } else {
        (full_width, full_height)
    };
    Ok(Thumbnails {
        display_width,
        display_height,
        preview: encode::jpeg(&preview, PREVIEW_JPEG_QUALITY)?,
        thumb: encode::webp_or_jpeg(&thumb, THUMB_WEBP_QUALITY, PREVIEW_JPEG_QUALITY)?,
    })
}

/// Renders the preview and thumbnail of an already upright 8-bit RGB frame (a video's poster
/// frame or an audio waveform, made by ffmpeg): the same sizes, encoders and rules as photos.
/// `display` is the full picture's displayed size, which the frame may be a scaled copy of.
pub fn render_frame(
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    display: (u32, u32),
) -> Result<Thumbnails, ThumbnailError> {
    let expected = u64::from(width) * u64::from(height) * 3;
    if width == 0 || height == 0 || rgb.len() as u64 != expected {
        return Err(ThumbnailError::Corrupt(format!(
            "frame of {width}x{height} with {} bytes of pixels",
            rgb.len()
        )));
    }
    let frame = RgbBuf {
        data: rgb,
        width,
        height,
    };
    let (pw, ph) = target_size(width, height, PREVIEW_SHORT_EDGE);
    let preview = resize::resize(frame, pw, ph)?;
    let (tw, th) = target_size(pw, ph, THUMB_SHORT_EDGE);
    let thumb = resize::resize_ref(&preview, tw, th)?;
    Ok(Thumbnails {
        display_width: display.0,
        display_height: display.1,
        preview: encode::jpeg(&preview, PREVIEW_JPEG_QUALITY)?,
        thumb: encode::webp_or_jpeg(&thumb, THUMB_WEBP_QUALITY, PREVIEW_JPEG_QUALITY)?,
    })
}

/// Size with the shorter edge scaled to `short_edge`, aspect ratio kept, never upscaled.
pub fn target_size(width: u32, height: u32, short_edge: u32) -> (u32, u32) {
    let short = width.min(height);
    if short <= short_edge || short == 0 {
        return (width, height);
    }
    let scale = |side: u32| -> u32 {
        let scaled =
            (u64::from(side) * u64::from(short_edge) + u64::from(short) / 2) / u64::from(short);
        u32::try_from(scaled).unwrap_or(u32::MAX).max(1)
    };
    if width <= height {
        (short_edge, scale(height))
    } else {
        (scale(width), short_edge)
    }
}

/// Refuses a declared size over the pixel, side or allocation limits.
fn check_limits(
    width: u32,
    height: u32,
    bytes_per_pixel: u64,
    limits: &Limits,
) -> Result<(), ThumbnailError> {
    let (w, h) = (u64::from(width), u64::from(height));
    if width > limits.max_dimension || height > limits.max_dimension {
        return Err(ThumbnailError::TooWide {
            width: w,
            height: h,
            limit: limits.max_dimension,
        });
    }
    if w * h > limits.max_pixels {
        return Err(ThumbnailError::TooManyPixels {
            width: w,
            height: h,
            limit: limits.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(ThumbnailError::Corrupt(format!(
            "image declares an empty size {width}x{height}"
        )));
    }
    let needed = w * h * bytes_per_pixel;
    if needed > limits.max_alloc_bytes {
        return Err(ThumbnailError::LimitExceeded(format!(
            "decoding {width}x{height} needs {needed} bytes, over the {}-byte memory limit",
            limits.max_alloc_bytes
        )));
    }
    Ok(())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map(|m| format!("decoder panicked: {m}"))
        .unwrap_or_else(|| "decoder panicked".to_owned())
}

#[cfg(test)]
mod tests;
