//! Motion Photos: where the short video embedded in a still lives, so it can be served or probed
//! as a clip of its own.
//!
//! - HEIF stills (Samsung): the MP4 is the payload of a top-level `mpvd` box.
//! - JPEG stills (Google, Samsung): the XMP (`Camera:MotionPhoto`, `Container:Directory`, or the
//!   legacy `MicroVideoOffset`) says how many bytes at the end of the file are the video.
//! - Samsung JPEGs without that XMP: the video is the `MotionPhoto_Data` entry of the "SEF"
//!   trailer at the end of the file.
//!
//! Metadata can lie (editors keep the XMP but drop the video), so every candidate is checked to
//! lie inside the file and to start with an ISO-BMFF `ftyp` box; a wrong claim is "no video",
//! not an error.

use std::io::{Read, Seek};

use super::atoms::be_u32;
use super::bmff::{check_fits, parse_header, read_at, read_header};
use super::{ContainerError, xmp};

/// XMP signature of a JPEG APP1 segment.
const XMP_SIGNATURE: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
/// Bytes of JPEG markers and XMP we read at most while looking for the XMP packet.
const MAX_JPEG_SCAN_BYTES: u64 = 1024 * 1024;
/// JPEG segments visited at most before the image data.
const MAX_JPEG_SEGMENTS: usize = 4096;
/// Top-level boxes of a HEIF still visited at most.
const MAX_HEIF_BOXES: usize = 10_000;
/// Largest Samsung trailer directory we read, and most entries we look at in it.
const MAX_SEF_DIR_BYTES: u64 = 64 * 1024;
const MAX_SEF_ENTRIES: usize = 512;
/// HEIF/AVIF brands: a file whose `ftyp` names one of these is a still, not a movie.
const HEIF_BRANDS: &[&[u8; 4]] = &[
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"mif2",
    b"msf1", b"avif", b"avis",
];

/// The video inside a Motion Photo still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedVideo {
    /// Where the MP4 starts in the still's file.
    pub offset: u64,
    /// Length of the MP4 in bytes.
    pub len: u64,
    /// The video frame that matches the still, in microseconds, when the XMP says.
    pub presentation_timestamp_us: Option<i64>,
}

/// Finds the video embedded in a JPEG or HEIF still of `len` bytes. `Ok(None)` for stills
/// without one, for other formats, and when the metadata points at something that is not an
/// MP4. Errors are I/O failures and a Samsung `mpvd` box that runs past the end of the file.
pub fn find<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<EmbeddedVideo>, ContainerError> {
    let head = read_at(r, 0, 12.min(len))?;
    if head.starts_with(&[0xFF, 0xD8]) {
        return jpeg(r, len);
    }
    if head.get(4..8) == Some(b"ftyp") {
        return heif(r, len);
    }
    Ok(None)
}

fn heif<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<EmbeddedVideo>, ContainerError> {
    let ftyp = match read_header(r, 0, len) {
        Ok(header) => header,
        Err(ContainerError::Io(e)) => return Err(ContainerError::Io(e)),
        Err(_) => return Ok(None),
    };
    // A real `ftyp` lists a few brands; a huge one is not worth reading.
    let brands = read_at(r, ftyp.payload_offset(), ftyp.payload_len().min(1024))?;
    let is_heif = brands
        .chunks_exact(4)
        .enumerate()
        .any(|(i, brand)| i != 1 && HEIF_BRANDS.iter().any(|b| b.as_slice() == brand));
    if !is_heif {
        return Ok(None);
    }
    let mut pos = 0u64;
    for _ in 0..MAX_HEIF_BOXES {
        if pos >= len {
            break;
        }
        let buf = read_at(r, pos, (len - pos).min(32))?;
        let Ok(header) = parse_header(&buf, pos, len - pos) else {
            break;
        };
        if &header.fourcc == b"mpvd" {
            check_fits(&header, len).map_err(|e| match e {
                ContainerError::Truncated(m) => {
                    ContainerError::Truncated(format!("motion photo video cut off: {m}"))
                }
                other => other,
            })?;
            let offset = header.payload_offset();
            return verified(r, len, offset, header.payload_len(), None);
        }
        if check_fits(&header, len).is_err() {
            break;
        }
        pos = header.end();
    }
    Ok(None)
}

fn jpeg<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<EmbeddedVideo>, ContainerError> {
    if let Some(packet) = jpeg_xmp(r, len)? {
        let motion = xmp::motion(&String::from_utf8_lossy(&packet));
        for tail in &motion.candidates {
            let Some(offset) = len.checked_sub(tail.from_end) else {
                continue;
            };
            let found = verified(r, len, offset, tail.len, motion.presentation_timestamp_us)?;
            if found.is_some() {
                return Ok(found);
            }
        }
    }
    match samsung_trailer(r, len)? {
        Some((offset, video_len)) => verified(r, len, offset, video_len, None),
        None => Ok(None),
    }
}

/// The first XMP packet among the JPEG's segments before the image data (SOS).
fn jpeg_xmp<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<Vec<u8>>, ContainerError> {
    let mut pos = 2u64;
    let mut budget = MAX_JPEG_SCAN_BYTES;
    for _ in 0..MAX_JPEG_SEGMENTS {
        let Some(spent) = budget.checked_sub(4) else {
            break;
        };
        budget = spent;
        let marker = read_at(r, pos, 4)?;
        match marker.as_slice() {
            // Fill bytes before a marker.
            [0xFF, 0xFF, ..] => pos += 1,
            // Markers without a length: TEM, RSTn, a stray SOI.
            [0xFF, 0x01 | 0xD0..=0xD8, ..] => pos += 2,
            // Image data or end of image: the header segments are over.
            [0xFF, 0xDA | 0xD9, ..] => break,
            [0xFF, kind, hi, lo] => {
                let seg_len = u64::from(u16::from_be_bytes([*hi, *lo]));
                if seg_len < 2 {
                    break;
                }
                let payload_len = seg_len - 2;
                if *kind == 0xE1
                    && payload_len > XMP_SIGNATURE.len() as u64
                    && payload_len <= budget
                {
                    let payload = read_at(r, pos + 4, payload_len)?;
                    budget -= payload_len;
                    if let Some(packet) = payload.strip_prefix(XMP_SIGNATURE) {
                        return Ok(Some(packet.to_vec()));
                    }
                }
                pos += 2 + seg_len;
            }
            _ => break,
        }
        if pos >= len {
            break;
        }
    }
    Ok(None)
}

/// The `MotionPhoto_Data` entry of a Samsung "SEF" trailer: the file ends with a directory
/// ("SEFH", version, count, 12-byte entries) followed by its length and "SEFT". Each entry gives
/// a block's distance back from the directory and its size; a block is a 4-byte tag, a name
/// length, the name, then the data.
fn samsung_trailer<R: Read + Seek>(
    r: &mut R,
    len: u64,
) -> Result<Option<(u64, u64)>, ContainerError> {
    let Some(tail_at) = len.checked_sub(8) else {
        return Ok(None);
    };
    let tail = read_at(r, tail_at, 8)?;
    if tail.get(4..8) != Some(b"SEFT") {
        return Ok(None);
    }
    let dir_len = u64::from(le_u32(&tail, 0).unwrap_or(0));
    if !(12..=MAX_SEF_DIR_BYTES).contains(&dir_len) || dir_len > tail_at {
        return Ok(None);
    }
    let dir_pos = tail_at - dir_len;
    let dir = read_at(r, dir_pos, dir_len)?;
    if !dir.starts_with(b"SEFH") {
        return Ok(None);
    }
    let count = le_u32(&dir, 8)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    for i in 0..count.min(MAX_SEF_ENTRIES) {
        let entry = 12 + 12 * i;
        let (Some(back), Some(size)) = (le_u32(&dir, entry + 4), le_u32(&dir, entry + 8)) else {
            break;
        };
        let (back, size) = (u64::from(back), u64::from(size));
        if back > dir_pos || size > back || size < 8 {
            continue;
        }
        let block_pos = dir_pos - back;
        let head = read_at(r, block_pos, 8 + 32)?;
        let name_len = u64::from(le_u32(&head, 4).unwrap_or(u32::MAX));
        if name_len > 32 || 8 + name_len > size {
            continue;
        }
        if head.get(8..8 + name_len as usize) == Some(b"MotionPhoto_Data".as_slice()) {
            return Ok(Some((block_pos + 8 + name_len, size - 8 - name_len)));
        }
    }
    Ok(None)
}

/// `Some` when `len` bytes at `offset` fit in the file and start with an ISO-BMFF `ftyp` box.
fn verified<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
    offset: u64,
    len: u64,
    presentation_timestamp_us: Option<i64>,
) -> Result<Option<EmbeddedVideo>, ContainerError> {
    let fits = offset.checked_add(len).is_some_and(|end| end <= file_len);
    if !fits || len < 16 {
        return Ok(None);
    }
    let head = read_at(r, offset, 8)?;
    let ftyp_len = be_u32(&head, 0).map_or(0, u64::from);
    let is_mp4 = head.get(4..8) == Some(b"ftyp") && (8..=len).contains(&ftyp_len);
    Ok(is_mp4.then_some(EmbeddedVideo {
        offset,
        len,
        presentation_timestamp_us,
    }))
}

fn le_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
