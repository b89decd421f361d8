//! PNG text chunks (`tEXt`, `zTXt`, `iTXt`) holding metadata that kamadak-exif, which only reads
//! the `eXIf` chunk, misses: the hex dump ImageMagick writes for an EXIF profile ("Raw profile
//! type exif", or "Raw profile type APP1" for a whole APP1 segment) and the XMP packet
//! (`XML:com.adobe.xmp`, or a "Raw profile type xmp" dump).
//!
//! Bounded: at most [`MAX_CHUNKS`] chunk headers are visited, only chunks with one of the
//! keywords above are ever read, and all inflation shares one [`MAX_INFLATED_BYTES`] budget, so
//! a zip-bomb text chunk costs at most that much memory and time.

use std::borrow::Cow;

use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_zlib_with_limit};

use super::ExifError;

/// The eight bytes every PNG starts with.
pub(super) const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// Chunk headers visited at most. Text chunks may follow the image data (ImageMagick writes them
/// after IDAT), so the walk cannot stop there; a 200 MB image in 8 KiB IDATs is ~25,000 chunks.
const MAX_CHUNKS: usize = 100_000;
/// Bytes all compressed text chunks together may inflate to.
pub(super) const MAX_INFLATED_BYTES: usize = 16 * 1024 * 1024;
/// The APP1 signature of an XMP packet, in case a "Raw profile type APP1" holds XMP, not EXIF.
const XMP_SIGNATURE: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// What a PNG's text chunks hold. Only the first EXIF profile and the first XMP packet are kept.
#[derive(Debug, Default)]
pub(super) struct PngText {
    /// TIFF-structured EXIF from a raw profile, "Exif\0\0" stripped; `Err` when the chunk is
    /// damaged (bad hex, broken zlib, inflates beyond the budget).
    pub exif: Option<Result<Vec<u8>, ExifError>>,
    /// The XMP packet, lossily decoded as UTF-8.
    pub xmp: Option<String>,
}

/// Which of our keywords a text chunk carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// A hex dump of an EXIF block or APP1 segment.
    ExifProfile,
    /// A hex dump of an XMP packet.
    XmpProfile,
    /// The XMP packet itself (UTF-8 text).
    XmpPacket,
}

/// Reads the text chunks of a PNG; anything else (including a non-PNG) yields nothing.
pub(super) fn scan(bytes: &[u8]) -> PngText {
    let mut found = PngText::default();
    let Some(mut pos) = bytes.starts_with(SIGNATURE).then_some(SIGNATURE.len()) else {
        return found;
    };
    let mut budget = MAX_INFLATED_BYTES;
    for _ in 0..MAX_CHUNKS {
        let Some(header) = bytes.get(pos..pos.saturating_add(8)) else {
            break;
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = [header[4], header[5], header[6], header[7]];
        let start = pos + 8;
        let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
            break;
        };
        if &kind == b"IEND" {
            break;
        }
        if matches!(&kind, b"tEXt" | b"zTXt" | b"iTXt") {
            // A chunk cut off by the end of the file cannot be trusted, and nothing follows it.
            let Some(data) = bytes.get(start..end) else {
                break;
            };
            read_chunk(&kind, data, &mut budget, &mut found);
            if found.exif.is_some() && found.xmp.is_some() {
                break;
            }
        }
        // Skip the CRC: a bad checksum does not make the metadata less useful (exiftool agrees).
        let Some(next) = end.checked_add(4) else {
            break;
        };
        pos = next;
    }
    found
}

/// Records what one text chunk holds, if it is one we want and have not seen yet.
fn read_chunk(kind: &[u8; 4], data: &[u8], budget: &mut usize, found: &mut PngText) {
    // Keywords are 1..=79 bytes and NUL-terminated.
    let Some(nul) = data.iter().take(80).position(|&b| b == 0) else {
        return;
    };
    let Some(wanted) = wanted(&data[..nul]) else {
        return;
    };
    let already = match wanted {
        Wanted::ExifProfile => found.exif.is_some(),
        Wanted::XmpProfile | Wanted::XmpPacket => found.xmp.is_some(),
    };
    if already {
        return;
    }
    let text = match chunk_text(kind, &data[nul + 1..], budget) {
        Some(Ok(text)) => text,
        Some(Err(e)) => {
            if wanted == Wanted::ExifProfile {
                found.exif = Some(Err(e));
            }
            return;
        }
        None => return,
    };
    match wanted {
        Wanted::XmpPacket => found.xmp = Some(String::from_utf8_lossy(&text).into_owned()),
        Wanted::XmpProfile => {
            if let Ok(raw) = decode_raw_profile(&text) {
                found.xmp = Some(String::from_utf8_lossy(&raw).into_owned());
            }
        }
        Wanted::ExifProfile => match decode_raw_profile(&text) {
            Ok(raw) => match raw.strip_prefix(XMP_SIGNATURE) {
                // An APP1 profile can be an XMP segment just as well.
                Some(xmp) if found.xmp.is_none() => {
                    found.xmp = Some(String::from_utf8_lossy(xmp).into_owned());
                }
                Some(_) => {}
                None => {
                    let tiff = match raw.strip_prefix(b"Exif\0\0") {
                        Some(tiff) => tiff.to_vec(),
                        None => raw,
                    };
                    found.exif = Some(Ok(tiff));
                }
            },
            Err(e) => found.exif = Some(Err(e)),
        },
    }
}

fn wanted(keyword: &[u8]) -> Option<Wanted> {
    // ImageMagick writes the profile name as it knows it ("app1", "exif"); compare loosely.
    let is = |name: &str| keyword.eq_ignore_ascii_case(name.as_bytes());
    if is("Raw profile type exif") || is("Raw profile type APP1") {
        Some(Wanted::ExifProfile)
    } else if is("Raw profile type xmp") {
        Some(Wanted::XmpProfile)
    } else if is("XML:com.adobe.xmp") {
        Some(Wanted::XmpPacket)
    } else {
        None
    }
}

/// The text of a chunk after its keyword's NUL, inflated when compressed. `None` when the chunk
/// layout is broken beyond reading.
fn chunk_text<'a>(
    kind: &[u8; 4],
    rest: &'a [u8],
    budget: &mut usize,
) -> Option<Result<Cow<'a, [u8]>, ExifError>> {
    match kind {
        b"tEXt" => Some(Ok(Cow::Borrowed(rest))),
        b"zTXt" => {
            let (&method, compressed) = rest.split_first()?;
            Some(inflate(method, compressed, budget).map(Cow::Owned))
        }
        b"iTXt" => {
            let (&flag, rest) = rest.split_first()?;
            let (&method, rest) = rest.split_first()?;
            // Language tag, then translated keyword, both NUL-terminated.
            let language_end = rest.iter().position(|&b| b == 0)?;
            let rest = &rest[language_end + 1..];
            let translated_end = rest.iter().position(|&b| b == 0)?;
            let text = &rest[translated_end + 1..];
            Some(match flag {
                0 => Ok(Cow::Borrowed(text)),
                _ => inflate(method, text, budget).map(Cow::Owned),
            })
        }
        _ => None,
    }
}

/// Inflates zlib data (method 0, the only one PNG defines) within the remaining budget.
fn inflate(method: u8, compressed: &[u8], budget: &mut usize) -> Result<Vec<u8>, ExifError> {
    if method != 0 {
        return Err(ExifError::Corrupt(format!(
            "PNG text chunk: unknown compression method {method}"
        )));
    }
    match decompress_to_vec_zlib_with_limit(compressed, *budget) {
        Ok(text) => {
            *budget = budget.saturating_sub(text.len());
            Ok(text)
        }
        Err(e) => {
            *budget = budget.saturating_sub(e.output.len());
            Err(match e.status {
                TINFLStatus::HasMoreOutput => ExifError::Corrupt(format!(
                    "PNG text chunk inflates beyond {MAX_INFLATED_BYTES} bytes"
                )),
                TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                    ExifError::Truncated(format!("PNG text chunk: {e}"))
                }
                _ => ExifError::Corrupt(format!("PNG text chunk: {e}")),
            })
        }
    }
}

/// Decodes ImageMagick's raw-profile text: "\n<name>\n<decimal length>\n<hex, wrapped>\n".
///
/// The declared length limits what is decoded but never sizes an allocation (the hex digits
/// present do), and a length larger than the data keeps what is there: the EXIF parser judges
/// whether that is enough.
pub(super) fn decode_raw_profile(text: &[u8]) -> Result<Vec<u8>, ExifError> {
    let corrupt = |what: &str| ExifError::Corrupt(format!("PNG raw profile: {what}"));
    let text = trim_start(text);
    let name_end = text
        .iter()
        .position(u8::is_ascii_whitespace)
        .ok_or_else(|| corrupt("no length"))?;
    let text = trim_start(&text[name_end..]);
    let digits_end = text
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    let declared: usize = std::str::from_utf8(&text[..digits_end])
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| corrupt("bad length"))?;
    let hex = &text[digits_end..];
    let mut out = Vec::with_capacity(declared.min(hex.len() / 2));
    let mut high: Option<u8> = None;
    for &b in hex {
        if out.len() == declared {
            break;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        let nibble = hex_value(b).ok_or_else(|| corrupt("bad hex digit"))?;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push((h << 4) | nibble),
        }
    }
    if out.is_empty() {
        return Err(corrupt("empty"));
    }
    Ok(out)
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
