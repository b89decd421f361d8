//! GPS fix from the EXIF GPS IFD: degrees/minutes/seconds rationals plus hemisphere refs,
//! altitude and horizontal accuracy, with the validation cameras make necessary.

use exif::{Exif, Tag, Value};

use super::{ascii, primary};

/// A GPS position read from EXIF.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpsFix {
    /// Degrees north (negative: south), -90..=90.
    pub latitude: f64,
    /// Degrees east (negative: west), -180..=180.
    pub longitude: f64,
    /// `GPSHPositioningError`: horizontal accuracy in metres, when given.
    pub accuracy_m: Option<f64>,
    /// `GPSAltitude` in metres above sea level (negative below), when given.
    pub altitude_m: Option<f64>,
}

/// The fix, or `None` when either coordinate is missing, unreadable or out of range.
///
/// Exactly (0, 0) is treated as "no fix": phones write it as a placeholder (with or without the
/// N/E refs) and it would otherwise geolocate into the Gulf of Guinea and the Etc/GMT zone.
pub(super) fn gps_fix(exif: &Exif) -> Option<GpsFix> {
    let latitude = coordinate(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S', 90.0)?;
    let longitude = coordinate(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W', 180.0)?;
    if latitude == 0.0 && longitude == 0.0 {
        return None;
    }
    Some(GpsFix {
        latitude,
        longitude,
        accuracy_m: positive_scalar(exif, Tag::GPSHPositioningError),
        altitude_m: altitude(exif),
    })
}

fn coordinate(exif: &Exif, tag: Tag, ref_tag: Tag, negative_ref: u8, limit: f64) -> Option<f64> {
    let degrees = dms_to_degrees(&primary(exif, tag)?.value)?;
    let reference = ascii(exif, ref_tag).unwrap_or_default();
    let sign = match reference.trim().as_bytes().first() {
        Some(r) if r.to_ascii_uppercase() == negative_ref => -1.0,
        _ => 1.0,
    };
    let value = sign * degrees;
    (value.is_finite() && value.abs() <= limit).then_some(value)
}

/// Degrees from `[deg, min, sec]` rationals (fewer components are allowed), or from the
/// "52,00000,50,00000,34,01180"-style strings some writers produce (read the way exiftool reads
/// them: the first three numbers are degrees, minutes, seconds).
fn dms_to_degrees(value: &Value) -> Option<f64> {
    let parts: Vec<f64> = match value {
        Value::Rational(v) => v
            .iter()
            .map(|r| ratio(f64::from(r.num), f64::from(r.denom)))
            .collect::<Option<_>>()?,
        Value::SRational(v) => v
            .iter()
            .map(|r| ratio(f64::from(r.num), f64::from(r.denom)))
            .collect::<Option<_>>()?,
        Value::Double(v) => v.clone(),
        Value::Float(v) => v.iter().map(|x| f64::from(*x)).collect(),
        Value::Ascii(v) => numbers_in(&String::from_utf8_lossy(v.first()?)),
        _ => return None,
    };
    let (d, m, s) = match parts.as_slice() {
        [] => return None,
        [d] => (*d, 0.0, 0.0),
        [d, m] => (*d, *m, 0.0),
        [d, m, s, ..] => (*d, *m, *s),
    };
    // Minutes and seconds are non-negative; the hemisphere comes from the Ref tag.
    if d < 0.0 || !(0.0..60.0).contains(&m) || !(0.0..60.0).contains(&s) {
        return None;
    }
    let degrees = d + m / 60.0 + s / 3600.0;
    degrees.is_finite().then_some(degrees)
}

fn ratio(num: f64, denom: f64) -> Option<f64> {
    (denom != 0.0).then(|| num / denom)
}

fn numbers_in(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn scalar(exif: &Exif, tag: Tag) -> Option<f64> {
    let value = match &primary(exif, tag)?.value {
        Value::Rational(v) => ratio(f64::from(v.first()?.num), f64::from(v.first()?.denom))?,
        Value::SRational(v) => ratio(f64::from(v.first()?.num), f64::from(v.first()?.denom))?,
        other => f64::from(other.get_uint(0)?),
    };
    value.is_finite().then_some(value)
}

fn positive_scalar(exif: &Exif, tag: Tag) -> Option<f64> {
    scalar(exif, tag).filter(|v| *v >= 0.0)
}

/// Altitude with `GPSAltitudeRef` 1 meaning below sea level; values beyond ±100 km are junk.
fn altitude(exif: &Exif) -> Option<f64> {
    let magnitude = positive_scalar(exif, Tag::GPSAltitude)?;
    let below = primary(exif, Tag::GPSAltitudeRef).and_then(|f| f.value.get_uint(0)) == Some(1);
    let value = if below { -magnitude } else { magnitude };
    (value.abs() <= 100_000.0).then_some(value)
}
