//! Reading boxes already in memory: big-endian integers, box types, the children of a
//! container payload, QuickTime `meta` layouts and `data` atoms. Shared by the file walker
//! ([`super::bmff`]), the `moov` reader ([`super::moov`]) and its user data ([`super::udta`]),
//! which is why it is a module of its own: none of them depends on another for these.

use super::clean_text;

/// Children walked per container at most; a 64 MiB `moov` could otherwise hold 8 million.
const MAX_CHILDREN: usize = 100_000;

/// Whether four bytes can be a box type: printable ASCII or `©`. Binary garbage (a JPEG, a
/// zero-filled tail) fails this, which gives a better message than a nonsense size would.
pub(crate) fn plausible_fourcc(fourcc: &[u8]) -> bool {
    fourcc
        .iter()
        .all(|&b| (0x20..=0x7E).contains(&b) || b == 0xA9)
}

/// One child box of an in-memory container.
pub(crate) struct Child<'a> {
    pub(crate) fourcc: [u8; 4],
    pub(crate) body: &'a [u8],
}

/// The children of a container payload, in order. Stops at the first child whose size does not
/// fit (the rest of the container cannot be located reliably) and after [`MAX_CHILDREN`].
pub(crate) fn children(data: &[u8]) -> impl Iterator<Item = Child<'_>> {
    let mut pos = 0usize;
    let mut count = 0usize;
    std::iter::from_fn(move || {
        if count >= MAX_CHILDREN {
            return None;
        }
        count += 1;
        let rest = data.get(pos..)?;
        let size32 = be_u32(rest, 0)?;
        let fourcc = rest.get(4..8)?;
        let fourcc = [fourcc[0], fourcc[1], fourcc[2], fourcc[3]];
        let (size, mut header) = match size32 {
            1 => (usize::try_from(be_u64(rest, 8)?).ok()?, 16),
            0 => (rest.len(), 8),
            n => (usize::try_from(n).ok()?, 8),
        };
        if &fourcc == b"uuid" {
            header += 16;
        }
        if size < header || size > rest.len() {
            return None;
        }
        pos += size;
        Some(Child {
            fourcc,
            body: rest.get(header..size)?,
        })
    })
}

pub(crate) fn child<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    children(data).find(|c| &c.fourcc == fourcc).map(|c| c.body)
}

/// A value from an `ilst` `data` atom.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DataValue {
    Text(String),
    Number(f64),
}

impl DataValue {
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Self::Text(s) => Some(s.clone()),
            Self::Number(_) => None,
        }
    }

    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Self::Text(s) => s.trim().parse().ok(),
            Self::Number(n) => Some(*n),
        }
    }
}

/// QuickTime's `meta` is a plain container while ISO's (and iTunes') is a full box with four
/// bytes of version and flags first; tell them apart by where the first child type sits.
pub(crate) fn meta_children(meta: &[u8]) -> &[u8] {
    let full_box =
        meta.get(..4) == Some(&[0, 0, 0, 0]) && meta.get(8..12).is_some_and(plausible_fourcc);
    if full_box {
        meta.get(4..).unwrap_or_default()
    } else {
        meta
    }
}

/// Decodes a `data` atom: well-known type, locale, value.
pub(crate) fn data_value(data: &[u8]) -> Option<DataValue> {
    let kind = be_u32(data, 0)? & 0x00FF_FFFF;
    let value = data.get(8..)?;
    match kind {
        1 => clean_text(&String::from_utf8_lossy(value)).map(DataValue::Text),
        2 => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            clean_text(&String::from_utf16_lossy(&units)).map(DataValue::Text)
        }
        23 => Some(DataValue::Number(f64::from(f32::from_be_bytes(
            value.get(..4)?.try_into().ok()?,
        )))),
        24 => Some(DataValue::Number(f64::from_be_bytes(
            value.get(..8)?.try_into().ok()?,
        ))),
        21 | 22 if !value.is_empty() && value.len() <= 8 => {
            let mut n: i64 = if kind == 21 && value[0] & 0x80 != 0 {
                -1
            } else {
                0
            };
            for &b in value {
                n = (n << 8) | i64::from(b);
            }
            Some(DataValue::Number(n as f64))
        }
        _ => None,
    }
}

pub(crate) fn be_u16(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

pub(crate) fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn be_u64(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(b);
    Some(u64::from_be_bytes(bytes))
}
