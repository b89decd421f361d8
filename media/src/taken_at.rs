//! Capture-time resolution: turns the camera's wall-clock `DateTimeOriginal` into an instant,
//! using the best evidence available (the EXIF offset, else the time zone at the GPS position,
//! else nothing) and says which evidence was used.

use chrono::offset::LocalResult;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Which evidence fixed the instant of a [`TakenAt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakenAtSource {
    /// `DateTimeOriginal` + `OffsetTimeOriginal` from EXIF.
    ExifOffset,
    /// `DateTimeOriginal` read in the IANA zone found at the photo's GPS position.
    GpsTimezone,
    /// Only the wall clock is known; the instant is that wall clock read as if it were UTC.
    LocalTime,
    /// A container's UTC timestamp (MP4/MOV `mvhd`, Matroska `DateUTC`): the instant is exact,
    /// the local offset unknown (no GPS to find the zone).
    ContainerUtc,
}

/// When a photo was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenAt {
    /// The instant; for [`TakenAtSource::LocalTime`] the wall clock read as if it were UTC.
    pub instant: DateTime<Utc>,
    /// UTC offset in force at the capture, in minutes; `None` for `LocalTime`.
    pub offset_minutes: Option<i16>,
    /// The evidence used.
    pub source: TakenAtSource,
}

/// How far back we look for the offset in force before a spring-forward gap. Real gaps are at
/// most an hour or two; a day covers every zone change in the tz database.
const GAP_SEARCH: Duration = Duration::hours(26);
const GAP_STEP: Duration = Duration::minutes(15);

/// Resolves the capture instant.
///
/// Rule: `local` + `offset` → [`TakenAtSource::ExifOffset`]; else `local` in the IANA zone `tz`
/// (chrono-tz; a DST-ambiguous wall clock takes the earlier instant, a wall clock inside a
/// spring-forward gap takes the offset in force just before the gap) →
/// [`TakenAtSource::GpsTimezone`]; else [`TakenAtSource::LocalTime`]. An unknown `tz` name falls
/// through to `LocalTime`. `None` without `local`, and for implausible dates: before 1900, or more
/// than one day after `now` (a camera clock set in the future).
pub fn resolve(
    local: Option<NaiveDateTime>,
    offset: Option<FixedOffset>,
    tz: Option<&str>,
    now: DateTime<Utc>,
) -> Option<TakenAt> {
    let local = local?;
    let resolved = if let Some(offset) = offset {
        with_offset(local, offset, TakenAtSource::ExifOffset)
    } else if let Some(zone) = tz.and_then(|name| name.parse::<Tz>().ok()) {
        with_offset(
            local,
            offset_in_zone(local, zone),
            TakenAtSource::GpsTimezone,
        )
    } else {
        TakenAt {
            instant: local.and_utc(),
            offset_minutes: None,
            source: TakenAtSource::LocalTime,
        }
    };
    plausible(resolved.instant, now).then_some(resolved)
}

/// Resolves a capture instant known in UTC (a video container's creation time): shown at the
/// zone of the GPS position when there is one ([`TakenAtSource::GpsTimezone`], with that zone's
/// offset at that instant), else [`TakenAtSource::ContainerUtc`] with no offset. `None` for
/// implausible dates (see [`resolve`]).
pub fn resolve_utc(
    instant: DateTime<Utc>,
    tz: Option<&str>,
    now: DateTime<Utc>,
) -> Option<TakenAt> {
    let resolved = match tz.and_then(|name| name.parse::<Tz>().ok()) {
        Some(zone) => TakenAt {
            instant,
            offset_minutes: i16::try_from(
                zone.offset_from_utc_datetime(&instant.naive_utc())
                    .fix()
                    .local_minus_utc()
                    / 60,
            )
            .ok(),
            source: TakenAtSource::GpsTimezone,
        },
        None => TakenAt {
            instant,
            offset_minutes: None,
            source: TakenAtSource::ContainerUtc,
        },
    };
    plausible(resolved.instant, now).then_some(resolved)
}

/// Resolves a wall clock that carries its own offset (Apple's QuickTime `creationdate`).
pub fn resolve_fixed(at: DateTime<FixedOffset>, now: DateTime<Utc>) -> Option<TakenAt> {
    resolve(Some(at.naive_local()), Some(*at.offset()), None, now)
}

fn with_offset(local: NaiveDateTime, offset: FixedOffset, source: TakenAtSource) -> TakenAt {
    let seconds = offset.local_minus_utc();
    TakenAt {
        instant: (local - Duration::seconds(i64::from(seconds))).and_utc(),
        // |offset| < 24 h, so the minutes always fit an i16.
        offset_minutes: i16::try_from(seconds / 60).ok(),
        source,
    }
}

/// The UTC offset that applies to wall clock `local` in `zone`.
fn offset_in_zone(local: NaiveDateTime, zone: Tz) -> FixedOffset {
    match zone.offset_from_local_datetime(&local) {
        LocalResult::Single(o) => o.fix(),
        // Fall-back overlap: the first occurrence (earlier instant) has the larger offset.
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.fix(), b.fix());
            if a.local_minus_utc() >= b.local_minus_utc() {
                a
            } else {
                b
            }
        }
        LocalResult::None => offset_before_gap(local, zone),
    }
}

/// Walks back from a nonexistent wall clock to the last valid one: its offset is the one in
/// force just before the spring-forward gap.
fn offset_before_gap(local: NaiveDateTime, zone: Tz) -> FixedOffset {
    let mut probe = local;
    let earliest = local - GAP_SEARCH;
    while probe > earliest {
        probe -= GAP_STEP;
        if let Some(o) = zone.offset_from_local_datetime(&probe).earliest() {
            return o.fix();
        }
    }
    // Unreachable with the tz database; fall back to the zone's offset at that instant read as UTC.
    zone.offset_from_utc_datetime(&local).fix()
}

fn plausible(instant: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let floor = NaiveDate::from_ymd_opt(1900, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    floor.is_some_and(|floor| instant >= floor) && instant <= now + Duration::days(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }
    fn utc(s: &str) -> DateTime<Utc> {
        dt(s).and_utc()
    }
    fn now() -> DateTime<Utc> {
        utc("2025-06-01 12:00:00")
    }

    #[test]
    fn exif_offset_wins() {
        let off = FixedOffset::east_opt(2 * 3600).unwrap();
        let t = resolve(
            Some(dt("2021-07-04 18:22:11")),
            Some(off),
            Some("America/New_York"),
            now(),
        )
        .unwrap();
        assert_eq!(t.instant, utc("2021-07-04 16:22:11"));
        assert_eq!(t.offset_minutes, Some(120));
        assert_eq!(t.source, TakenAtSource::ExifOffset);
    }

    #[test]
    fn negative_and_half_hour_offsets() {
        let off = FixedOffset::west_opt(5 * 3600).unwrap();
        let t = resolve(Some(dt("2021-04-11 15:47:53")), Some(off), None, now()).unwrap();
        assert_eq!(t.instant, utc("2021-04-11 20:47:53"));
        assert_eq!(t.offset_minutes, Some(-300));
        let off = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        let t = resolve(Some(dt("2021-04-11 15:47:53")), Some(off), None, now()).unwrap();
        assert_eq!(t.offset_minutes, Some(330));
    }

    #[test]
    fn gps_timezone_summer_and_winter() {
        let t = resolve(
            Some(dt("2021-07-04 18:22:11")),
            None,
            Some("Europe/Paris"),
            now(),
        )
        .unwrap();
        assert_eq!(t.instant, utc("2021-07-04 16:22:11"));
        assert_eq!(t.offset_minutes, Some(120));
        assert_eq!(t.source, TakenAtSource::GpsTimezone);
        let t = resolve(
            Some(dt("2021-01-04 18:22:11")),
            None,
            Some("Europe/Paris"),
            now(),
        )
        .unwrap();
        assert_eq!(t.instant, utc("2021-01-04 17:22:11"));
        assert_eq!(t.offset_minutes, Some(60));
    }

    #[test]
    fn dst_ambiguous_takes_the_earlier_instant() {
        // 2021-10-31 02:30 happens twice in Paris: first at +02:00 (00:30 UTC), then at +01:00.
        let t = resolve(
            Some(dt("2021-10-31 02:30:00")),
            None,
            Some("Europe/Paris"),
            now(),
        )
        .unwrap();
        assert_eq!(t.instant, utc("2021-10-31 00:30:00"));
        assert_eq!(t.offset_minutes, Some(120));
    }

    #[test]
    fn dst_gap_uses_the_offset_before_the_gap() {
        // 2021-03-28 02:30 does not exist in Paris; before the gap the offset was +01:00.
        let t = resolve(
            Some(dt("2021-03-28 02:30:00")),
            None,
            Some("Europe/Paris"),
            now(),
        )
        .unwrap();
        assert_eq!(t.instant, utc("2021-03-28 01:30:00"));
        assert_eq!(t.offset_minutes, Some(60));
        assert_eq!(t.source, TakenAtSource::GpsTimezone);
        // New York springs forward at 02:00 local from -05:00.
        let t = resolve(
            Some(dt("2021-03-14 02:15:00")),
            None,
            Some("America/New_York"),
            now(),
        )
        .unwrap();
        assert_eq!(t.instant, utc("2021-03-14 07:15:00"));
        assert_eq!(t.offset_minutes, Some(-300));
    }

    #[test]
    fn local_time_without_evidence_or_with_unknown_zone() {
        for tz in [None, Some("Not/AZone"), Some("")] {
            let t = resolve(Some(dt("2008-10-22 16:28:39")), None, tz, now()).unwrap();
            assert_eq!(t.instant, utc("2008-10-22 16:28:39"));
            assert_eq!(t.offset_minutes, None);
            assert_eq!(t.source, TakenAtSource::LocalTime);
        }
    }

    #[test]
    fn utc_instants_take_the_gps_zone_or_stay_utc() {
        let t = resolve_utc(utc("2020-11-20 14:04:36"), Some("Europe/Amsterdam"), now()).unwrap();
        assert_eq!(t.instant, utc("2020-11-20 14:04:36"));
        assert_eq!(t.offset_minutes, Some(60));
        assert_eq!(t.source, TakenAtSource::GpsTimezone);
        let t = resolve_utc(utc("2005-10-28 17:36:40"), None, now()).unwrap();
        assert_eq!(t.offset_minutes, None);
        assert_eq!(t.source, TakenAtSource::ContainerUtc);
        assert_eq!(resolve_utc(utc("1899-01-01 00:00:00"), None, now()), None);
        let apple =
            DateTime::parse_from_str("2019-07-24T11:25:40+0300", "%Y-%m-%dT%H:%M:%S%z").unwrap();
        let t = resolve_fixed(apple, now()).unwrap();
        assert_eq!(t.instant, utc("2019-07-24 08:25:40"));
        assert_eq!(t.offset_minutes, Some(180));
        assert_eq!(t.source, TakenAtSource::ExifOffset);
    }

    #[test]
    fn implausible_dates_are_none() {
        assert_eq!(resolve(None, None, Some("Europe/Paris"), now()), None);
        assert_eq!(
            resolve(Some(dt("1899-12-31 23:59:59")), None, None, now()),
            None
        );
        assert_eq!(
            resolve(Some(dt("2026-11-24 14:41:16")), None, None, now()),
            None
        );
        // Up to one day ahead is tolerated (time zones, slightly fast clocks).
        assert!(resolve(Some(dt("2025-06-02 11:00:00")), None, None, now()).is_some());
        assert_eq!(
            resolve(Some(dt("2025-06-02 13:00:00")), None, None, now()),
            None
        );
        assert!(resolve(Some(dt("1900-01-01 00:00:00")), None, None, now()).is_some());
    }
}
