//! What a file is, decided once, from its first bytes (never from a client's header or name):
//! the one place that maps magic bytes → format → MIME type → kind (image, video, audio), and a
//! stored MIME type back to its format. The API (refusing a file), `timeline ingest`, the
//! workers (which steps a file gets) and the tests all ask here.
//!
//! This module depends on nothing, so the API can use it without compiling any decoder
//! (`timeline-media` with `default-features = false`).

/// Image containers we decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Video containers, probed and decoded by ffprobe/ffmpeg child processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoFormat {
    /// ISO-BMFF MPEG-4 (`isom`, `mp41`, `mp42`, `avc1`, … brands).
    Mp4,
    /// Apple QuickTime (`qt  ` brand, or an old MOV without `ftyp`).
    QuickTime,
    /// Apple's MPEG-4 video (`M4V ` brands).
    M4v,
    /// 3GPP / 3GPP2 (`3gp*`, `3g2*` brands).
    ThreeGp,
    /// WebM (Matroska with DocType `webm`).
    WebM,
    /// Matroska.
    Matroska,
    /// RIFF AVI.
    Avi,
}

/// Audio containers, probed by ffprobe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// MPEG-4 audio (`M4A `/`M4B ` brands: AAC, ALAC).
    M4a,
    /// MPEG-1/2 Layer III (with or without an ID3 tag).
    Mp3,
    /// RIFF WAVE.
    Wav,
    /// Ogg (Vorbis, Opus).
    Ogg,
    /// FLAC.
    Flac,
}

/// The broad class of a file, which decides its processing steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Image,
    Video,
    Audio,
}

impl Kind {
    /// `image`, `video` or `audio` (the API's `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }

    /// The kind of a stored MIME type (`video/mp4` → video); `None` for anything else.
    pub fn of_mime(mime: &str) -> Option<Self> {
        MediaFormat::from_mime(mime).map(MediaFormat::kind)
    }
}

/// Every accepted format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaFormat {
    Image(ImageFormat),
    Video(VideoFormat),
    Audio(AudioFormat),
}

/// Bytes needed to recognise every supported type (an `ftyp` box with a few compatible
/// brands; Matroska's DocType sits within its first 40 bytes).
pub const SNIFF_LEN: usize = 64;

/// The one MIME table: every format with the type stored in `media_files.mime_type`.
const MIME: [(MediaFormat, &str); 18] = [
    (MediaFormat::Image(ImageFormat::Jpeg), "image/jpeg"),
    (MediaFormat::Image(ImageFormat::Png), "image/png"),
    (MediaFormat::Image(ImageFormat::WebP), "image/webp"),
    (MediaFormat::Image(ImageFormat::Gif), "image/gif"),
    (MediaFormat::Image(ImageFormat::Tiff), "image/tiff"),
    (MediaFormat::Image(ImageFormat::Heif), "image/heic"),
    (MediaFormat::Video(VideoFormat::Mp4), "video/mp4"),
    (
        MediaFormat::Video(VideoFormat::QuickTime),
        "video/quicktime",
    ),
    (MediaFormat::Video(VideoFormat::M4v), "video/x-m4v"),
    (MediaFormat::Video(VideoFormat::ThreeGp), "video/3gpp"),
    (MediaFormat::Video(VideoFormat::WebM), "video/webm"),
    (
        MediaFormat::Video(VideoFormat::Matroska),
        "video/x-matroska",
    ),
    (MediaFormat::Video(VideoFormat::Avi), "video/x-msvideo"),
    (MediaFormat::Audio(AudioFormat::M4a), "audio/mp4"),
    (MediaFormat::Audio(AudioFormat::Mp3), "audio/mpeg"),
    (MediaFormat::Audio(AudioFormat::Wav), "audio/wav"),
    (MediaFormat::Audio(AudioFormat::Ogg), "audio/ogg"),
    (MediaFormat::Audio(AudioFormat::Flac), "audio/flac"),
];

/// Other spellings of a MIME type that clients and older rows use.
const MIME_ALIASES: [(&str, MediaFormat); 9] = [
    ("image/jpg", MediaFormat::Image(ImageFormat::Jpeg)),
    ("image/pjpeg", MediaFormat::Image(ImageFormat::Jpeg)),
    ("image/heif", MediaFormat::Image(ImageFormat::Heif)),
    ("image/heic-sequence", MediaFormat::Image(ImageFormat::Heif)),
    ("image/heif-sequence", MediaFormat::Image(ImageFormat::Heif)),
    ("video/3gpp2", MediaFormat::Video(VideoFormat::ThreeGp)),
    ("audio/x-m4a", MediaFormat::Audio(AudioFormat::M4a)),
    ("audio/x-wav", MediaFormat::Audio(AudioFormat::Wav)),
    ("audio/mp3", MediaFormat::Audio(AudioFormat::Mp3)),
];

impl MediaFormat {
    /// Every accepted format.
    pub fn all() -> impl Iterator<Item = Self> {
        MIME.iter().map(|(f, _)| *f)
    }

    /// Recognises a format from the file's first bytes (give at least [`SNIFF_LEN`] when the
    /// file has them); `None` for anything we do not accept.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        use AudioFormat as A;
        use ImageFormat as I;
        use VideoFormat as V;
        let riff = |tag: &[u8; 4]| head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == tag;
        match head {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Image(I::Jpeg)),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Image(I::Png)),
            _ if riff(b"WEBP") => Some(Self::Image(I::WebP)),
            _ if riff(b"AVI ") => Some(Self::Video(V::Avi)),
            _ if riff(b"WAVE") => Some(Self::Audio(A::Wav)),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Image(I::Gif)),
            [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => {
                Some(Self::Image(I::Tiff))
            }
            [_, _, _, _, b'f', b't', b'y', b'p', ..] => sniff_ftyp(head),
            // QuickTime files written before `ftyp` existed open with one of these atoms.
            [_, _, _, _, b'm', b'o', b'o', b'v', ..]
            | [_, _, _, _, b'm', b'd', b'a', b't', ..]
            | [_, _, _, _, b'w', b'i', b'd', b'e', ..]
            | [_, _, _, _, b'p', b'n', b'o', b't', ..] => Some(Self::Video(V::QuickTime)),
            [0x1A, 0x45, 0xDF, 0xA3, ..] => Some(Self::Video(if contains(head, b"webm") {
                V::WebM
            } else {
                V::Matroska
            })),
            [b'O', b'g', b'g', b'S', ..] => Some(Self::Audio(A::Ogg)),
            [b'f', b'L', b'a', b'C', ..] => Some(Self::Audio(A::Flac)),
            [b'I', b'D', b'3', ..] => Some(Self::Audio(A::Mp3)),
            // An MPEG audio frame header: 11 sync bits, then layer III (`01`).
            [0xFF, b1, ..] if b1 & 0xE0 == 0xE0 && b1 & 0x06 == 0x02 => Some(Self::Audio(A::Mp3)),
            _ => None,
        }
    }

    /// The MIME type stored in `media_files.mime_type`.
    pub fn mime(self) -> &'static str {
        MIME.iter()
            .find(|(f, _)| *f == self)
            .map_or("application/octet-stream", |(_, m)| m)
    }

    /// The format of a MIME type (ours, or a common alias); case and parameters ignored.
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or_default().trim();
        let essence = essence.to_ascii_lowercase();
        MIME.iter()
            .find(|(_, m)| *m == essence)
            .map(|(f, _)| *f)
            .or_else(|| {
                MIME_ALIASES
                    .iter()
                    .find(|(m, _)| *m == essence)
                    .map(|(_, f)| *f)
            })
    }

    /// Image, video or audio.
    pub fn kind(self) -> Kind {
        match self {
            Self::Image(_) => Kind::Image,
            Self::Video(_) => Kind::Video,
            Self::Audio(_) => Kind::Audio,
        }
    }

    /// The image format, for images.
    pub fn image(self) -> Option<ImageFormat> {
        match self {
            Self::Image(f) => Some(f),
            _ => None,
        }
    }

    /// Whether the container is ISO base media (MP4, MOV, 3GP, M4A): the formats whose
    /// structure and metadata we read ourselves before ffprobe sees them.
    pub fn is_iso_bmff(self) -> bool {
        matches!(
            self,
            Self::Video(
                VideoFormat::Mp4 | VideoFormat::QuickTime | VideoFormat::M4v | VideoFormat::ThreeGp
            ) | Self::Audio(AudioFormat::M4a)
        )
    }
}

impl ImageFormat {
    /// The format of a MIME type, for images only.
    pub fn from_mime(mime: &str) -> Option<Self> {
        MediaFormat::from_mime(mime).and_then(MediaFormat::image)
    }

    /// The canonical MIME type (`image/heic` for [`ImageFormat::Heif`]).
    pub fn mime(self) -> &'static str {
        MediaFormat::Image(self).mime()
    }
}

/// Classifies an ISO-BMFF file by its major brand, falling back to its compatible brands.
fn sniff_ftyp(head: &[u8]) -> Option<MediaFormat> {
    use MediaFormat::{Audio, Image, Video};
    let major = head.get(8..12)?;
    if let Some(f) = brand(major) {
        return f;
    }
    // Unknown major brand (cameras invent their own): trust a known compatible brand. The
    // compatible list starts after the 4-byte minor version and runs to the box's end.
    let box_len = head
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    // (A short head or a lying box size leaves no compatible brands, never a panic.)
    let end = box_len.min(head.len());
    let compatible = head.get(16..end).unwrap_or_default();
    let found = compatible.chunks_exact(4).filter_map(brand).flatten();
    let mut best = None;
    for f in found {
        // A still's brands beat a movie's: an HEIC lists `mif1` and may list `iso8`.
        match (best, f) {
            (_, Image(_)) => return Some(f),
            (None, _) | (Some(Audio(_)), Video(_)) => best = Some(f),
            _ => {}
        }
    }
    best
}

/// `Some(verdict)` when the brand decides the file (`Some(None)`: a brand we refuse).
fn brand(b: &[u8]) -> Option<Option<MediaFormat>> {
    use MediaFormat::{Audio, Image, Video};
    Some(match b {
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
            Some(Image(ImageFormat::Heif))
        }
        // AVIF and JPEG 2000 stills are not decodable here.
        b"avif" | b"avis" | b"jp2 " | b"jpx " | b"crx " => None,
        b"qt  " => Some(Video(VideoFormat::QuickTime)),
        b"M4V " | b"M4VH" | b"M4VP" => Some(Video(VideoFormat::M4v)),
        b"M4A " | b"M4B " | b"M4P " => Some(Audio(AudioFormat::M4a)),
        [b'3', b'g', b'p' | b'2', _] => Some(Video(VideoFormat::ThreeGp)),
        b"isom" | b"iso2" | b"iso3" | b"iso4" | b"iso5" | b"iso6" | b"iso7" | b"iso8" | b"iso9"
        | b"mp41" | b"mp42" | b"mp71" | b"avc1" | b"dash" | b"MSNV" | b"XAVC" | b"f4v "
        | b"mmp4" | b"NDAS" | b"CAEP" | b"FACE" => Some(Video(VideoFormat::Mp4)),
        _ => return None,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let len = 16 + 4 * compatible.len();
        let mut v = u32::try_from(len).unwrap_or(0).to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(major);
        v.extend_from_slice(&[0, 0, 0, 0]);
        for c in compatible {
            v.extend_from_slice(*c);
        }
        v
    }

    #[test]
    fn mime_round_trips() {
        for f in MediaFormat::all() {
            assert_eq!(MediaFormat::from_mime(f.mime()), Some(f));
        }
        assert_eq!(MediaFormat::from_mime("text/html"), None);
        assert_eq!(
            MediaFormat::from_mime("IMAGE/HEIF; foo=bar"),
            Some(MediaFormat::Image(ImageFormat::Heif))
        );
        assert_eq!(ImageFormat::from_mime("video/mp4"), None);
        assert_eq!(Kind::of_mime("video/quicktime"), Some(Kind::Video));
        assert_eq!(Kind::of_mime("audio/flac"), Some(Kind::Audio));
    }

    #[test]
    fn sniffs_images() {
        use ImageFormat::*;
        let img = |h: &[u8]| MediaFormat::sniff(h).and_then(MediaFormat::image);
        assert_eq!(img(&[0xFF, 0xD8, 0xFF, 0xE1]), Some(Jpeg));
        assert_eq!(img(b"\x89PNG\r\n\x1a\n...."), Some(Png));
        assert_eq!(img(b"RIFF\0\0\0\0WEBPVP8 "), Some(WebP));
        assert_eq!(img(b"GIF89a.."), Some(Gif));
        assert_eq!(img(b"II*\0...."), Some(Tiff));
        assert_eq!(img(&ftyp(b"heic", &[b"mif1"])), Some(Heif));
        assert_eq!(img(&ftyp(b"mif1", &[])), Some(Heif));
        // An unknown major brand that lists a HEIF brand is a still.
        assert_eq!(img(&ftyp(b"abcd", &[b"iso8", b"heic"])), Some(Heif));
    }

    #[test]
    fn sniffs_video_and_audio() {
        use MediaFormat::{Audio, Video};
        let s = MediaFormat::sniff;
        assert_eq!(s(&ftyp(b"isom", &[b"mp41"])), Some(Video(VideoFormat::Mp4)));
        assert_eq!(s(&ftyp(b"mp42", &[])), Some(Video(VideoFormat::Mp4)));
        assert_eq!(s(&ftyp(b"qt  ", &[])), Some(Video(VideoFormat::QuickTime)));
        assert_eq!(s(&ftyp(b"M4V ", &[])), Some(Video(VideoFormat::M4v)));
        assert_eq!(s(&ftyp(b"3gp5", &[])), Some(Video(VideoFormat::ThreeGp)));
        assert_eq!(s(&ftyp(b"3g2a", &[])), Some(Video(VideoFormat::ThreeGp)));
        assert_eq!(s(&ftyp(b"M4A ", &[])), Some(Audio(AudioFormat::M4a)));
        assert_eq!(s(&ftyp(b"zzzz", &[b"isom"])), Some(Video(VideoFormat::Mp4)));
        assert_eq!(
            s(b"\0\0\0\x08wide\0\0\0\0mdat"),
            Some(Video(VideoFormat::QuickTime))
        );
        let mut mkv = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01];
        mkv.extend_from_slice(b"\x42\x82\x88matroska");
        assert_eq!(s(&mkv), Some(Video(VideoFormat::Matroska)));
        let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01];
        webm.extend_from_slice(b"\x42\x82\x84webm");
        assert_eq!(s(&webm), Some(Video(VideoFormat::WebM)));
        assert_eq!(s(b"RIFF\0\0\0\0AVI LIST"), Some(Video(VideoFormat::Avi)));
        assert_eq!(s(b"RIFF\0\0\0\0WAVEfmt "), Some(Audio(AudioFormat::Wav)));
        assert_eq!(s(b"OggS\0\x02"), Some(Audio(AudioFormat::Ogg)));
        assert_eq!(s(b"fLaC\0\0\0\x22"), Some(Audio(AudioFormat::Flac)));
        assert_eq!(s(b"ID3\x04\0"), Some(Audio(AudioFormat::Mp3)));
        assert_eq!(s(&[0xFF, 0xFB, 0x90, 0x64]), Some(Audio(AudioFormat::Mp3)));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            &b""[..],
            b"PK\x03\x04zip",
            b"<?php echo 1; ?>",
            &ftyp(b"avif", &[b"mif1"]),
            &ftyp(b"zzzz", &[b"yyyy"]),
            b"\xFF\xD8",
            b"RIFF\0\0\0\0CDXA",
            // ADTS AAC and MPEG layer I/II frames are not taken for MP3.
            &[0xFF, 0xF1, 0x50, 0x80],
            // Found by the fuzzer: a 14-byte file with an unknown brand panicked the sniffer.
            b"\x00\x40\x00\x18ftyphe\x01c\x00\x00",
            b"\x00\x00\x00\x08ftyp",
        ] {
            assert_eq!(MediaFormat::sniff(bad), None, "{bad:?}");
        }
    }
}
