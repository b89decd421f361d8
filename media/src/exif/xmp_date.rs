//! The capture date an XMP packet records, for files whose EXIF has no `DateTimeOriginal`
//! (PNG screenshots and exports, edited JPEGs, files tagged by a photo manager).
//!
//! Properties, best first: `exif:DateTimeOriginal`, `photoshop:DateCreated`, `xmp:CreateDate`.
//! Not an XML parser: a property is found by its qualified name in attribute
//! (`xmp:CreateDate="…"`) or element (`<xmp:CreateDate>…</xmp:CreateDate>`) syntax. Unlike the
//! Motion Photo scanner (`video/xmp.rs`), which matches any prefix, the prefix is part of the
//! match here: these local names are not unique across namespaces, and every writer we know uses
//! the conventional prefixes.

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

/// The properties holding a capture date, best first.
const PROPERTIES: &[&str] = &[
    "exif:DateTimeOriginal",
    "photoshop:DateCreated",
    "xmp:CreateDate",
];
/// Longest value we try to read as a date; real ones are at most ~35 characters.
const MAX_VALUE_CHARS: usize = 64;

/// A capture date read from XMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct XmpDate {
    /// The wall clock.
    pub date_time: NaiveDateTime,
    /// Its UTC offset, when the value has one ("Z" is +00:00).
    pub offset: Option<FixedOffset>,
}

/// The capture date of an XMP packet: the first of [`PROPERTIES`] that holds a date with at
/// least hours and minutes. Date-only values ("2021-07-04") are skipped: midnight would be a
/// made-up time of day.
pub(super) fn capture_date(xmp: &str) -> Option<XmpDate> {
    PROPERTIES
        .iter()
        .find_map(|name| property(xmp, name).and_then(parse_date))
}

/// The value of the first occurrence of the qualified property `name` that has a readable value.
/// Entities are not decoded: dates never need them.
pub(super) fn property<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0usize;
    while let Some(found) = text.get(from..)?.find(name) {
        let at = from + found;
        let after = at + name.len();
        from = after;
        let before = at
            .checked_sub(1)
            .and_then(|i| text.as_bytes().get(i))
            .copied();
        // `name` is ASCII, so `after` is a character boundary.
        let rest = text.get(after..)?.trim_start();
        match before {
            Some(b'<') => {
                // `<xmp:CreateDate>value</xmp:CreateDate>`; `<xmp:CreateDateX>` and `<… />` are
                // something else.
                if let Some(body) = rest.strip_prefix('>') {
                    let end = body.find('<')?;
                    return Some(body[..end].trim());
                }
            }
            Some(b) if b.is_ascii_whitespace() => {
                // `xmp:CreateDate="value"` (either quote).
                if let Some(value) = rest.strip_prefix('=').map(str::trim_start)
                    && let Some(quote) = value.chars().next().filter(|&q| q == '"' || q == '\'')
                {
                    let inner = &value[1..];
                    let end = inner.find(quote)?;
                    return Some(inner[..end].trim());
                }
            }
            _ => {}
        }
    }
    None
}

/// ISO 8601 as XMP writes it: `YYYY-MM-DDThh:mm[:ss[.s…]][Z|±hh:mm]`. Also accepts EXIF-style
/// colons in the date and a space instead of the "T", which some writers produce.
pub(super) fn parse_date(value: &str) -> Option<XmpDate> {
    let value = value.trim();
    if value.len() > MAX_VALUE_CHARS || !value.is_ascii() {
        return None;
    }
    let (date, time) = value.split_once(['T', ' '])?;
    if date.len() != 10 {
        return None;
    }
    let date = NaiveDate::parse_from_str(&date.replace(':', "-"), "%Y-%m-%d").ok()?;
    let (clock, zone) = match time.find(['Z', 'z', '+', '-']) {
        Some(i) => (&time[..i], Some(&time[i..])),
        None => (time, None),
    };
    let clock = NaiveTime::parse_from_str(clock, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(clock, "%H:%M"))
        .ok()?;
    // A zone that is present but unreadable makes the whole value suspect.
    let offset = match zone {
        None => None,
        Some("Z" | "z") => Some(FixedOffset::east_opt(0)?),
        Some(text) => Some(super::parse_offset(text)?),
    };
    Some(XmpDate {
        date_time: date.and_time(clock),
        offset,
    })
}
