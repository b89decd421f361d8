//! `timeline-media`: the pure media code of timeline — bytes in, facts out.
//!
//! Owns EXIF extraction ([`exif`]), content hashing ([`hash`]), offline reverse geocoding and
//! time-zone lookup ([`geocode`]), capture-time resolution ([`taken_at`]) and preview/thumbnail
//! rendering ([`thumbnail`]). Nothing here touches a database, a queue or the network, so every
//! function can be unit-tested, benched and fuzzed on plain byte slices.

pub mod exif;
pub mod geocode;
pub mod hash;
pub mod taken_at;
pub mod thumbnail;

/// Image container formats we process (decided by the caller from magic bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG / JFIF / EXIF JPEG.
    Jpeg,
    /// PNG (APNG is rendered from its default image).
    Png,
    /// WebP, lossy or lossless (animated: first frame).
    WebP,
    /// GIF (first frame only).
    Gif,
    /// Baseline TIFF.
    Tiff,
    /// HEIF / HEIC (HEVC-coded HEIF).
    Heif,
}

impl ImageFormat {
    /// Maps a MIME type (`image/jpeg`, `image/png`, `image/webp`, `image/gif`, `image/tiff`,
    /// `image/heic`, `image/heif`) to a format. Case and parameters (`; charset=...`) are ignored;
    /// anything else is `None`.
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/webp" => Some(Self::WebP),
            "image/gif" => Some(Self::Gif),
            "image/tiff" => Some(Self::Tiff),
            "image/heic" | "image/heif" | "image/heic-sequence" | "image/heif-sequence" => {
                Some(Self::Heif)
            }
            _ => None,
        }
    }

    /// The canonical MIME type of the format (`image/heic` for [`ImageFormat::Heif`]).
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
            Self::Gif => "image/gif",
            Self::Tiff => "image/tiff",
            Self::Heif => "image/heic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ImageFormat;

    #[test]
    fn from_mime_knows_the_supported_types() {
        assert_eq!(
            ImageFormat::from_mime("image/jpeg"),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(ImageFormat::from_mime("IMAGE/PNG"), Some(ImageFormat::Png));
        assert_eq!(
            ImageFormat::from_mime("image/webp"),
            Some(ImageFormat::WebP)
        );
        assert_eq!(ImageFormat::from_mime("image/gif"), Some(ImageFormat::Gif));
        assert_eq!(
            ImageFormat::from_mime("image/tiff"),
            Some(ImageFormat::Tiff)
        );
        assert_eq!(
            ImageFormat::from_mime("image/heic"),
            Some(ImageFormat::Heif)
        );
        assert_eq!(
            ImageFormat::from_mime("image/heif; foo=bar"),
            Some(ImageFormat::Heif)
        );
        assert_eq!(ImageFormat::from_mime("image/svg+xml"), None);
        assert_eq!(ImageFormat::from_mime(""), None);
    }

    #[test]
    fn mime_round_trips() {
        for f in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::WebP,
            ImageFormat::Gif,
            ImageFormat::Tiff,
            ImageFormat::Heif,
        ] {
            assert_eq!(ImageFormat::from_mime(f.mime()), Some(f));
        }
    }
}
