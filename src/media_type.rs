//! Deciding what an upload is from its first bytes (never from the client's header or name).
//! Kept here, tiny and dependency-free, so the API can refuse a file without compiling any
//! image decoder.

/// The image types the platform accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Jpeg,
    Png,
    WebP,
    Gif,
    Tiff,
    Heif,
}

/// Bytes needed to recognise every supported type.
pub const SNIFF_LEN: usize = 32;

impl MediaType {
    /// Recognises a type from the file's first bytes; `None` for anything else.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        match head {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => Some(Self::WebP),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => Some(Self::Tiff),
            [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] if is_heif_brand(brand) => {
                Some(Self::Heif)
            }
            _ => None,
        }
    }

    /// Every accepted type.
    pub const ALL: [Self; 6] = [
        Self::Jpeg,
        Self::Png,
        Self::WebP,
        Self::Gif,
        Self::Tiff,
        Self::Heif,
    ];

    /// The type of a stored `media_files.mime_type` (as written by [`MediaType::mime`]).
    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.mime() == mime)
    }

    /// The MIME type stored in `media_files.mime_type`.
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

/// HEIF's `ftyp` major brands (ISO/IEC 23008-12): still images and sequences, HEVC or AV1 excluded
/// (`avif` is not HEIF for our decoders).
fn is_heif_brand(brand: &[u8]) -> bool {
    matches!(
        brand.get(..4),
        Some(b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_round_trips() {
        for t in MediaType::ALL {
            assert_eq!(MediaType::from_mime(t.mime()), Some(t));
        }
        assert_eq!(MediaType::from_mime("text/html"), None);
    }

    #[test]
    fn sniffs_supported_types() {
        assert_eq!(
            MediaType::sniff(&[0xFF, 0xD8, 0xFF, 0xE1]),
            Some(MediaType::Jpeg)
        );
        assert_eq!(
            MediaType::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(MediaType::Png)
        );
        assert_eq!(
            MediaType::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(MediaType::WebP)
        );
        assert_eq!(MediaType::sniff(b"GIF89a.."), Some(MediaType::Gif));
        assert_eq!(MediaType::sniff(b"II*\0...."), Some(MediaType::Tiff));
        assert_eq!(
            MediaType::sniff(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Some(MediaType::Heif)
        );
        assert_eq!(
            MediaType::sniff(b"\0\0\0\x18ftypmif1\0\0\0\0"),
            Some(MediaType::Heif)
        );
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            &b""[..],
            b"PK\x03\x04zip",
            b"<?php echo 1; ?>",
            b"\0\0\0\x18ftypavif",
            b"\xFF\xD8",
            b"RIFF\0\0\0\0WAVE",
        ] {
            assert_eq!(MediaType::sniff(bad), None, "{bad:?}");
        }
    }
}
