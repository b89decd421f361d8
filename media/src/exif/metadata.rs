//! The "everything else" part of EXIF: primary-image tags rendered as a bounded JSON object of
//! display strings, safe to store and to show. Also the WebP chunk locator used to work around a
//! common writer bug (`EXIF`) and to find the XMP packet (`XMP `).

use exif::{Exif, In, Tag, Value};
use serde_json::{Map, Value as Json};

/// Longest single value we keep, in bytes (cut at a character boundary, "…" appended).
const MAX_VALUE_BYTES: usize = 1024;
/// Budget for the whole object (names + values), in bytes; later tags are dropped beyond it.
const MAX_TOTAL_BYTES: usize = 64 * 1024;
/// Arrays longer than this are data, not facts (tables, curves, blobs): skipped before
/// formatting so a hostile count cannot make us build a huge string.
const MAX_COMPONENTS: usize = 64;

/// Tags already surfaced as typed fields of `ExifFacts`, or that only locate binary data.
const SKIPPED: &[Tag] = &[
    Tag::DateTimeOriginal,
    Tag::OffsetTimeOriginal,
    Tag::Make,
    Tag::Model,
    Tag::Orientation,
    Tag::GPSLatitude,
    Tag::GPSLatitudeRef,
    Tag::GPSLongitude,
    Tag::GPSLongitudeRef,
    Tag::GPSAltitude,
    Tag::GPSAltitudeRef,
    Tag::GPSHPositioningError,
    Tag::MakerNote,
    Tag::JPEGInterchangeFormat,
    Tag::JPEGInterchangeFormatLength,
    Tag::StripOffsets,
    Tag::StripByteCounts,
    Tag::TileOffsets,
    Tag::TileByteCounts,
    Tag::ExifIFDPointer,
    Tag::GPSInfoIFDPointer,
    Tag::InteropIFDPointer,
];

/// The primary image's remaining tags as `{ "ExposureTime": "1/60 s", ... }`.
pub(super) fn to_json(exif: &Exif) -> Json {
    let mut map = Map::new();
    let mut total = 0usize;
    for field in exif.fields() {
        if field.ifd_num != In::PRIMARY || SKIPPED.contains(&field.tag) || !is_textual(&field.value)
        {
            continue;
        }
        // Unknown (vendor-private) tags have no name and are usually binary.
        if field.tag.description().is_none() {
            continue;
        }
        let name = field.tag.to_string();
        if map.contains_key(&name) {
            continue;
        }
        let shown = field.display_value().with_unit(exif).to_string();
        let value = sanitise(&shown);
        if value.is_empty() {
            continue;
        }
        total += name.len() + value.len();
        if total > MAX_TOTAL_BYTES {
            break;
        }
        map.insert(name, Json::String(value));
    }
    Json::Object(map)
}

/// Whether a value is small enough to be a displayable fact rather than a blob.
fn is_textual(value: &Value) -> bool {
    let components = match value {
        Value::Byte(v) | Value::Undefined(v, _) => v.len(),
        Value::Ascii(v) => return v.iter().map(Vec::len).sum::<usize>() <= 4 * MAX_VALUE_BYTES,
        Value::Short(v) => v.len(),
        Value::Long(v) => v.len(),
        Value::Rational(v) => v.len(),
        Value::SByte(v) => v.len(),
        Value::SShort(v) => v.len(),
        Value::SLong(v) => v.len(),
        Value::SRational(v) => v.len(),
        Value::Float(v) => v.len(),
        Value::Double(v) => v.len(),
        Value::Unknown(..) => return false,
    };
    components <= MAX_COMPONENTS
}

/// Drops control characters (NUL padding, escapes, newlines), trims, and caps the length.
pub(super) fn sanitise(raw: &str) -> String {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim();
    if trimmed.len() <= MAX_VALUE_BYTES {
        return trimmed.to_owned();
    }
    let mut cut = MAX_VALUE_BYTES - '…'.len_utf8();
    while !trimmed.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &trimmed[..cut])
}

/// The payload of the first `EXIF` chunk of a RIFF/WebP file, if any.
pub(super) fn webp_exif_chunk(bytes: &[u8]) -> Option<&[u8]> {
    webp_chunk(bytes, b"EXIF")
}

/// The payload of the first chunk named `fourcc` of a RIFF/WebP file, if any. A chunk that runs
/// past the end of the file is `None`: the walk is bounded by the file itself.
pub(super) fn webp_chunk<'a>(bytes: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return None;
    }
    let mut pos = 12usize;
    while let Some(header) = bytes.get(pos..pos.checked_add(8)?) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let size = usize::try_from(size).ok()?;
        let start = pos + 8;
        let end = start.checked_add(size)?;
        if &header[..4] == fourcc {
            return bytes.get(start..end);
        }
        // Chunks are padded to an even size.
        pos = end.checked_add(size % 2)?;
    }
    None
}
