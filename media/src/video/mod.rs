//! Video containers without a decoder: ISO-BMFF (MP4, MOV, 3GP, M4A, HEIF) box walking and the
//! capture facts kept in a movie's `moov` index ([`bmff`]), ISO 6709 location strings
//! ([`iso6709`]) and the position of the clip embedded in a Motion Photo still ([`motion`]).
//!
//! Everything here reads through `Read + Seek` with a known length, touches only box headers and
//! the small boxes it needs (never `mdat`), caps every allocation and loop, and reports damage as a
//! [`ContainerError`] whose message can be shown to the user as is.

mod atoms;
pub mod bmff;
pub mod iso6709;
mod moov;
pub mod motion;
mod udta;
mod xmp;

#[cfg(test)]
mod tests;

use std::io::Cursor;

/// Why a container could not be read. The only error type of this module.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The file ends before a structure it announces (a box runs past the end of the file).
    #[error("truncated video: {0}")]
    Truncated(String),
    /// The structure is inconsistent (impossible sizes, missing index, not a container at all).
    #[error("corrupt video: {0}")]
    Corrupt(String),
    /// Reading the underlying file failed.
    #[error("could not read the file: {0}")]
    Io(#[from] std::io::Error),
}

/// Longest string we keep from a container, in characters.
const MAX_TEXT_CHARS: usize = 200;

/// Drops control characters (NUL padding, escapes, newlines), trims, and keeps at most
/// 200 characters; blank results are `None`. Container strings are shown to users and stored.
pub(crate) fn clean_text(raw: &str) -> Option<String> {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).collect();
    let capped: String = cleaned.trim().chars().take(MAX_TEXT_CHARS).collect();
    let capped = capped.trim_end();
    (!capped.is_empty()).then(|| capped.to_owned())
}

/// Runs every parser of this module on arbitrary bytes and ignores the results: the entry point
/// for a fuzzer, whose only question is whether anything panics, loops or over-allocates.
pub fn fuzz_entry(bytes: &[u8]) {
    let len = bytes.len() as u64;
    let mut cursor = Cursor::new(bytes);
    if let Ok(boxes) = bmff::top_level(&mut cursor, len) {
        let _verdict = bmff::check_movie(&boxes);
        if let Some(moov) = bmff::find_top_level(&boxes, b"moov")
            && let Ok(meta) = bmff::movie_meta(&mut cursor, moov)
            && let Some(location) = meta.location.as_deref()
        {
            let _position = iso6709::parse(location);
        }
    }
    let _video = motion::find(&mut Cursor::new(bytes), len);
}
