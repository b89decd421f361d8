//! PNG, WebP, GIF and TIFF (and CMYK JPEG) through the `image` crate, with its decoder limits
//! set and the declared size checked before the pixels are decoded. Animated files render their
//! first frame only: the `ImageDecoder` of GIF/WebP/APNG never touches the later frames.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};

use super::{Decoded, Limits, RgbBuf, ThumbnailError, check_limits, color};
use crate::ImageFormat;

/// Decodes the whole image to 8-bit RGB (alpha flattened onto white).
pub(super) fn decode(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<Decoded, ThumbnailError> {
    let image_format = match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::WebP => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Heif => {
            return Err(ThumbnailError::Unsupported(
                "HEIF through the generic decoder".into(),
            ));
        }
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(map_error)?;
    let (width, height) = decoder.dimensions();
    let bytes_per_pixel = u64::from(decoder.color_type().bytes_per_pixel());
    check_limits(width, height, bytes_per_pixel, limits)?;
    // A broken profile must not fail the render: we then treat the pixels as sRGB.
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(map_error)?;
    Ok(Decoded {
        pixels: to_rgb(image),
        full_width: width,
        full_height: height,
        icc,
    })
}

fn decoder_limits(limits: &Limits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_dimension);
    l.max_image_height = Some(limits.max_dimension);
    l.max_alloc = Some(limits.max_alloc_bytes);
    l
}

fn to_rgb(image: DynamicImage) -> RgbBuf {
    let (width, height) = (image.width(), image.height());
    if image.color().has_alpha() {
        color::flatten_rgba(image.to_rgba8().as_raw(), width, height)
    } else {
        let data = match image {
            DynamicImage::ImageRgb8(buf) => buf.into_raw(),
            other => other.to_rgb8().into_raw(),
        };
        RgbBuf {
            data,
            width,
            height,
        }
    }
}

fn map_error(e: ImageError) -> ThumbnailError {
    match e {
        ImageError::Limits(l) => ThumbnailError::LimitExceeded(l.to_string()),
        ImageError::Unsupported(u) => ThumbnailError::Unsupported(u.to_string()),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ThumbnailError::Truncated(io.to_string())
        }
        ImageError::Decoding(d) => {
            let text = d.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("eof") || lower.contains("end of file") || lower.contains("truncat") {
                ThumbnailError::Truncated(text)
            } else {
                ThumbnailError::Corrupt(text)
            }
        }
        other => ThumbnailError::Corrupt(other.to_string()),
    }
}
