//! ISO base media file format (MP4, MOV, 3GP, M4A, HEIF) at the box level: reading box headers,
//! walking the top level of a file, deciding whether it is a playable movie (it has a `moov`
//! index and no box runs past the end), and reading the capture facts out of `moov`.
//!
//! Files can be many GiB, so only headers are read while walking; the payload of `moov` (capped
//! at 64 MiB) is the only body ever loaded, and `mdat` is never touched.

use std::io::{Read, Seek, SeekFrom};

use super::ContainerError;
use super::atoms::{be_u32, be_u64, plausible_fourcc};
pub use super::moov::MovieMeta;

/// More top-level boxes than any real file has; beyond it the file is treated as hostile.
pub const MAX_TOP_LEVEL_BOXES: usize = 100_000;
/// Largest `moov` we load into memory. Real ones are kilobytes to a few MiB even for hour-long
/// recordings; a bigger claim is a lie or a file we should not hold in memory.
pub const MAX_MOOV_BYTES: u64 = 64 * 1024 * 1024;

/// Boxes a movie file may legitimately start with. QuickTime files can lack `ftyp` and open
/// with `wide`, `free`, `mdat` or even `moov`.
const MOVIE_LEADING_BOXES: &[&[u8; 4]] = &[
    b"ftyp", b"wide", b"free", b"skip", b"mdat", b"moov", b"pnot", b"uuid", b"junk", b"pdin",
];

/// One box header as found in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// The box type, e.g. `*b"moov"`.
    pub fourcc: [u8; 4],
    /// Where the box starts (its size field), from the start of the file or parent.
    pub offset: u64,
    /// Length of the whole box, header included.
    pub size: u64,
    /// Length of the header: 8, 16 with a 64-bit size, plus 16 for a `uuid` box's user type.
    pub header_len: u64,
}

impl BoxHeader {
    /// Where the payload starts.
    pub fn payload_offset(&self) -> u64 {
        self.offset.saturating_add(self.header_len)
    }

    /// Length of the payload (the box minus its header).
    pub fn payload_len(&self) -> u64 {
        self.size.saturating_sub(self.header_len)
    }

    /// First byte after the box.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }

    /// The type as text for messages: `moov`, `©xyz`, or escaped bytes.
    pub fn name(&self) -> String {
        fourcc_name(&self.fourcc)
    }
}

/// A box type as readable text; 0xA9 is Apple's `©`, other non-printable bytes are escaped so a
/// hostile type cannot inject control characters into a user-visible message.
pub(crate) fn fourcc_name(fourcc: &[u8; 4]) -> String {
    let mut name = String::new();
    for &b in fourcc {
        match b {
            0xA9 => name.push('©'),
            0x20..=0x7E => name.push(char::from(b)),
            _ => name.push_str(&format!("\\x{b:02x}")),
        }
    }
    name
}

/// Decodes a box header from the first bytes of a box at `offset`. `available` is how many bytes
/// remain in the parent (or file) from `offset`; it resolves size 0 ("to the end") and is what a
/// header must fit in. The box's own size is *not* checked against it: see [`check_fits`].
pub(crate) fn parse_header(
    buf: &[u8],
    offset: u64,
    available: u64,
) -> Result<BoxHeader, ContainerError> {
    let (Some(size32), Some(fourcc)) = (be_u32(buf, 0), buf.get(4..8)) else {
        return Err(ContainerError::Truncated(format!(
            "box header at byte {offset} needs 8 bytes but only {} remain",
            available.min(buf.len() as u64)
        )));
    };
    let fourcc = [fourcc[0], fourcc[1], fourcc[2], fourcc[3]];
    let name = fourcc_name(&fourcc);
    let (size, mut header_len) = match size32 {
        1 => {
            let large = be_u64(buf, 8).ok_or_else(|| {
                ContainerError::Truncated(format!(
                    "box '{name}' at byte {offset} has a 64-bit size that is cut off"
                ))
            })?;
            (large, 16)
        }
        0 => (available, 8),
        n => (u64::from(n), 8),
    };
    if &fourcc == b"uuid" {
        header_len += 16;
    }
    if size < header_len {
        return Err(ContainerError::Corrupt(format!(
            "box '{name}' at byte {offset} claims {size} bytes, less than its own \
             {header_len}-byte header"
        )));
    }
    Ok(BoxHeader {
        fourcc,
        offset,
        size,
        header_len,
    })
}

/// Fails with [`ContainerError::Truncated`] when `header`'s box runs past `end`.
pub(crate) fn check_fits(header: &BoxHeader, end: u64) -> Result<(), ContainerError> {
    let remaining = end.saturating_sub(header.offset);
    if header.size > remaining {
        return Err(ContainerError::Truncated(format!(
            "box '{}' at byte {} claims {} bytes but only {remaining} remain",
            header.name(),
            header.offset,
            header.size
        )));
    }
    Ok(())
}

/// Reads and decodes the header of the box at `offset` of a file `len` bytes long.
pub(crate) fn read_header<R: Read + Seek>(
    r: &mut R,
    offset: u64,
    len: u64,
) -> Result<BoxHeader, ContainerError> {
    let available = len.saturating_sub(offset);
    let buf = read_at(r, offset, available.min(32))?;
    parse_header(&buf, offset, available)
}

/// Reads up to `n` bytes at `offset` (fewer when the data ends first). Callers keep `n` small.
pub(crate) fn read_at<R: Read + Seek>(r: &mut R, offset: u64, n: u64) -> std::io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    r.by_ref().take(n).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Walks the top-level boxes of a file of `len` bytes, reading only their headers.
///
/// A box reaching past `len` is [`ContainerError::Truncated`]; a size smaller than its header,
/// a type that is not a four-character code, or more than [`MAX_TOP_LEVEL_BOXES`] boxes is
/// [`ContainerError::Corrupt`]. Zero padding at the very end is tolerated.
pub fn top_level<R: Read + Seek>(r: &mut R, len: u64) -> Result<Vec<BoxHeader>, ContainerError> {
    let mut boxes = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        if boxes.len() >= MAX_TOP_LEVEL_BOXES {
            return Err(ContainerError::Corrupt(format!(
                "more than {MAX_TOP_LEVEL_BOXES} top-level boxes"
            )));
        }
        let buf = read_at(r, pos, (len - pos).min(32))?;
        // Some writers pad the end of a file with zeros; that is not a box, nor damage.
        if buf.iter().take(8).all(|&b| b == 0) {
            break;
        }
        if let Some(fourcc) = buf.get(4..8)
            && !plausible_fourcc(fourcc)
        {
            let shown = fourcc_name(&[fourcc[0], fourcc[1], fourcc[2], fourcc[3]]);
            return Err(ContainerError::Corrupt(format!(
                "not an ISO-BMFF/QuickTime file: the data at byte {pos} is not a box \
                 (type '{shown}')"
            )));
        }
        let header = parse_header(&buf, pos, len - pos)?;
        check_fits(&header, len)?;
        pos = header.end();
        boxes.push(header);
    }
    Ok(boxes)
}

/// The first top-level box of type `fourcc`.
pub fn find_top_level<'a>(boxes: &'a [BoxHeader], fourcc: &[u8; 4]) -> Option<&'a BoxHeader> {
    boxes.iter().find(|b| &b.fourcc == fourcc)
}

/// Decides whether walked top-level boxes make a playable movie: it must start like a movie
/// file (`ftyp`, or one of the boxes old QuickTime files open with) and contain a `moov` index.
pub fn check_movie(boxes: &[BoxHeader]) -> Result<(), ContainerError> {
    let first = boxes
        .first()
        .ok_or_else(|| ContainerError::Corrupt("the file is empty: no boxes at all".to_owned()))?;
    if !MOVIE_LEADING_BOXES.contains(&&first.fourcc) {
        return Err(ContainerError::Corrupt(format!(
            "not a movie: the file starts with box '{}' instead of 'ftyp'",
            first.name()
        )));
    }
    if find_top_level(boxes, b"moov").is_none() {
        return Err(ContainerError::Corrupt(
            "no 'moov' box: the recording was cut off before its index was written".to_owned(),
        ));
    }
    Ok(())
}

/// Loads the `moov` box (at most [`MAX_MOOV_BYTES`]) and extracts the capture facts in it.
/// Damaged boxes inside `moov` are skipped, because the movie may still play; only a `moov`
/// that is too big or cut off is an error.
pub fn movie_meta<R: Read + Seek>(
    r: &mut R,
    moov: &BoxHeader,
) -> Result<MovieMeta, ContainerError> {
    if moov.payload_len() > MAX_MOOV_BYTES {
        return Err(ContainerError::Corrupt(format!(
            "box '{}' is {} bytes, more than the {} MiB a movie index can reasonably need",
            moov.name(),
            moov.size,
            MAX_MOOV_BYTES / (1024 * 1024)
        )));
    }
    let payload = read_at(r, moov.payload_offset(), moov.payload_len())?;
    if (payload.len() as u64) < moov.payload_len() {
        return Err(ContainerError::Truncated(format!(
            "box '{}' claims {} bytes but the file ends {} bytes into it",
            moov.name(),
            moov.size,
            moov.header_len + payload.len() as u64
        )));
    }
    Ok(super::moov::parse(&payload))
}
