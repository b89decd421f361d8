//! HEIF/HEIC decoding with libheif (embedded build, HEVC through the system libde265).
//!
//! libheif applies the container's rotation, mirroring and crop (irot/imir/clap) itself, so the
//! pixels come back upright and EXIF Orientation must NOT be applied again.

use std::sync::LazyLock;

use libheif_rs::{
    ColorProfile, ColorSpace, HeifContext, HeifError, HeifErrorCode, HeifErrorSubCode, LibHeif,
    RgbChroma, color_profile_types,
};

use super::{Decoded, Limits, RgbBuf, ThumbnailError, check_limits, color};

/// `heif_init` once per process instead of once per image.
static LIB_HEIF: LazyLock<LibHeif> = LazyLock::new(LibHeif::new);

/// Decodes the primary image to 8-bit RGB, upright, alpha flattened onto white.
pub(super) fn decode(bytes: &[u8], limits: &Limits) -> Result<Decoded, ThumbnailError> {
    let mut context = HeifContext::new().map_err(map_error)?;
    let mut security = context.security_limits();
    security.set_max_image_size_pixels(limits.max_pixels);
    security.set_max_total_memory(limits.max_alloc_bytes);
    context.set_security_limits(&security).map_err(map_error)?;
    context.read_bytes(bytes).map_err(map_error)?;
    let handle = context.primary_image_handle().map_err(map_error)?;
    let (width, height) = (handle.width(), handle.height());
    let alpha = handle.has_alpha_channel();
    check_limits(width, height, if alpha { 4 } else { 3 }, limits)?;

    let chroma = if alpha {
        RgbChroma::Rgba
    } else {
        RgbChroma::Rgb
    };
    let image = LIB_HEIF
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(map_error)?;
    let planes = image.planes();
    let plane = planes.interleaved.ok_or_else(|| {
        ThumbnailError::Unsupported("HEIF decoder returned no interleaved RGB plane".into())
    })?;
    let channels: usize = if alpha { 4 } else { 3 };
    if usize::from(plane.storage_bits_per_pixel) != channels * 8 {
        return Err(ThumbnailError::Unsupported(format!(
            "HEIF decoded to {} bits per pixel",
            plane.storage_bits_per_pixel
        )));
    }
    let packed = pack_rows(
        plane.data,
        plane.stride,
        plane.width,
        plane.height,
        channels,
    )?;
    let pixels = if alpha {
        color::flatten_rgba(&packed, plane.width, plane.height)
    } else {
        RgbBuf {
            data: packed,
            width: plane.width,
            height: plane.height,
        }
    };
    let icc = handle
        .color_profile_raw()
        .filter(|p| {
            matches!(
                p.profile_type(),
                color_profile_types::PROF | color_profile_types::R_ICC
            )
        })
        .map(|p| p.data);
    Ok(Decoded {
        full_width: pixels.width,
        full_height: pixels.height,
        pixels,
        icc,
    })
}

/// Copies `height` rows of `width` pixels out of a buffer whose rows are `stride` bytes apart.
fn pack_rows(
    data: &[u8],
    stride: usize,
    width: u32,
    height: u32,
    channels: usize,
) -> Result<Vec<u8>, ThumbnailError> {
    let row = width as usize * channels;
    let rows = height as usize;
    if stride < row || data.len() < stride * rows.saturating_sub(1) + row {
        return Err(ThumbnailError::Internal(
            "HEIF plane smaller than its declared size".into(),
        ));
    }
    if stride == row {
        return Ok(data[..row * rows].to_vec());
    }
    let mut packed = Vec::with_capacity(row * rows);
    for y in 0..rows {
        packed.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    Ok(packed)
}

fn map_error(e: HeifError) -> ThumbnailError {
    let text = format!("HEIF: {}", e.message);
    match e.code {
        HeifErrorCode::UnsupportedFeature | HeifErrorCode::UnsupportedFileType => {
            ThumbnailError::Unsupported(text)
        }
        HeifErrorCode::MemoryAllocationError => ThumbnailError::LimitExceeded(text),
        HeifErrorCode::InvalidInput if matches!(e.sub_code, HeifErrorSubCode::EndOfData) => {
            ThumbnailError::Truncated(text)
        }
        _ => ThumbnailError::Corrupt(format!("{text} ({:?}/{:?})", e.code, e.sub_code)),
    }
}
