//! A GPS IFD with well-formed coordinates keeps its fix whatever one unrelated entry holds:
//! a `GPSDateStamp` with the time in it, a wrong type, a value past the end of the block, an
//! unknown type. exiftool reads each of these fixes; so must we.

use super::super::extract;

/// One IFD entry: tag, type, count, value bytes (inline when ≤ 4, else stored after the IFDs).
type Entry = (u16, u16, u32, Vec<u8>);

const ASCII: u16 = 2;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;

fn rationals(values: &[(u32, u32)]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|(n, d)| n.to_le_bytes().into_iter().chain(d.to_le_bytes()))
        .collect()
}

/// A little-endian TIFF block: IFD0 holding only the GPS pointer, then the GPS IFD.
fn tiff_with_gps(gps: &[Entry]) -> Vec<u8> {
    let gps_ifd_at = 8 + 2 + 12 + 4;
    let data_at = gps_ifd_at + 2 + 12 * gps.len() + 4;
    let mut out = b"II*\0".to_vec();
    out.extend(8u32.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(0x8825u16.to_le_bytes());
    out.extend(LONG.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend(u32::try_from(gps_ifd_at).unwrap().to_le_bytes());
    out.extend(0u32.to_le_bytes());
    let mut data: Vec<u8> = Vec::new();
    out.extend(u16::try_from(gps.len()).unwrap().to_le_bytes());
    for (tag, typ, count, value) in gps {
        out.extend(tag.to_le_bytes());
        out.extend(typ.to_le_bytes());
        out.extend(count.to_le_bytes());
        if value.len() <= 4 {
            let mut inline = value.clone();
            inline.resize(4, 0);
            out.extend(inline);
        } else {
            out.extend(u32::try_from(data_at + data.len()).unwrap().to_le_bytes());
            data.extend(value);
        }
    }
    out.extend(0u32.to_le_bytes());
    out.extend(data);
    out
}

/// A JPEG holding nothing but that EXIF block.
fn jpeg(tiff: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend(u16::try_from(tiff.len() + 8).unwrap().to_be_bytes());
    out.extend(b"Exif\0\0");
    out.extend(tiff);
    out.extend([0xFF, 0xD9]);
    out
}

/// 35° 41' 22.2" N, 139° 41' 30.1" E (Tokyo), plus `extra`.
fn fix_with(extra: Entry) -> Vec<u8> {
    let mut entries = vec![
        (0x0001, ASCII, 2, b"N\0".to_vec()),
        (
            0x0002,
            RATIONAL,
            3,
            rationals(&[(35, 1), (41, 1), (222, 10)]),
        ),
        (0x0003, ASCII, 2, b"E\0".to_vec()),
        (
            0x0004,
            RATIONAL,
            3,
            rationals(&[(139, 1), (41, 1), (301, 10)]),
        ),
        extra,
    ];
    entries.sort_by_key(|e| e.0);
    jpeg(&tiff_with_gps(&entries))
}

#[test]
fn one_malformed_gps_entry_keeps_the_fix() {
    let cases: Vec<(&str, Entry)> = vec![
        (
            "GPSDateStamp with date and time",
            (0x001D, ASCII, 20, b"2019:05:04 10:11:12\0".to_vec()),
        ),
        (
            "GPSDateStamp as a rational",
            (0x001D, RATIONAL, 1, rationals(&[(2019, 1)])),
        ),
        (
            "GPSDateStamp past the end of the block",
            (0x001D, ASCII, 11, vec![0xFF, 0xFF, 0x00, 0x00]),
        ),
        (
            "GPSTimeStamp with an unknown type",
            (0x0007, 99, 3, vec![0; 4]),
        ),
        (
            "GPSTimeStamp with a zero denominator",
            (0x0007, RATIONAL, 3, rationals(&[(10, 0), (11, 1), (12, 1)])),
        ),
        (
            "GPSTimeStamp with an absurd count",
            (0x0007, RATIONAL, u32::MAX, vec![0; 4]),
        ),
    ];
    for (what, entry) in cases {
        let facts = extract(&fix_with(entry)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let gps = facts
            .gps
            .unwrap_or_else(|| panic!("{what}: the fix was dropped"));
        assert!((gps.latitude - 35.689_5).abs() < 1e-3, "{what}: {gps:?}");
        assert!((gps.longitude - 139.691_7).abs() < 1e-3, "{what}: {gps:?}");
    }
}
