//! Imports of other services' exports: what each format says about its files (sidecars,
//! albums, captions), planned from entry names and small JSON entries before any byte of a
//! photo is read. The formats' planners are pure; reading archives and storing is the
//! importer's.

pub mod api;
pub mod archive;
pub mod facebook;
pub mod icloud;
pub mod job;
pub mod ranged;
pub mod takeout;
pub mod timeline;

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

/// One media file to import: where its bytes are, what the export says of it, the albums it
/// is in.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The entry holding the bytes (the first copy met).
    pub entry: usize,
    /// The display name (the entry's last path component).
    pub filename: String,
    pub facts: Option<ImportFacts>,
    /// Album names, in the order met.
    pub albums: Vec<String>,
}

/// A post or story that becomes a memory: its text, date and place, and its media (indexes
/// into [`Plan::media`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMemory {
    /// Stable across imports of the same export (`memories.source_id`), so importing twice
    /// makes one memory.
    pub source_id: String,
    pub title: String,
    pub description: Option<String>,
    /// A UTC instant, Unix seconds.
    pub date: i64,
    /// `memories.memory_type`: `photo`, `video` or `text`.
    pub kind: &'static str,
    pub place: Option<Place>,
    pub media: Vec<usize>,
}

/// Where a memory happened, as the export names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub name: Option<String>,
    pub address: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
}

/// The plan of an import, whatever the format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub media: Vec<Planned>,
    /// Albums with their description, in the order met.
    pub albums: Vec<(String, Option<String>)>,
    pub memories: Vec<PlannedMemory>,
    pub skipped: Vec<Skipped>,
    /// Media imported from the file alone (nothing in the export describes them), by entry
    /// name.
    pub without_sidecar: Vec<String>,
}

/// `dir/name` → (`dir`, `name`).
pub(crate) fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// A position, if it is one: finite, in range, and not 0,0 (what exports write for "none").
pub(crate) fn valid_position(lat: f64, lon: f64) -> Option<(f64, f64)> {
    let valid = lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon);
    (valid && (lat, lon) != (0.0, 0.0)).then_some((lat, lon))
}

/// What an export's sidecar says about one media file, stored with its row
/// (`media_files.import_facts`) and merged by the exif step: a date with an offset in the file
/// wins; the sidecar fills what the file lacks (the instant, the position).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImportFacts {
    /// The service the export came from (`google_photos`, `facebook`, `apple_photos`).
    pub source: String,
    /// When it was taken, a UTC instant in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub favorite: bool,
    #[serde(default)]
    pub archived: bool,
}

impl ImportFacts {
    /// The position, when both coordinates are there.
    pub fn position(&self) -> Option<(f64, f64)> {
        self.latitude.zip(self.longitude)
    }
}

impl From<&takeout::Sidecar> for ImportFacts {
    fn from(s: &takeout::Sidecar) -> Self {
        Self {
            source: "google_photos".into(),
            taken_at: s.taken_at,
            latitude: s.position.map(|p| p.0),
            longitude: s.position.map(|p| p.1),
            description: s.description.clone(),
            favorite: s.favorite,
            archived: s.archived,
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

/// Entries of these names (100 bytes each), for the planners' tests.
#[cfg(test)]
pub(crate) fn test_entries(names: &[&str]) -> Vec<EntryMeta> {
    names
        .iter()
        .map(|n| EntryMeta {
            name: (*n).to_owned(),
            size: 100,
        })
        .collect()
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
