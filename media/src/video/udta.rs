//! Movie user data (`moov/udta`): QuickTime text items (`©day`, `©xyz`, `©mak`, `©mod`), the
//! 3GPP `date` and `loci` boxes, and iTunes-style `meta/ilst/©day`; plus the date formats they
//! use. Like the rest of `moov` parsing, damaged items are skipped, never errors.

use chrono::{DateTime, FixedOffset, NaiveDateTime};

use super::atoms::{be_u16, be_u32, child, children, data_value, meta_children};
use super::clean_text;

/// The user-data facts we keep, as raw sanitised strings.
#[derive(Debug, Default)]
pub(super) struct UserData {
    pub(super) day: Option<String>,
    pub(super) xyz: Option<String>,
    pub(super) loci: Option<String>,
    pub(super) make: Option<String>,
    pub(super) model: Option<String>,
}

impl UserData {
    pub(super) fn read(&mut self, udta: &[u8]) {
        for c in children(udta) {
            let slot = match &c.fourcc {
                b"\xA9day" => (&mut self.day, udta_text(c.body)),
                // 3GPP/Samsung `date` holds the bare text, without a length prefix.
                b"date" => (&mut self.day, clean_text(&String::from_utf8_lossy(c.body))),
                b"\xA9xyz" => (&mut self.xyz, udta_text(c.body)),
                b"loci" => (&mut self.loci, loci_iso6709(c.body)),
                b"\xA9mak" => (&mut self.make, udta_text(c.body)),
                b"\xA9mod" => (&mut self.model, udta_text(c.body)),
                b"meta" => (&mut self.day, itunes_day(c.body)),
                _ => continue,
            };
            if slot.0.is_none() {
                *slot.0 = slot.1;
            }
        }
    }
}

/// Text of a QuickTime user-data item (16-bit length, 16-bit language, text), or of an iTunes
/// style item holding a `data` atom.
fn udta_text(body: &[u8]) -> Option<String> {
    if body.get(4..8) == Some(b"data") {
        return child(body, b"data")
            .and_then(data_value)
            .and_then(|v| v.text());
    }
    let len = usize::from(be_u16(body, 0)?);
    let text = body.get(4..4usize.checked_add(len)?)?;
    clean_text(&String::from_utf8_lossy(text))
}

fn itunes_day(meta: &[u8]) -> Option<String> {
    let ilst = child(meta_children(meta), b"ilst")?;
    let day = child(ilst, b"\xA9day")?;
    data_value(child(day, b"data")?)?.text()
}

/// A 3GPP `loci` box (TS 26.244) rendered as ISO 6709, so every location source reaches callers
/// in one format. Layout: version/flags, language, name (NUL-terminated, maybe UTF-16 with BOM),
/// role, then longitude, latitude and altitude as signed 16.16 fixed point.
fn loci_iso6709(body: &[u8]) -> Option<String> {
    let name_start = 6usize;
    let name = body.get(name_start..)?;
    let name_len = if name.starts_with(&[0xFE, 0xFF]) {
        name.chunks_exact(2).position(|p| p == [0, 0])? * 2 + 2
    } else {
        name.iter().position(|&b| b == 0)? + 1
    };
    let fixed_at = name_start + name_len + 1; // + role
    let fixed = |i: usize| -> Option<f64> {
        let raw = be_u32(body, fixed_at + 4 * i)?;
        Some(f64::from(raw as i32) / 65536.0)
    };
    let (lon, lat, alt) = (fixed(0)?, fixed(1)?, fixed(2)?);
    if lat.abs() > 90.0 || lon.abs() > 180.0 {
        return None;
    }
    Some(format!("{lat:+010.6}{lon:+011.6}{alt:+.3}/"))
}

/// A container date, with or without a UTC offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ParsedDate {
    Offset(DateTime<FixedOffset>),
    Local(NaiveDateTime),
}

/// Parses "2019-07-24T11:25:40+0300", "...+03:00", "...Z", fractional seconds, the EXIF-style
/// "2019:07:24 11:25:40", and the same without an offset. A bare year ("2020", as iTunes
/// writes) or an all-zero date is not a capture time.
pub(super) fn parse_date(raw: &str) -> Option<ParsedDate> {
    let text = raw.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(ParsedDate::Offset(d));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y:%m:%d %H:%M:%S%.f%z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(text, fmt) {
            return Some(ParsedDate::Offset(d));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y:%m:%d %H:%M:%S%.f",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(ParsedDate::Local(d));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_with_and_without_offsets() {
        let d = |s: &str| parse_date(s).map(|p| format!("{p:?}"));
        assert_eq!(
            parse_date("2019-07-24T11:25:40+0300"),
            DateTime::parse_from_rfc3339("2019-07-24T11:25:40+03:00")
                .ok()
                .map(ParsedDate::Offset)
        );
        assert!(matches!(
            parse_date("2020-11-20T15:04:02+01:00"),
            Some(ParsedDate::Offset(_))
        ));
        assert!(matches!(
            parse_date("2020-11-20T15:04:02.5Z"),
            Some(ParsedDate::Offset(_))
        ));
        assert!(matches!(
            parse_date("2020-11-20T15:04:02\0"),
            Some(ParsedDate::Local(_))
        ));
        assert!(matches!(
            parse_date("2020:11:20 15:04:02"),
            Some(ParsedDate::Local(_))
        ));
        assert_eq!(d("2020"), None);
        assert_eq!(d("0000-00-00T00:00:00"), None);
        assert_eq!(d(""), None);
    }

    #[test]
    fn loci_becomes_iso6709() {
        let mut body = vec![0, 0, 0, 0, 0x55, 0xC4, b'x', 0, 0];
        for v in [0x0006_AD14u32, 0x0034_5E8A, 0x000A_88F5] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        body.extend_from_slice(b"earth\0\0");
        assert_eq!(
            loci_iso6709(&body).as_deref(),
            Some("+52.369293+006.676086+10.535/")
        );
        assert_eq!(loci_iso6709(&body[..12]), None);
    }
}
