//! ISO 6709 point strings, the location format of movies (`©xyz`, Apple's
//! `com.apple.quicktime.location.ISO6709`): "+32.0929+034.8620+028.516/" and the
//! degrees-minutes ("+4043.012-07400.456/") and degrees-minutes-seconds
//! ("+404302.12-0740027.36/") forms, with an optional altitude and CRS suffix.

/// Largest altitude we believe, in metres; beyond it the altitude (only) is dropped.
const MAX_ALTITUDE_M: f64 = 100_000.0;

/// Parses an ISO 6709 point into `(latitude, longitude, altitude in metres)` in decimal
/// degrees. Malformed or out-of-range strings are `None`, and so is exactly (0, 0): writers use
/// "+00.0000+000.0000/" when they have no fix.
pub fn parse(s: &str) -> Option<(f64, f64, Option<f64>)> {
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let s = s.strip_suffix('/').unwrap_or(s);
    // A coordinate reference system may follow ("+12.3+045.6CRSWGS_84/"); WGS 84 is assumed.
    let s = s.find("CRS").map_or(s, |i| &s[..i]);
    let (lat, rest) = component(s)?;
    let (lon, rest) = component(rest)?;
    let alt = if rest.is_empty() {
        None
    } else {
        let (alt, rest) = component(rest)?;
        if !rest.is_empty() {
            return None;
        }
        Some(alt)
    };
    let lat = angle(lat, 2)?;
    let lon = angle(lon, 3)?;
    if lat.abs() > 90.0 || lon.abs() > 180.0 || (lat == 0.0 && lon == 0.0) {
        return None;
    }
    let alt = alt
        .and_then(|a| a.parse::<f64>().ok())
        .filter(|a| a.is_finite() && a.abs() <= MAX_ALTITUDE_M);
    Some((lat, lon, alt))
}

/// Splits off one signed number ("+034.8620") from the front of `s`.
fn component(s: &str) -> Option<(&str, &str)> {
    let first = s.chars().next()?;
    if first != '+' && first != '-' {
        return None;
    }
    let end = s[1..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(s.len(), |i| i + 1);
    Some((&s[..end], &s[end..]))
}

/// A signed angle whose integer part has `deg_digits` digits for degrees (fewer tolerated),
/// `deg_digits + 2` for degrees and minutes, or `deg_digits + 4` for degrees, minutes and
/// seconds; the fraction belongs to the last unit.
fn angle(text: &str, deg_digits: usize) -> Option<f64> {
    let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
    let body = &text[1..];
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = |digits: &str| -> Option<f64> {
        if frac.is_empty() {
            digits.parse().ok()
        } else {
            format!("{digits}.{frac}").parse().ok()
        }
    };
    let n = int.len();
    let degrees = if n <= deg_digits {
        value(int)?
    } else if n == deg_digits + 2 {
        let minutes = value(&int[deg_digits..])?;
        if minutes >= 60.0 {
            return None;
        }
        int[..deg_digits].parse::<f64>().ok()? + minutes / 60.0
    } else if n == deg_digits + 4 {
        let minutes: f64 = int[deg_digits..deg_digits + 2].parse().ok()?;
        let seconds = value(&int[deg_digits + 2..])?;
        if minutes >= 60.0 || seconds >= 60.0 {
            return None;
        }
        int[..deg_digits].parse::<f64>().ok()? + minutes / 60.0 + seconds / 3600.0
    } else {
        return None;
    };
    Some(sign * degrees)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn close(got: Option<(f64, f64, Option<f64>)>, lat: f64, lon: f64, alt: Option<f64>) {
        let (glat, glon, galt) = got.unwrap_or_else(|| panic!("no position, expected {lat},{lon}"));
        assert!((glat - lat).abs() < 1e-6, "lat {glat} != {lat}");
        assert!((glon - lon).abs() < 1e-6, "lon {glon} != {lon}");
        match (galt, alt) {
            (Some(g), Some(a)) => assert!((g - a).abs() < 1e-6, "alt {g} != {a}"),
            (g, a) => assert_eq!(g, a),
        }
    }

    #[test]
    fn decimal_degrees() {
        close(
            parse("+32.0929+034.8620+028.516/"),
            32.0929,
            34.862,
            Some(28.516),
        );
        close(parse("+51.4169-000.0806/"), 51.4169, -0.0806, None);
        close(
            parse("+52.3693+006.6761+10.534988/"),
            52.3693,
            6.6761,
            Some(10.534988),
        );
        close(
            parse("-33.8688+151.2093-005CRSWGS_84/"),
            -33.8688,
            151.2093,
            Some(-5.0),
        );
        close(parse(" +12+045\0"), 12.0, 45.0, None);
    }

    #[test]
    fn minutes_and_seconds() {
        close(
            parse("+4043.0120-07400.4560/"),
            40.0 + 43.012 / 60.0,
            -(74.0 + 0.456 / 60.0),
            None,
        );
        close(
            parse("+404302.12-0740027.36+10/"),
            40.0 + 43.0 / 60.0 + 2.12 / 3600.0,
            -(74.0 + 0.0 / 60.0 + 27.36 / 3600.0),
            Some(10.0),
        );
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "/",
            "+00.0000+000.0000/",
            "+91.0+000.1/",
            "+10.0+180.5/",
            "+4075.0+00000.0/",
            "+407500+0000000/",
            "+123+045/",
            "12.0+045.0/",
            "+12.0",
            "+12.0+045.0+1+2/",
            "+12.0+045.0x/",
            "+.5+1.0/",
            "+1.2.3+4/",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
        // An absurd altitude loses the altitude, not the position.
        close(parse("+12.0+045.0+99999999/"), 12.0, 45.0, None);
    }
}
