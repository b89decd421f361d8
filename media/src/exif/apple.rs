//! Apple's MakerNote, read for one fact: the Live Photo `ContentIdentifier` (tag 0x0011,
//! exiftool's `MakerNotes:MediaGroupUUID`) that pairs a still with its video.
//!
//! Layout: "Apple iOS\0", a 16-bit version, a byte-order mark ("MM"), then an IFD at byte 14
//! whose value offsets count from the start of the MakerNote. kamadak-exif hands the MakerNote
//! over as opaque bytes, so this small reader does the rest with bounds checks everywhere.

/// Apple's MakerNote signature.
const SIGNATURE: &[u8] = b"Apple iOS\0";
/// Where the IFD starts.
const IFD_AT: usize = 14;
/// IFD entries read at most; Apple writes about sixty.
const MAX_ENTRIES: usize = 512;
/// The ContentIdentifier tag.
const CONTENT_IDENTIFIER: u16 = 0x0011;
/// EXIF type ASCII.
const ASCII: u16 = 2;
/// Longest identifier we accept (a UUID is 36 characters).
const MAX_ID_BYTES: usize = 128;

/// The Live Photo ContentIdentifier from an Apple MakerNote, or `None` for other makers and
/// malformed notes.
pub(super) fn content_identifier(note: &[u8]) -> Option<String> {
    if !note.starts_with(SIGNATURE) {
        return None;
    }
    let big_endian = match note.get(12..14)? {
        b"MM" => true,
        b"II" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = note.get(at..at.checked_add(2)?)?;
        Some(if big_endian {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = note.get(at..at.checked_add(4)?)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let count = usize::from(u16_at(IFD_AT)?);
    for i in 0..count.min(MAX_ENTRIES) {
        let entry = IFD_AT + 2 + 12 * i;
        if u16_at(entry)? != CONTENT_IDENTIFIER {
            continue;
        }
        if u16_at(entry + 2)? != ASCII {
            return None;
        }
        let len = usize::try_from(u32_at(entry + 4)?).ok()?;
        if len > MAX_ID_BYTES {
            return None;
        }
        // Values of up to four bytes sit in the entry itself; longer ones are at an offset.
        let start = if len <= 4 {
            entry + 8
        } else {
            usize::try_from(u32_at(entry + 8)?).ok()?
        };
        let raw = note.get(start..start.checked_add(len)?)?;
        let text: String = String::from_utf8_lossy(raw)
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let text = text.trim();
        return (!text.is_empty()).then(|| text.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::content_identifier;

    fn note(tag: u16, kind: u16, value: &[u8]) -> Vec<u8> {
        let mut n = b"Apple iOS\0\0\x01MM".to_vec();
        n.extend_from_slice(&1u16.to_be_bytes());
        n.extend_from_slice(&tag.to_be_bytes());
        n.extend_from_slice(&kind.to_be_bytes());
        n.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
        n.extend_from_slice(&32u32.to_be_bytes());
        n.extend_from_slice(&[0; 4]);
        n.extend_from_slice(value);
        n
    }

    #[test]
    fn reads_the_identifier() {
        let id = b"9B539AB8-A668-4FA6-9207-EB653A5E7E3C\0";
        assert_eq!(
            content_identifier(&note(0x11, 2, id)).as_deref(),
            Some("9B539AB8-A668-4FA6-9207-EB653A5E7E3C")
        );
    }

    #[test]
    fn rejects_other_notes_and_lies() {
        assert_eq!(content_identifier(b""), None);
        assert_eq!(content_identifier(b"Nikon\0\x02\x10\0\0MM\0*"), None);
        assert_eq!(content_identifier(&note(0x12, 2, b"abc-def")), None);
        assert_eq!(content_identifier(&note(0x11, 7, b"abc-def")), None);
        let mut lying = note(0x11, 2, b"abc-def");
        lying[24..28].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        assert_eq!(content_identifier(&lying), None);
        let mut many = note(0x11, 2, b"abc-def");
        many[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        many.truncate(20);
        assert_eq!(content_identifier(&many), None);
        assert_eq!(content_identifier(&note(0x11, 2, &[b'x'; 500])), None);
    }
}
