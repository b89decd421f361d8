//! Where a file keeps its XMP packet: a JPEG APP1 segment, a WebP `XMP ` chunk, or (TIFF, HEIF
//! and anything else) the `<x:xmpmeta>` element found by a bounded byte search. PNG packets come
//! from [`super::png_text`].

use std::borrow::Cow;

use super::metadata::webp_chunk;

/// The APP1 signature of an XMP packet.
const XMP_SIGNATURE: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
/// JPEG segments visited at most before the image data.
const MAX_JPEG_SEGMENTS: usize = 4096;
/// Most bytes of a packet found by searching; the dates sit near the top of real packets.
const MAX_SEARCHED_PACKET_BYTES: usize = 4 * 1024 * 1024;
const PACKET_START: &[u8] = b"<x:xmpmeta";
const PACKET_END: &[u8] = b"</x:xmpmeta>";

/// The XMP packet of a non-PNG file, lossily decoded as UTF-8.
pub(super) fn find(bytes: &[u8]) -> Option<Cow<'_, str>> {
    let packet = if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg(bytes)?
    } else if bytes.get(..4) == Some(b"RIFF") {
        webp_chunk(bytes, b"XMP ")?
    } else {
        search(bytes)?
    };
    Some(String::from_utf8_lossy(packet))
}

/// The payload of the first XMP APP1 segment before the image data.
fn jpeg(bytes: &[u8]) -> Option<&[u8]> {
    let mut pos = 2usize;
    for _ in 0..MAX_JPEG_SEGMENTS {
        match *bytes.get(pos..pos.checked_add(2)?)? {
            // Fill bytes before a marker.
            [0xFF, 0xFF] => pos += 1,
            // Markers without a length: TEM, RSTn, a stray SOI.
            [0xFF, 0x01 | 0xD0..=0xD8] => pos += 2,
            // Image data or end of image: the header segments are over.
            [0xFF, 0xDA | 0xD9] => return None,
            [0xFF, marker] => {
                let len = bytes.get(pos + 2..pos + 4)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                // The length counts itself; a segment running past the end is cut off.
                let end = (pos + 2 + len).min(bytes.len());
                let payload = bytes.get(pos + 4..end)?;
                if marker == 0xE1
                    && let Some(packet) = payload.strip_prefix(XMP_SIGNATURE)
                {
                    return Some(packet);
                }
                pos = pos + 2 + len.max(2);
            }
            _ => return None,
        }
    }
    None
}

/// The first `<x:xmpmeta …>…</x:xmpmeta>` in the bytes (TIFF tag 700, a HEIF `mime` item, …),
/// at most [`MAX_SEARCHED_PACKET_BYTES`] long. Linear in the file size.
fn search(bytes: &[u8]) -> Option<&[u8]> {
    let start = find_bytes(bytes, PACKET_START)?;
    let rest = &bytes[start..];
    let window = &rest[..rest.len().min(MAX_SEARCHED_PACKET_BYTES)];
    let end = find_bytes(window, PACKET_END).map_or(window.len(), |e| e + PACKET_END.len());
    Some(&window[..end])
}

/// Position of the first `needle` in `haystack` (non-empty needle).
fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, tail) = needle.split_first()?;
    let mut from = 0usize;
    while let Some(offset) = haystack.get(from..)?.iter().position(|&b| b == first) {
        let at = from + offset;
        if haystack.get(at + 1..)?.starts_with(tail) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}
