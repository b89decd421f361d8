//! Encoders for the renditions: JPEG through libjpeg-turbo, lossy WebP through libwebp.

use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

use super::{Rendition, RgbBuf, ThumbnailError};

/// libwebp refuses sides above 16383 px (very long panoramas); those thumbs fall back to JPEG.
const WEBP_MAX_SIDE: u32 = 16_383;
/// libwebp's speed/size trade-off (0 fastest .. 6 smallest).
const WEBP_METHOD: i32 = 2;

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
        let encoded = webp::WebPConfig::new()
            .map_err(|()| ThumbnailError::Encode("WebP: no config".into()))
            .and_then(|mut config| {
                config.quality = webp_quality;
                // Method 2 of 0..=6: at thumbnail sizes it encodes in about half the time of the
                // default 4 for a file a few percent larger.
                config.method = WEBP_METHOD;
                webp::Encoder::from_rgb(&img.data, img.width, img.height)
                    .encode_advanced(&config)
                    .map_err(|e| ThumbnailError::Encode(format!("WebP: {e:?}")))
            });
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
