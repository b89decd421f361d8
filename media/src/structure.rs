//! Whether an upload's bytes keep the structure its magic bytes promise, checked as they stream
//! in: four bytes of JPEG signature followed by 300 MB of anything must be refused at the first
//! broken segment, not stored whole. Only the container's outer framing is walked (no
//! decoding), and only until it is clearly sound:
//!
//! - **JPEG**: markers and segment lengths from `SOI` up to the first `SOS` (the image data);
//! - **PNG**: chunk lengths, types and the `IHDR`-first rule, up to the first `IDAT`;
//! - **ISO BMFF** (HEIC, MP4, MOV, M4V, 3GP, M4A): top-level box sizes and types, up to a
//!   `moov` or `mdat` box (or the sniffed `ftyp` alone for formats checked no further).
//!
//! Other formats are accepted as sniffed; their decoders refuse them later with a reason. The
//! walk gives up being strict after [`CHECK_LIMIT`] bytes: a structure still sound that far
//! in is not "clearly invalid".

use crate::format::{AudioFormat, ImageFormat, MediaFormat, VideoFormat};

/// Bytes after which a structure that is still sound is accepted.
pub const CHECK_LIMIT: u64 = 16 << 20;

/// Most stray bytes between two JPEG segments before the file counts as broken.
const MAX_EXTRANEOUS: u32 = 4096;

/// Why the bytes are not the container they claim to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {format}: {reason} at byte {offset}")]
pub struct Invalid {
    pub format: &'static str,
    pub reason: &'static str,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Jpeg {
    /// Expecting `FF D8`.
    Soi(u8),
    /// Expecting a marker's `FF` (or more `FF` fill bytes).
    MarkerStart,
    /// Bytes that are not a marker where one belongs; decoders skip a few ("extraneous bytes
    /// before marker"), so only a long run is a broken file.
    Extraneous(u32),
    /// After `FF`: the marker code.
    MarkerCode,
    /// A segment's two length bytes; the first one is kept.
    Length(Option<u8>),
    /// Skipping a segment's payload.
    Skip(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    Jpeg(Jpeg),
    /// A length-prefixed stream of records: PNG chunks or BMFF boxes. `header` collects a
    /// record's header bytes; `skip` counts the payload still to pass.
    Records {
        header: [u8; 16],
        have: u8,
        skip: u64,
        first: bool,
    },
    /// Sound so far as far as we look.
    Done,
}

/// A streaming structure check; feed it every chunk in order.
#[derive(Debug, Clone)]
pub struct StructureCheck {
    format: MediaFormat,
    walk: Walk,
    offset: u64,
}

impl StructureCheck {
    /// A check for `format` (as sniffed from the same bytes).
    pub fn new(format: MediaFormat) -> Self {
        let walk = match format {
            MediaFormat::Image(ImageFormat::Jpeg) => Walk::Jpeg(Jpeg::Soi(0)),
            MediaFormat::Image(ImageFormat::Png) | MediaFormat::Image(ImageFormat::Heif) => {
                records()
            }
            MediaFormat::Video(
                VideoFormat::Mp4 | VideoFormat::QuickTime | VideoFormat::M4v | VideoFormat::ThreeGp,
            )
            | MediaFormat::Audio(AudioFormat::M4a) => records(),
            _ => Walk::Done,
        };
        Self {
            format,
            walk,
            offset: 0,
        }
    }

    /// Whether the check has seen enough to stop looking.
    pub fn settled(&self) -> bool {
        self.walk == Walk::Done
    }

    /// Checks the next bytes of the file.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Invalid> {
        let mut i = 0;
        while i < chunk.len() && self.walk != Walk::Done {
            if self.offset >= CHECK_LIMIT {
                self.walk = Walk::Done;
                break;
            }
            let used = match self.walk {
                Walk::Jpeg(state) => self.jpeg(state, &chunk[i..])?,
                Walk::Records { .. } => self.record(&chunk[i..])?,
                Walk::Done => chunk.len() - i,
            };
            i += used;
            self.offset += used as u64;
        }
        Ok(())
    }

    fn invalid(&self, reason: &'static str) -> Invalid {
        Invalid {
            format: self.format.mime(),
            reason,
            offset: self.offset,
        }
    }

    /// One JPEG step; returns how many bytes it used.
    fn jpeg(&mut self, state: Jpeg, bytes: &[u8]) -> Result<usize, Invalid> {
        let b = bytes[0];
        let next = match state {
            Jpeg::Soi(0) if b == 0xFF => Jpeg::Soi(1),
            Jpeg::Soi(_) if b == 0xD8 => Jpeg::MarkerStart,
            Jpeg::Soi(_) => return Err(self.invalid("no start-of-image marker")),
            Jpeg::MarkerStart | Jpeg::Extraneous(_) if b == 0xFF => Jpeg::MarkerCode,
            Jpeg::MarkerStart => Jpeg::Extraneous(1),
            Jpeg::Extraneous(n) if n < MAX_EXTRANEOUS => Jpeg::Extraneous(n + 1),
            Jpeg::Extraneous(_) => {
                return Err(self.invalid("a long run of bytes where a segment marker belongs"));
            }
            Jpeg::MarkerCode => match b {
                0xFF => Jpeg::MarkerCode, // fill byte
                // Standalone markers: TEM, RSTn.
                0x01 | 0xD0..=0xD7 => Jpeg::MarkerStart,
                0x00 | 0xD8 => return Err(self.invalid("a marker that cannot appear here")),
                0xD9 => return Err(self.invalid("the image ends before any image data")),
                _ => Jpeg::Length(None),
            },
            Jpeg::Length(None) => Jpeg::Length(Some(b)),
            Jpeg::Length(Some(hi)) => {
                let len = u16::from_be_bytes([hi, b]);
                if len < 2 {
                    return Err(self.invalid("a segment shorter than its own length field"));
                }
                Jpeg::Skip(u64::from(len) - 2)
            }
            Jpeg::Skip(n) => {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len());
                let rest = n - take as u64;
                self.walk = Walk::Jpeg(if rest == 0 {
                    Jpeg::MarkerStart
                } else {
                    Jpeg::Skip(rest)
                });
                return Ok(take);
            }
        };
        // Start of scan: what follows is entropy-coded data; the framing held up to here.
        if state == Jpeg::MarkerCode && b == 0xDA {
            self.walk = Walk::Done;
            return Ok(1);
        }
        self.walk = match next {
            Jpeg::Skip(0) => Walk::Jpeg(Jpeg::MarkerStart),
            other => Walk::Jpeg(other),
        };
        Ok(1)
    }

    /// One step over PNG chunks or BMFF boxes; returns how many bytes it used.
    fn record(&mut self, bytes: &[u8]) -> Result<usize, Invalid> {
        let Walk::Records {
            mut header,
            mut have,
            skip,
            first,
        } = self.walk
        else {
            return Ok(bytes.len());
        };
        if skip > 0 {
            let take = usize::try_from(skip).unwrap_or(usize::MAX).min(bytes.len());
            self.walk = Walk::Records {
                header,
                have,
                skip: skip - take as u64,
                first,
            };
            return Ok(take);
        }
        let png = self.format == MediaFormat::Image(ImageFormat::Png);
        // PNG: an 8-byte signature first (sniffed already), then 8-byte chunk headers.
        let need: u8 = if png && first { 16 } else { 8 };
        let take = usize::from(need - have).min(bytes.len());
        header[usize::from(have)..usize::from(have) + take].copy_from_slice(&bytes[..take]);
        have += take as u8;
        if have < need {
            self.walk = Walk::Records {
                header,
                have,
                skip: 0,
                first,
            };
            return Ok(take);
        }
        let h = if png && first {
            &header[8..16]
        } else {
            &header[..8]
        };
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let kind = [h[4], h[5], h[6], h[7]];
        let skip = if png {
            self.png_chunk(size, kind, first)?
        } else {
            self.bmff_box(size, kind)?
        };
        self.walk = match skip {
            None => Walk::Done,
            Some(skip) => Walk::Records {
                header: [0; 16],
                have: 0,
                skip,
                first: false,
            },
        };
        Ok(take)
    }

    /// A PNG chunk header: the bytes to skip to the next one, or `None` once image data starts.
    fn png_chunk(&self, size: u32, kind: [u8; 4], first: bool) -> Result<Option<u64>, Invalid> {
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(self.invalid("a chunk type that is not four letters"));
        }
        if size > 0x7FFF_FFFF {
            return Err(self.invalid("a chunk longer than PNG allows"));
        }
        if first && &kind != b"IHDR" {
            return Err(self.invalid("the first chunk is not IHDR"));
        }
        if &kind == b"IDAT" {
            return Ok(None);
        }
        if &kind == b"IEND" {
            return Err(self.invalid("the image ends before any image data"));
        }
        Ok(Some(u64::from(size) + 4)) // payload and CRC
    }

    /// A top-level BMFF box header: the bytes to skip to the next one, or `None` once the
    /// movie or media data starts (or a size that runs to the end, or a 64-bit size, which a
    /// sound file uses only for its big data box).
    fn bmff_box(&self, size: u32, kind: [u8; 4]) -> Result<Option<u64>, Invalid> {
        if !kind
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == 0xA9)
        {
            return Err(self.invalid("a box type that is not printable"));
        }
        match size {
            0 | 1 => return Ok(None),
            2..=7 => return Err(self.invalid("a box shorter than its own header")),
            _ => {}
        }
        if matches!(&kind, b"moov" | b"mdat" | b"meta" | b"moof") {
            return Ok(None);
        }
        Ok(Some(u64::from(size) - 8))
    }
}

fn records() -> Walk {
    Walk::Records {
        header: [0; 16],
        have: 0,
        skip: 0,
        first: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(format: MediaFormat, bytes: &[u8], chunk: usize) -> Result<bool, Invalid> {
        let mut c = StructureCheck::new(format);
        for part in bytes.chunks(chunk.max(1)) {
            c.feed(part)?;
        }
        Ok(c.settled())
    }

    const JPEG: MediaFormat = MediaFormat::Image(ImageFormat::Jpeg);
    const PNG: MediaFormat = MediaFormat::Image(ImageFormat::Png);
    const MP4: MediaFormat = MediaFormat::Video(VideoFormat::Mp4);

    #[test]
    fn real_files_are_sound_in_any_chunking() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        for (name, format) in [
            ("landscape_1.jpg", JPEG),
            ("DSCN0010.jpg", JPEG),
            ("Issue 280 (dotnet).png", PNG),
            ("IMG_5195.HEIC", MediaFormat::Image(ImageFormat::Heif)),
        ] {
            let bytes = std::fs::read(dir.join(name)).unwrap_or_default();
            assert!(!bytes.is_empty(), "{name} missing");
            for chunk in [1, 7, 4096, bytes.len()] {
                assert_eq!(check(format, &bytes, chunk), Ok(true), "{name} in {chunk}s");
            }
        }
    }

    #[test]
    fn magic_bytes_then_garbage_are_refused_at_once() {
        let mut fake = vec![0xFF, 0xD8, 0xFF, 0xE0];
        fake.extend(std::iter::repeat_n(0u8, 1 << 20));
        let err = check(JPEG, &fake, 65536).err().map(|e| e.offset);
        assert_eq!(err, Some(5), "the zero length field");
        let mut text = vec![0xFF, 0xD8];
        text.extend(b"hello world ".repeat(1000));
        assert!(check(JPEG, &text, 3).is_err());
        // A few stray bytes before a marker are tolerated, as decoders do.
        let mut stray = vec![0xFF, 0xD8, 0, 0, 0, 0xFF, 0xDA];
        stray.extend([1, 2, 3]);
        assert_eq!(check(JPEG, &stray, 2), Ok(true));
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(std::iter::repeat_n(0xAAu8, 100));
        assert!(check(PNG, &png, 10).is_err());
        let mut mp4 = b"\0\0\0\x18ftypisom\0\0\0\0isommp41".to_vec();
        mp4.extend(std::iter::repeat_n(0u8, 100));
        assert!(check(MP4, &mp4, 5).is_err(), "a zero box type after ftyp");
    }

    #[test]
    fn a_sound_prefix_is_not_refused_and_the_walk_stops_at_the_limit() {
        // A JPEG cut short in its headers: nothing invalid was seen, it is just not settled.
        assert_eq!(
            check(JPEG, &[0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10, 1, 2], 3),
            Ok(false)
        );
        // Segment after segment of APP data for longer than the limit: accepted once past it.
        let mut c = StructureCheck::new(JPEG);
        c.feed(&[0xFF, 0xD8]).ok();
        let segment: Vec<u8> = [0xFF, 0xE2, 0xFF, 0xFF]
            .into_iter()
            .chain(std::iter::repeat_n(0, 0xFFFD))
            .collect();
        while !c.settled() {
            assert!(c.feed(&segment).is_ok());
        }
        assert!(c.offset >= CHECK_LIMIT);
    }
}
