//! EXIF extraction: the facts timeline needs from a photo's EXIF block (capture time and
//! offset, camera, orientation, GPS fix, Apple's Live Photo ContentIdentifier) plus the remaining
//! tags as a bounded, sanitised JSON object. Reads JPEG, PNG, WebP, TIFF and HEIF containers
//! through kamadak-exif, plus the PNG text chunks it does not know ([`png_text`]); when EXIF has
//! no capture date, the XMP packet's is used ([`xmp_date`]). Never decodes pixels.

mod apple;
mod gps;
mod metadata;
mod png_text;
mod xmp_date;
mod xmp_packet;

use std::borrow::Cow;
use std::io::Cursor;

use chrono::{FixedOffset, NaiveDateTime, Timelike};
use exif::{Exif, Field, In, Tag, Value};

pub use gps::GpsFix;

/// Longest camera make/model we keep, in characters.
const MAX_CAMERA_CHARS: usize = 200;

/// What we learned from a photo's EXIF block. Every field is optional: absent, blank or
/// nonsensical values are `None`, never an error.
#[derive(Debug, Clone, Default)]
pub struct ExifFacts {
    /// `DateTimeOriginal` (with `SubSecTimeOriginal` when present): the camera's wall clock.
    /// Without it, the XMP capture date (see [`DateSource::Xmp`]).
    pub date_time_original: Option<NaiveDateTime>,
    /// `OffsetTimeOriginal` ("+02:00"): the UTC offset of that wall clock. When the date came
    /// from XMP, the offset written with it, if any.
    pub offset_time_original: Option<FixedOffset>,
    /// Where `date_time_original` (and `offset_time_original`) came from; `None` without a date.
    pub date_source: Option<DateSource>,
    /// Camera maker, trimmed, NULs and control characters stripped, at most 200 characters.
    pub make: Option<String>,
    /// Camera model, cleaned like `make`.
    pub model: Option<String>,
    /// EXIF Orientation, only when it is a valid 1..=8.
    pub orientation: Option<u16>,
    /// GPS position; `None` when missing, malformed, out of range or the (0, 0) placeholder.
    pub gps: Option<GpsFix>,
    /// Apple Live Photo ContentIdentifier from the MakerNote (exiftool's
    /// `MakerNotes:MediaGroupUUID`); the paired video carries the same value in its
    /// `com.apple.quicktime.content.identifier` key.
    pub content_identifier: Option<String>,
    /// The other tags of the primary image as a JSON object, tag name → display value;
    /// strings sanitised and size-capped, binary blobs (MakerNote, thumbnails) omitted.
    pub metadata: serde_json::Value,
}

/// Which metadata block supplied the capture date of [`ExifFacts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSource {
    /// EXIF `DateTimeOriginal` / `OffsetTimeOriginal`.
    Exif,
    /// The XMP packet: `exif:DateTimeOriginal`, else `photoshop:DateCreated`, else
    /// `xmp:CreateDate` (ISO 8601; its offset, when written, becomes the offset). Used only when
    /// EXIF has no `DateTimeOriginal`.
    Xmp,
}

/// Why EXIF could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExifError {
    /// The EXIF block (or its container) is malformed.
    #[error("corrupt EXIF: {0}")]
    Corrupt(String),
    /// The data ends in the middle of the EXIF block.
    #[error("truncated EXIF: {0}")]
    Truncated(String),
    /// The parser panicked; caught so one hostile file cannot take a worker down.
    #[error("internal error while reading EXIF: {0}")]
    Internal(String),
}

/// Extracts [`ExifFacts`] from a whole image file. No EXIF at all (including formats that
/// cannot carry it, like GIF) is `Ok(ExifFacts::default())`, not an error. Recoverable damage
/// (one bad IFD entry) still yields what could be read.
///
/// A PNG without an `eXIf` chunk is also searched for ImageMagick's "Raw profile type exif" (or
/// "APP1") text chunk. When EXIF has no `DateTimeOriginal`, the capture date comes from the XMP
/// packet (PNG `iTXt`, JPEG APP1, WebP `XMP ` chunk, or an `<x:xmpmeta>` element elsewhere).
pub fn extract(bytes: &[u8]) -> Result<ExifFacts, ExifError> {
    std::panic::catch_unwind(|| extract_unguarded(bytes))
        .map_err(|panic| ExifError::Internal(panic_message(&panic)))?
}

fn extract_unguarded(bytes: &[u8]) -> Result<ExifFacts, ExifError> {
    let is_png = bytes.starts_with(png_text::SIGNATURE);
    // The PNG text chunks, read at most once.
    let mut png = None;
    let exif = match read_exif(bytes) {
        Ok(Some(exif)) => Some(exif),
        // kamadak-exif only knows `eXIf`; its absence, or a PNG it cannot walk, sends us to the
        // text chunks, and only when there is no raw profile either does its verdict stand.
        other if is_png => match png.insert(png_text::scan(bytes)).exif.take() {
            Some(profile) => Some(read_raw(profile?)?),
            None => other?,
        },
        other => other?,
    };
    let mut facts = exif.as_ref().map_or_else(empty_facts, facts_from);
    if facts.date_time_original.is_none() {
        let packet = match png {
            Some(text) => text.xmp.map(Cow::Owned),
            None if is_png => png_text::scan(bytes).xmp.map(Cow::Owned),
            None => xmp_packet::find(bytes),
        };
        if let Some(date) = packet.as_deref().and_then(xmp_date::capture_date) {
            facts.date_time_original = Some(date.date_time);
            facts.offset_time_original = date.offset;
            facts.date_source = Some(DateSource::Xmp);
        }
    }
    Ok(facts)
}

fn empty_facts() -> ExifFacts {
    ExifFacts {
        metadata: serde_json::Value::Object(serde_json::Map::new()),
        ..ExifFacts::default()
    }
}

/// Parses the container; `Ok(None)` when there is no EXIF to read.
fn read_exif(bytes: &[u8]) -> Result<Option<Exif>, ExifError> {
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    let result = reader
        .read_from_container(&mut Cursor::new(bytes))
        .or_else(|e| e.distill_partial_result(|_ignored| {}));
    match result {
        Ok(exif) => Ok(Some(exif)),
        Err(exif::Error::NotFound(_) | exif::Error::BlankValue(_)) => Ok(None),
        Err(exif::Error::InvalidFormat("Unknown image format")) => Ok(None),
        Err(first) => retry_webp_with_prefix(bytes)
            .ok_or_else(|| map_error(first))
            .and_then(|retried| retried.map(Some)),
    }
}

/// Some writers put a JPEG-style "Exif\0\0" header in front of the TIFF data of a WebP `EXIF`
/// chunk; kamadak-exif rejects that, exiftool only warns. Strip it and parse the chunk directly.
fn retry_webp_with_prefix(bytes: &[u8]) -> Option<Result<Exif, ExifError>> {
    let chunk = metadata::webp_exif_chunk(bytes)?;
    let tiff = chunk.strip_prefix(b"Exif\0\0")?;
    Some(read_raw(tiff.to_vec()))
}

/// Parses bare TIFF-structured EXIF (no container), keeping what a damaged block still holds.
fn read_raw(tiff: Vec<u8>) -> Result<Exif, ExifError> {
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    reader
        .read_raw(tiff)
        .or_else(|e| e.distill_partial_result(|_ignored| {}))
        .map_err(map_error)
}

fn map_error(e: exif::Error) -> ExifError {
    match e {
        exif::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ExifError::Truncated(io.to_string())
        }
        exif::Error::InvalidFormat(m) if m.contains("runcated") => ExifError::Truncated(m.into()),
        other => ExifError::Corrupt(other.to_string()),
    }
}

fn facts_from(exif: &Exif) -> ExifFacts {
    let date_time_original = date_time_original(exif);
    ExifFacts {
        date_time_original,
        offset_time_original: ascii(exif, Tag::OffsetTimeOriginal).and_then(|s| parse_offset(&s)),
        date_source: date_time_original.map(|_| DateSource::Exif),
        make: ascii(exif, Tag::Make).and_then(|s| clean_camera_string(&s)),
        model: ascii(exif, Tag::Model).and_then(|s| clean_camera_string(&s)),
        orientation: primary(exif, Tag::Orientation)
            .and_then(|f| f.value.get_uint(0))
            .and_then(|o| u16::try_from(o).ok())
            .filter(|o| (1..=8).contains(o)),
        gps: gps::gps_fix(exif),
        content_identifier: content_identifier(exif),
        metadata: metadata::to_json(exif),
    }
}

pub(crate) fn primary(exif: &Exif, tag: Tag) -> Option<&Field> {
    exif.get_field(tag, In::PRIMARY)
}

/// First ASCII component of a primary-IFD tag, lossily decoded.
pub(crate) fn ascii(exif: &Exif, tag: Tag) -> Option<String> {
    match &primary(exif, tag)?.value {
        Value::Ascii(parts) => parts
            .first()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        // Some writers store strings as UNDEFINED bytes.
        Value::Undefined(bytes, _) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

/// The MakerNote is left out of `metadata` (a vendor blob), but Apple's holds the Live Photo
/// pairing key, so that one tag is read here.
fn content_identifier(exif: &Exif) -> Option<String> {
    match &primary(exif, Tag::MakerNote)?.value {
        Value::Undefined(bytes, _) => apple::content_identifier(bytes),
        _ => None,
    }
}

fn date_time_original(exif: &Exif) -> Option<NaiveDateTime> {
    let text = ascii(exif, Tag::DateTimeOriginal)?;
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    // "YYYY:MM:DD HH:MM:SS"; chrono validates the ranges kamadak-exif leaves unchecked.
    let base = NaiveDateTime::parse_from_str(text.get(..19)?, "%Y:%m:%d %H:%M:%S").ok()?;
    let nanos = ascii(exif, Tag::SubSecTimeOriginal).and_then(|s| subsec_nanos(&s));
    Some(nanos.and_then(|n| base.with_nanosecond(n)).unwrap_or(base))
}

fn subsec_nanos(text: &str) -> Option<u32> {
    let digits: String = text
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    if digits.is_empty() {
        return None;
    }
    let value: u32 = digits.parse().ok()?;
    let scale = 10u32.checked_pow(9 - u32::try_from(digits.len()).ok()?)?;
    value.checked_mul(scale)
}

/// "+02:00", "-05:00", also "+0200"; offsets beyond ±18 h are rejected.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if hours > 18 || minutes >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

fn clean_camera_string(raw: &str) -> Option<String> {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).collect();
    let trimmed: String = cleaned.trim().chars().take(MAX_CAMERA_CHARS).collect();
    let trimmed = trimmed.trim_end();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic in the EXIF parser".to_owned())
}

#[cfg(test)]
mod tests;
