//! Imports of other services' exports: what each format says about its files (sidecars,
//! albums, captions), planned from entry names and small JSON entries before any byte of a
//! photo is read. The formats' planners are pure; reading archives and storing is the
//! importer's.

pub mod takeout;

/// An entry of an export (in a zip part or an extracted folder): its name inside the export,
/// `/`-separated, and its size. The name is matched as a string, never used as a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    pub name: String,
    pub size: u64,
}

/// An entry left out, and why (the import's summary names each).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

impl Skipped {
    pub fn new(name: &str, reason: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Extensions of the photos, videos and audio an export may hold (the bytes are still sniffed
/// when stored; this only tells media entries from sidecars and web pages).
const MEDIA_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "heic", "heif", "avif", "png", "gif", "webp", "tif", "tiff", "bmp",
    "dng", "cr2", "nef", "arw", "mp4", "m4v", "mov", "3gp", "mkv", "webm", "avi", "mp3", "m4a",
    "aac", "wav", "ogg", "opus", "flac",
];

/// Whether an entry's name looks like a media file.
pub fn is_media_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && MEDIA_EXTENSIONS.iter().any(|m| m.eq_ignore_ascii_case(ext))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_names() {
        assert!(is_media_name("IMG_1.JPG"));
        assert!(is_media_name("clip.MOV"));
        assert!(!is_media_name("IMG_1.JPG.json"));
        assert!(!is_media_name(".jpg"));
        assert!(!is_media_name("index.html"));
        assert!(!is_media_name("noext"));
    }
}
