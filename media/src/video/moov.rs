//! The capture facts inside a loaded `moov` box: `mvhd` creation time and duration and Apple's
//! QuickTime metadata (`meta` with `keys` + `ilst`), merged with the user data read by
//! [`super::udta`].
//!
//! Everything is parsed from an in-memory slice. A child box whose size lies ends the walk of its
//! parent and the rest is skipped: the movie may still play, so damaged metadata is never an
//! error. Depth is bounded because only fixed paths (at most four levels) are followed.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};

use super::atoms::{DataValue, be_u32, be_u64, child, children, data_value, meta_children};
use super::iso6709;
use super::udta::{ParsedDate, UserData, parse_date};

/// Seconds from the QuickTime epoch (1904-01-01 UTC) to the Unix epoch.
const MAC_TO_UNIX_SECS: u64 = 2_082_844_800;
/// Keys read from one `keys` box at most (Apple writes about a dozen).
const MAX_KEYS: usize = 4096;

/// Capture facts from a movie's `moov` box. Every field is optional; absent or nonsensical
/// values are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MovieMeta {
    /// `mvhd` creation time (UTC). Zero and values exactly at the 1904 or 1970 epoch are `None`.
    pub mvhd_creation: Option<DateTime<Utc>>,
    /// `mvhd` duration in seconds, when the time scale is non-zero.
    pub duration_s: Option<f64>,
    /// Apple `com.apple.quicktime.creationdate`: local capture time with its UTC offset.
    pub apple_creation_date: Option<DateTime<FixedOffset>>,
    /// `udta/©day`, 3GPP `udta/date` or iTunes `udta/meta/ilst/©day`, when it has an offset.
    pub day: Option<DateTime<FixedOffset>>,
    /// The same date when it is written without an offset (wall-clock time of unknown zone).
    pub day_local: Option<NaiveDateTime>,
    /// Raw ISO 6709 location (Apple key, `©xyz`, or built from a 3GPP `loci` box), sanitised.
    pub location: Option<String>,
    /// Apple `com.apple.quicktime.content.identifier`: pairs a Live Photo video with its still.
    pub content_identifier: Option<String>,
    /// Camera maker (Apple key or `©mak`).
    pub make: Option<String>,
    /// Camera model (Apple key or `©mod`).
    pub model: Option<String>,
    /// Apple `com.apple.quicktime.location.accuracy.horizontal`, in metres.
    pub horizontal_accuracy_m: Option<f64>,
}

/// Parses the payload of a `moov` box.
pub(super) fn parse(moov: &[u8]) -> MovieMeta {
    let mut meta = MovieMeta::default();
    let mut keyed = Vec::new();
    let mut udta = UserData::default();
    for c in children(moov) {
        match &c.fourcc {
            b"mvhd" => parse_mvhd(c.body, &mut meta),
            b"meta" => keyed.extend(quicktime_keys(c.body)),
            b"udta" => udta.read(c.body),
            _ => {}
        }
    }
    let key = |name: &str| {
        keyed
            .iter()
            .find(|(k, _)| k == &format!("com.apple.quicktime.{name}"))
            .map(|(_, v)| v)
    };
    meta.apple_creation_date =
        key("creationdate")
            .and_then(DataValue::text)
            .and_then(|s| match parse_date(&s)? {
                ParsedDate::Offset(d) => Some(d),
                ParsedDate::Local(_) => None,
            });
    meta.content_identifier = key("content.identifier").and_then(DataValue::text);
    meta.make = key("make").and_then(DataValue::text).or(udta.make);
    meta.model = key("model").and_then(DataValue::text).or(udta.model);
    meta.horizontal_accuracy_m = key("location.accuracy.horizontal")
        .and_then(DataValue::number)
        .filter(|m| m.is_finite() && *m >= 0.0);
    match udta.day.as_deref().and_then(parse_date) {
        Some(ParsedDate::Offset(d)) => meta.day = Some(d),
        Some(ParsedDate::Local(d)) => meta.day_local = Some(d),
        None => {}
    }
    let candidates: Vec<String> = key("location.ISO6709")
        .and_then(DataValue::text)
        .into_iter()
        .chain(udta.xyz)
        .chain(udta.loci)
        .collect();
    // Prefer the first location that is a real position over a (0, 0) placeholder.
    meta.location = candidates
        .iter()
        .find(|c| iso6709::parse(c).is_some())
        .or(candidates.first())
        .cloned();
    meta
}

fn parse_mvhd(body: &[u8], meta: &mut MovieMeta) {
    let (creation, timescale, duration) = match body.first() {
        Some(0) => (
            be_u32(body, 4).map(u64::from),
            be_u32(body, 12),
            be_u32(body, 16).map(u64::from),
        ),
        Some(1) => (be_u64(body, 4), be_u32(body, 20), be_u64(body, 24)),
        _ => return,
    };
    meta.mvhd_creation = creation.and_then(mac_time);
    meta.duration_s = match (timescale, duration) {
        // u64::MAX duration means "unknown" in version 1 boxes.
        (Some(scale), Some(d)) if scale > 0 && d != u64::MAX && d != u64::from(u32::MAX) => {
            Some(d as f64 / f64::from(scale))
        }
        _ => None,
    };
}

/// QuickTime seconds since 1904 → UTC. Zero, and values landing exactly on the 1904 or 1970
/// epoch, are placeholders written by devices without a clock, not dates.
fn mac_time(secs: u64) -> Option<DateTime<Utc>> {
    if secs == 0 || secs == MAC_TO_UNIX_SECS {
        return None;
    }
    let unix = i64::try_from(secs)
        .ok()?
        .checked_sub(MAC_TO_UNIX_SECS as i64)?;
    DateTime::from_timestamp(unix, 0)
}

/// `(key name, value)` pairs of a QuickTime `meta` box (`keys` names, `ilst` values by index).
fn quicktime_keys(meta: &[u8]) -> Vec<(String, DataValue)> {
    let body = meta_children(meta);
    let (Some(keys), Some(ilst)) = (child(body, b"keys"), child(body, b"ilst")) else {
        return Vec::new();
    };
    let names = key_names(keys);
    children(ilst)
        .filter_map(|item| {
            let index = usize::try_from(u32::from_be_bytes(item.fourcc)).ok()?;
            let name = names.get(index.checked_sub(1)?)?.clone();
            Some((name, data_value(child(item.body, b"data")?)?))
        })
        .collect()
}

fn key_names(keys: &[u8]) -> Vec<String> {
    let count = be_u32(keys, 4)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut names = Vec::new();
    let mut pos = 8usize;
    for _ in 0..count.min(MAX_KEYS) {
        let Some(size) = be_u32(keys, pos).and_then(|n| usize::try_from(n).ok()) else {
            break;
        };
        let Some(entry) = pos.checked_add(size).and_then(|end| keys.get(pos..end)) else {
            break;
        };
        if size < 8 {
            break;
        }
        names.push(String::from_utf8_lossy(&entry[8..]).into_owned());
        pos += size;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_epoch_placeholders_are_not_dates() {
        assert_eq!(mac_time(0), None);
        assert_eq!(mac_time(MAC_TO_UNIX_SECS), None);
        assert_eq!(mac_time(u64::MAX), None);
        assert_eq!(
            mac_time(MAC_TO_UNIX_SECS + 1).map(|d| d.timestamp()),
            Some(1)
        );
    }

    #[test]
    fn data_atoms_decode() {
        let atom = |kind: u32, value: &[u8]| {
            let mut v = kind.to_be_bytes().to_vec();
            v.extend_from_slice(&[0; 4]);
            v.extend_from_slice(value);
            data_value(&v)
        };
        assert_eq!(atom(1, b"Apple\0"), Some(DataValue::Text("Apple".into())));
        assert_eq!(
            atom(23, &3.5f32.to_be_bytes()),
            Some(DataValue::Number(3.5))
        );
        assert_eq!(atom(21, &[0xFF, 0xFE]), Some(DataValue::Number(-2.0)));
        assert_eq!(atom(22, &[0xFF, 0xFE]), Some(DataValue::Number(65534.0)));
        assert_eq!(atom(23, &[1]), None);
        assert_eq!(atom(99, b"x"), None);
        assert_eq!(data_value(&[0, 0, 0]), None);
    }
}
