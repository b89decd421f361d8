//! Encoders for the renditions: JPEG through libjpeg-turbo, lossy WebP through libwebp.

use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

use super::{Rendition, RgbBuf, ThumbnailError};

/// libwebp refuses sides above 16383 px (very long panoramas); those thumbs fall back to JPEG.
const WEBP_MAX_SIDE: u32 = 16_383;

/// Baseline JPEG, 4:2:0, at `quality`.
pub(super) fn jpeg(img: &RgbBuf, quality: i32) -> Result<Rendition, ThumbnailError> {
    let fail = |e: turbojpeg::Error| ThumbnailError::Encode(format!("JPEG: {e}"));
    let mut compressor = Compressor::new().map_err(fail)?;
    compressor.set_quality(quality).map_err(fail)?;
    compressor.set_subsamp(Subsamp::Sub2x2).map_err(fail)?;
    let width = img.width as usize;
    let image = Image {
        pixels: img.data.as_slice(),
        width,
        pitch: width * 3,
        height: img.height as usize,
        format: PixelFormat::RGB,
    };
    let bytes = compressor.compress_to_vec(image).map_err(fail)?;
    Ok(Rendition {
        bytes,
        width: img.width,
        height: img.height,
        mime: "image/jpeg",
    })
}

/// Lossy WebP at `webp_quality`; JPEG at `jpeg_quality` when WebP cannot encode the image.
pub(super) fn webp_or_jpeg(
    img: &RgbBuf,
    webp_quality: f32,
    jpeg_quality: i32,
) -> Result<Rendition, ThumbnailError> {
    if img.width <= WEBP_MAX_SIDE && img.height <= WEBP_MAX_SIDE {
        let encoded = webp::Encoder::from_rgb(&img.data, img.width, img.height)
            .encode_simple(false, webp_quality);
        if let Ok(memory) = encoded {
            return Ok(Rendition {
                bytes: memory.to_vec(),
                width: img.width,
                height: img.height,
                mime: "image/webp",
            });
        }
    }
    jpeg(img, jpeg_quality)
}
