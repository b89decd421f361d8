//! A GPS fix far from any town (desert, open sea, Antarctica) keeps its location: the fix is
//! extracted, the time zone is known (so the wall clock resolves to an instant), and no
//! far-away town is named.

use chrono::{NaiveDate, TimeZone, Utc};

use super::super::extract;
use crate::geocode;
use crate::taken_at::{self, TakenAtSource};

/// (fixture, latitude, longitude, the zone tzf-rs 2.3.0 gives). The open Atlantic is covered by
/// the data's own nautical zones; `geocode::nautical_zone` only fills gaps in the polygons.
const FAR_FIXES: &[(&str, f64, f64, &str)] = &[
    ("gps_sahara.jpg", 23.4162, 25.6628, "Africa/Cairo"),
    ("gps_mid_atlantic.jpg", 30.0, -40.0, "Etc/GMT+3"),
    ("gps_antarctica.jpg", -80.0, 30.0, "Antarctica/Syowa"),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn far_fixes_are_extracted_zoned_and_resolved() {
    let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let wall = NaiveDate::from_ymd_opt(2022, 3, 14)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    for &(name, lat, lon, zone) in FAR_FIXES {
        let facts = extract(&fixture(name)).unwrap();
        let gps = facts.gps.unwrap_or_else(|| panic!("{name}: no GPS fix"));
        assert!((gps.latitude - lat).abs() < 1e-4, "{name}: {gps:?}");
        assert!((gps.longitude - lon).abs() < 1e-4, "{name}: {gps:?}");
        assert_eq!(facts.date_time_original, Some(wall), "{name}");
        assert_eq!(facts.offset_time_original, None, "{name}");

        let tz = geocode::timezone(gps.latitude, gps.longitude);
        assert_eq!(tz.as_deref(), Some(zone), "{name}");

        // Nothing within MAX_DISTANCE_KM: no place is named, although a nearest one exists.
        assert_eq!(
            geocode::reverse(gps.latitude, gps.longitude),
            None,
            "{name}"
        );
        let nearest = geocode::nearest(gps.latitude, gps.longitude).unwrap();
        assert!(
            nearest.distance_km > geocode::MAX_DISTANCE_KM,
            "{name}: {nearest:?}"
        );

        let taken = taken_at::resolve(facts.date_time_original, None, tz.as_deref(), now)
            .unwrap_or_else(|| panic!("{name}: unresolved"));
        assert_eq!(taken.source, TakenAtSource::GpsTimezone, "{name}");
        let offset = taken
            .offset_minutes
            .unwrap_or_else(|| panic!("{name}: no offset"));
        assert_eq!(
            taken.instant,
            (wall - chrono::Duration::minutes(i64::from(offset))).and_utc(),
            "{name}"
        );
    }
}

#[test]
fn nautical_zones_follow_the_tz_database_sign() {
    let cases = [
        (-40.0, "Etc/GMT+3"),
        (0.0, "Etc/GMT"),
        (-7.4, "Etc/GMT"),
        (7.6, "Etc/GMT-1"),
        (135.0, "Etc/GMT-9"),
        (180.0, "Etc/GMT-12"),
        (-180.0, "Etc/GMT+12"),
    ];
    for (lon, zone) in cases {
        assert_eq!(geocode::nautical_zone(lon).as_deref(), Some(zone), "{lon}");
    }
    assert_eq!(geocode::nautical_zone(f64::NAN), None);
    assert_eq!(geocode::nautical_zone(181.0), None);
    // Every name is one chrono-tz knows, so taken_at can use it; -40° is UTC−3.
    for lon in (-180..=180).step_by(15) {
        let name = geocode::nautical_zone(f64::from(lon)).unwrap();
        assert!(name.parse::<chrono_tz::Tz>().is_ok(), "{name}");
    }
    let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let wall = NaiveDate::from_ymd_opt(2022, 3, 14)
        .unwrap()
        .and_hms_opt(12, 0, 0);
    let taken = taken_at::resolve(wall, None, Some("Etc/GMT+3"), now).unwrap();
    assert_eq!(taken.offset_minutes, Some(-180));
}
