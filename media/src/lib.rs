//! `timeline-media`: the pure media code of timeline — bytes in, facts out.
//!
//! Owns what a file is ([`format`]), EXIF extraction ([`exif`]), content hashing ([`hash`]),
//! offline reverse geocoding and time-zone lookup ([`geocode`]), capture-time resolution
//! ([`taken_at`]), preview/thumbnail rendering ([`thumbnail`]), video containers and Motion
//! Photos (`video`), ffprobe's facts ([`probe`]) and the ffmpeg child processes that probe clips
//! and cut their poster frames ([`ffmpeg`]). Nothing here touches a database, a queue or the
//! network; apart from [`ffmpeg`], every function works on plain bytes and can be unit-tested,
//! benched and fuzzed.

#[cfg(feature = "codecs")]
pub mod exif;
#[cfg(feature = "codecs")]
pub mod ffmpeg;
pub mod format;
#[cfg(feature = "codecs")]
pub mod geocode;
pub mod hash;
pub mod probe;
pub mod structure;
#[cfg(feature = "codecs")]
pub mod taken_at;
#[cfg(feature = "codecs")]
pub mod thumbnail;
pub mod video;

pub use format::{AudioFormat, ImageFormat, Kind, MediaFormat, VideoFormat};
