//! JPEG decoding with libjpeg-turbo: header check against the limits first, then a DCT-scaled
//! decode that produces just enough pixels for the preview. CMYK/YCCK files go to the generic
//! decoder (libjpeg-turbo can only hand out raw CMYK).

use turbojpeg::{Colorspace, DecompressHeader, Decompressor, Image, PixelFormat, ScalingFactor};

use super::{Decoded, Limits, RgbBuf, ThumbnailError, check_limits, generic};
use crate::ImageFormat;

/// Progressive JPEGs with absurd scan counts are a known CPU DoS; real files have about 10.
const MAX_SCANS: u32 = 500;

/// libjpeg warnings after which the decoded pixels are still complete and trustworthy.
const BENIGN_WARNINGS: &[&str] = &[
    "extraneous bytes before marker",
    "unknown JFIF revision",
    "thumbnail image size does not match",
    "Invalid SOS parameters for sequential JPEG",
    "Inconsistent progression sequence",
];

/// Decodes at the smallest DCT scale whose shorter edge is still ≥ `min_short_edge` (or at full
/// size when the image is smaller than that).
pub(super) fn decode(
    bytes: &[u8],
    limits: &Limits,
    min_short_edge: u32,
) -> Result<Decoded, ThumbnailError> {
    let fail = |e: turbojpeg::Error| ThumbnailError::Corrupt(format!("JPEG: {}", strip_prefix(&e)));
    let mut decompressor =
        Decompressor::new().map_err(|e| ThumbnailError::Internal(e.to_string()))?;
    let header = decompressor.read_header(bytes).map_err(fail)?;
    let (width, height) = header_size(&header)?;
    check_limits(width, height, 0, limits)?;
    if matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK) {
        return generic::decode(bytes, ImageFormat::Jpeg, limits);
    }

    let factor = if header.is_lossless {
        ScalingFactor::ONE
    } else {
        scale_for(&header, min_short_edge)
    };
    decompressor.set_scaling_factor(factor).map_err(fail)?;
    decompressor.set_scan_limit(MAX_SCANS).map_err(fail)?;
    // Replicating chroma instead of libjpeg's triangle filter saves about a fifth of the
    // decode; the difference is far below what the following downscale keeps.
    decompressor.set_fast_upsample(true).map_err(fail)?;
    let scaled = header.scaled(factor);
    let (sw, sh) = header_size(&scaled)?;
    check_limits(sw, sh, 3, limits)?;

    let mut data = vec![0u8; scaled.width * scaled.height * 3];
    let output = Image {
        pixels: data.as_mut_slice(),
        width: scaled.width,
        pitch: scaled.width * 3,
        height: scaled.height,
        format: PixelFormat::RGB,
    };
    if let Err(e) = decompressor.decompress(bytes, output) {
        judge_decode_error(&e)?;
    }
    Ok(Decoded {
        pixels: RgbBuf {
            data,
            width: sw,
            height: sh,
        },
        full_width: width,
        full_height: height,
        icc: icc_profile(bytes),
    })
}

fn header_size(header: &DecompressHeader) -> Result<(u32, u32), ThumbnailError> {
    match (u32::try_from(header.width), u32::try_from(header.height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(ThumbnailError::Corrupt(format!(
            "JPEG declares an invalid size {}x{}",
            header.width, header.height
        ))),
    }
}

/// The smallest supported factor ≤ 1 whose scaled shorter edge is ≥ `min_short_edge`.
fn scale_for(header: &DecompressHeader, min_short_edge: u32) -> ScalingFactor {
    let wanted = (min_short_edge as usize).min(header.width.min(header.height));
    Decompressor::supported_scaling_factors()
        .into_iter()
        .filter(|f| f.num() <= f.denom())
        .filter(|f| {
            let s = header.scaled(*f);
            s.width.min(s.height) >= wanted
        })
        .min_by(|a, b| (a.num() * b.denom()).cmp(&(b.num() * a.denom())))
        .unwrap_or(ScalingFactor::ONE)
}

/// libjpeg reports warnings as errors through TurboJPEG, after finishing the decode. Accept the
/// harmless ones; a premature end means the bottom of the picture is grey filler.
fn judge_decode_error(e: &turbojpeg::Error) -> Result<(), ThumbnailError> {
    let message = strip_prefix(e);
    if message.contains("Premature end") || message.contains("premature end") {
        return Err(ThumbnailError::Truncated(format!("JPEG: {message}")));
    }
    if BENIGN_WARNINGS.iter().any(|w| message.contains(w)) {
        return Ok(());
    }
    Err(ThumbnailError::Corrupt(format!("JPEG: {message}")))
}

fn strip_prefix(e: &turbojpeg::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("TurboJPEG error: ")
        .map(str::to_owned)
        .unwrap_or(text)
}

/// Reassembles the ICC profile from its APP2 "ICC_PROFILE" chunks (before the first scan).
pub(super) fn icc_profile(bytes: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut pos = 2usize; // after SOI
    while let (Some(&0xFF), Some(&marker)) = (bytes.get(pos), bytes.get(pos + 1)) {
        match marker {
            0xFF => {
                pos += 1; // fill byte
                continue;
            }
            0xD9 | 0xDA => break, // EOI, SOS: no more metadata
            0x01 | 0xD0..=0xD7 => {
                pos += 2; // markers without a length
                continue;
            }
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([
            *bytes.get(pos + 2)?,
            *bytes.get(pos + 3)?,
        ]));
        let body = bytes.get(pos + 4..pos + 2 + len.max(2))?;
        if marker == 0xE2 && body.len() > TAG.len() + 2 && body.starts_with(TAG) {
            chunks.push((body[TAG.len()], &body[TAG.len() + 2..]));
        }
        pos += 2 + len;
    }
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|(seq, _)| *seq);
    Some(
        chunks
            .into_iter()
            .flat_map(|(_, data)| data.iter().copied())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icc_chunks_are_joined_in_order() {
        let mut jpeg = vec![0xFF, 0xD8];
        for (seq, payload) in [(2u8, &b"world"[..]), (1, b"hello ")] {
            let mut body = b"ICC_PROFILE\0".to_vec();
            body.extend([seq, 2]);
            body.extend(payload);
            let len = u16::try_from(body.len() + 2).unwrap();
            jpeg.extend([0xFF, 0xE2]);
            jpeg.extend(len.to_be_bytes());
            jpeg.extend(body);
        }
        jpeg.extend([0xFF, 0xDA, 0, 2, 0xFF, 0xD9]);
        assert_eq!(icc_profile(&jpeg).as_deref(), Some(&b"hello world"[..]));
    }

    #[test]
    fn icc_scan_survives_garbage() {
        assert_eq!(icc_profile(b""), None);
        assert_eq!(icc_profile(&[0xFF, 0xD8, 0xFF, 0xE2, 0xFF]), None);
        assert_eq!(icc_profile(&[0xFF, 0xD8, 0xFF, 0xE2, 0x00, 0x00]), None);
        assert_eq!(
            icc_profile(&[0xFF, 0xD8, 0xFF, 0xE2, 0xFF, 0xFF, 1, 2]),
            None
        );
    }
}
