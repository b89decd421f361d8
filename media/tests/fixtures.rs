//! Integration tests over the committed fixtures (`tests/fixtures/`): rendering, EXIF against
//! exiftool's reference values (`expected.json`), hostile inputs, hashing and geocoding.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic: a panic is a failed test

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

use chrono::{DateTime, Utc};
use common::{check_renditions, fixtures_dir, format_from_name, sniff};
use serde::Deserialize;
use timeline_media::thumbnail::{Limits, ThumbnailError, render};
use timeline_media::{ImageFormat, exif, geocode, hash, taken_at};

/// One entry of `expected.json` (exiftool's names for the EXIF values).
#[derive(Debug, Deserialize)]
struct Expected {
    mime: String,
    sha256: String,
    #[serde(rename = "GPSLatitude")]
    gps_latitude: Option<f64>,
    #[serde(rename = "GPSLongitude")]
    gps_longitude: Option<f64>,
    #[serde(rename = "DateTimeOriginal")]
    date_time_original: Option<String>,
    #[serde(rename = "OffsetTimeOriginal")]
    offset_time_original: Option<String>,
    #[serde(rename = "Orientation")]
    orientation: Option<u16>,
    #[serde(rename = "Make")]
    make: Option<String>,
    #[serde(rename = "Model")]
    model: Option<String>,
    display_width: u32,
    display_height: u32,
}

#[derive(Debug, Deserialize)]
struct ExpectedFile {
    files: BTreeMap<String, Expected>,
}

fn expected() -> BTreeMap<String, Expected> {
    let text = fs::read_to_string(fixtures_dir().join("expected.json")).unwrap();
    serde_json::from_str::<ExpectedFile>(&text).unwrap().files
}

fn read(name: &str) -> Vec<u8> {
    fs::read(fixtures_dir().join(name)).unwrap()
}

#[test]
fn every_good_fixture_renders_upright_at_the_right_sizes() {
    for (name, want) in expected() {
        let bytes = read(&name);
        let format = sniff(&bytes).unwrap();
        assert_eq!(ImageFormat::from_mime(&want.mime), Some(format), "{name}");
        let facts = exif::extract(&bytes).unwrap();
        let t = render(&bytes, format, facts.orientation, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_renditions(&name, &t, (want.display_width, want.display_height));
    }
}

#[test]
fn exif_matches_exiftool() {
    for (name, want) in expected() {
        let facts = exif::extract(&read(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The reference is exiftool's EXIF; a date found in XMP instead is checked below.
        let from_exif = facts.date_source != Some(exif::DateSource::Xmp);
        let dto = facts
            .date_time_original
            .filter(|_| from_exif)
            .map(|d| d.format("%Y:%m:%d %H:%M:%S").to_string());
        assert_eq!(dto, want.date_time_original, "{name}: DateTimeOriginal");
        let offset = facts
            .offset_time_original
            .filter(|_| from_exif)
            .map(|o| o.to_string());
        assert_eq!(
            offset, want.offset_time_original,
            "{name}: OffsetTimeOriginal"
        );
        assert_eq!(facts.orientation, want.orientation, "{name}: Orientation");
        assert_eq!(facts.make, want.make, "{name}: Make");
        assert_eq!(facts.model, want.model, "{name}: Model");
        match (want.gps_latitude, want.gps_longitude) {
            // exiftool reports the (0, 0) placeholder; we deliberately treat it as "no fix".
            (Some(lat), Some(lon)) if lat == 0.0 && lon == 0.0 => {
                assert_eq!(facts.gps, None, "{name}")
            }
            (Some(lat), Some(lon)) => {
                let gps = facts.gps.unwrap_or_else(|| panic!("{name}: no GPS"));
                assert!(
                    (gps.latitude - lat).abs() < 1e-5,
                    "{name}: lat {} vs {lat}",
                    gps.latitude
                );
                assert!(
                    (gps.longitude - lon).abs() < 1e-5,
                    "{name}: lon {} vs {lon}",
                    gps.longitude
                );
            }
            _ => assert_eq!(facts.gps, None, "{name}: GPS"),
        }
        assert!(facts.metadata.is_object(), "{name}");
        assert!(
            serde_json::to_string(&facts.metadata).unwrap().len() <= 70 * 1024,
            "{name}"
        );
    }
}

#[test]
fn metadata_keeps_other_tags_and_drops_blobs() {
    let facts = exif::extract(&read("DSCN0010.jpg")).unwrap();
    let meta = facts.metadata.as_object().unwrap();
    assert!(meta.contains_key("ExposureTime"), "{meta:?}");
    assert!(!meta.contains_key("MakerNote"));
    assert!(!meta.contains_key("Make"), "typed fields are not repeated");
    assert!(
        meta.values()
            .all(|v| v.as_str().is_some_and(|s| !s.chars().any(char::is_control)))
    );
}

#[test]
fn offset_time_original_resolves_the_instant() {
    let facts = exif::extract(&read("HMD_Nokia_8.3_5G.jpg")).unwrap();
    let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let t = taken_at::resolve(
        facts.date_time_original,
        facts.offset_time_original,
        None,
        now,
    )
    .unwrap();
    assert_eq!(t.source, taken_at::TakenAtSource::ExifOffset);
    assert_eq!(t.offset_minutes, Some(180));
    assert_eq!(t.instant.to_rfc3339(), "2022-08-14T11:12:31+00:00");
}

#[test]
fn gps_fix_geocodes_and_gives_the_zone() {
    let facts = exif::extract(&read("FujiFilm FinePixS2Pro.jpg")).unwrap();
    let gps = facts.gps.unwrap();
    let place = geocode::reverse(gps.latitude, gps.longitude).unwrap();
    assert_eq!(place.country_code, "FR");
    assert_eq!(
        geocode::timezone(gps.latitude, gps.longitude).as_deref(),
        Some("Europe/Paris")
    );
    assert_eq!(geocode::reverse(0.0, 0.0), None);
    let kodak = exif::extract(&read("Kodak_CX7530.jpg"))
        .unwrap()
        .gps
        .unwrap();
    assert!(kodak.latitude < 0.0, "southern hemisphere");
    assert_eq!(
        geocode::reverse(kodak.latitude, kodak.longitude)
            .unwrap()
            .country_code,
        "KE"
    );
}

#[test]
fn sha256_matches_the_manifest() {
    for (name, want) in expected() {
        assert_eq!(hash::sha256_hex(&read(&name)), want.sha256, "{name}");
    }
}

/// Mean absolute difference of two same-size RGB renditions.
fn mean_diff(a: &[u8], b: &[u8]) -> f64 {
    let a = image::load_from_memory(a).unwrap().to_rgb8();
    let b = image::load_from_memory(b).unwrap().to_rgb8();
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn orientation_fixtures_all_look_like_orientation_one() {
    let render_file = |name: &str| {
        let bytes = read(name);
        let facts = exif::extract(&bytes).unwrap();
        render(
            &bytes,
            ImageFormat::Jpeg,
            facts.orientation,
            &Limits::default(),
        )
        .unwrap()
    };
    let reference = render_file("landscape_1.jpg");
    for name in ["landscape_5.jpg", "landscape_6.jpg", "landscape_8.jpg"] {
        let t = render_file(name);
        assert_eq!((t.display_width, t.display_height), (600, 450), "{name}");
        let diff = mean_diff(&reference.preview.bytes, &t.preview.bytes);
        assert!(
            diff < 12.0,
            "{name}: preview differs from landscape_1 by {diff}"
        );
        // Applying the wrong orientation must be clearly visible, or the check above means nothing.
        let wrong = render(&read(name), ImageFormat::Jpeg, Some(1), &Limits::default()).unwrap();
        assert_eq!((wrong.display_width, wrong.display_height), (450, 600));
    }
    let mirrored = render(
        &read("landscape_1.jpg"),
        ImageFormat::Jpeg,
        Some(2),
        &Limits::default(),
    )
    .unwrap();
    assert!(mean_diff(&reference.preview.bytes, &mirrored.preview.bytes) > 20.0);
}

#[test]
fn samsung_orientation_six_swaps_and_null_island_is_no_fix() {
    let bytes = read("Samsung GT-I9000 (Galaxy S).jpg");
    let facts = exif::extract(&bytes).unwrap();
    assert_eq!(facts.orientation, Some(6));
    assert_eq!(facts.gps, None);
    let t = render(
        &bytes,
        ImageFormat::Jpeg,
        facts.orientation,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((t.display_width, t.display_height), (480, 640));
    assert_eq!((t.thumb.width, t.thumb.height), (250, 333));
}

#[test]
fn heic_decodes_upright_and_ignores_exif_orientation() {
    let bytes = read("IMG_5195.HEIC");
    let t = render(&bytes, ImageFormat::Heif, Some(6), &Limits::default()).unwrap();
    assert_eq!((t.display_width, t.display_height), (2566, 3313));
    assert_eq!((t.preview.width, t.preview.height), (1440, 1859));
}

/// Files in `bad/` that are in fact decodable images (their damage is in the metadata only).
const BAD_BUT_DECODABLE: &[&str] = &[
    "POC_phpinfo-metadata.jpg",
    "exif_gps.jpg",
    "infinite_loop_exif.jpg",
    "invalid-exif.jpg",
    // A valid 1x1 PNG whose bomb is in zTXt chunks; we never inflate text chunks, so it is
    // harmless here (the test's 10 s bound shows it).
    "png_decompression_dos.png",
];

#[test]
fn hostile_inputs_fail_cleanly_and_never_panic() {
    let mut names: Vec<String> = fs::read_dir(fixtures_dir().join("bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 17, "{names:?}");
    for name in names {
        let bytes = read(&format!("bad/{name}"));
        if let Err(e) = exif::extract(&bytes) {
            assert!(
                !matches!(e, exif::ExifError::Internal(_)),
                "{name}: EXIF parser panicked: {e}"
            );
        }
        // Like the API, trust the bytes; fall back to the name for non-images.
        let format = sniff(&bytes).or_else(|| format_from_name(&name)).unwrap();
        let started = Instant::now();
        let result = render(&bytes, format, None, &Limits::default());
        assert!(started.elapsed().as_secs() < 10, "{name}: too slow");
        match result {
            Ok(t) => assert!(
                BAD_BUT_DECODABLE.contains(&name.as_str()),
                "{name}: rendered {t:?}"
            ),
            Err(e) => {
                assert!(!BAD_BUT_DECODABLE.contains(&name.as_str()), "{name}: {e}");
                assert!(!matches!(e, ThumbnailError::Internal(_)), "{name}: {e}");
            }
        }
    }
}

#[test]
fn decompression_bombs_are_refused_with_readable_errors() {
    let e = render(
        &read("bad/lottapixel.jpg"),
        ImageFormat::Jpeg,
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "image too large: 64250x64250 pixels exceeds the 100000000-pixel limit"
    );
    let e = render(
        &read("bad/truncated_jpeg.jpg"),
        ImageFormat::Jpeg,
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("truncated image: "), "{e}");
    let e = render(
        &read("bad/test.jpg"),
        ImageFormat::Jpeg,
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("corrupt image: "), "{e}");
}

#[test]
fn nonsense_gps_and_future_dates_are_dropped() {
    let facts = exif::extract(&read("bad/exif_gps.jpg")).unwrap();
    assert_eq!(facts.gps, None);
    let now = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert!(facts.date_time_original.is_some());
    assert_eq!(
        taken_at::resolve(facts.date_time_original, None, None, now),
        None
    );
    let php = exif::extract(&read("bad/POC_phpinfo-metadata.jpg")).unwrap();
    assert_eq!(php.orientation, None);
    assert_eq!(php.date_time_original, None);
}

/// A GIF with many frames (like fuzzdb's 40,000-frame uber.gif): only the first is decoded.
#[test]
fn many_frame_gif_renders_its_first_frame_quickly() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, Rgba, RgbaImage};
    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut gif);
        let frames = (0..20_000u32).map(|i| {
            let px = Rgba([(i % 256) as u8, 0, 0, 255]);
            Frame::from_parts(
                RgbaImage::from_pixel(1, 1, px),
                0,
                0,
                Delay::from_numer_denom_ms(10, 1),
            )
        });
        encoder.encode_frames(frames).unwrap();
    }
    let started = Instant::now();
    let t = render(&gif, ImageFormat::Gif, None, &Limits::default()).unwrap();
    assert_eq!((t.display_width, t.display_height), (1, 1));
    assert!(
        started.elapsed().as_millis() < 500,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_photo_without_exif_dates_takes_its_xmp_date() {
    // no_exif.jpg has no EXIF date but an XMP `xmp:CreateDate` 2013-09-23T10:09:46+02:00.
    let facts = exif::extract(&read("no_exif.jpg")).unwrap();
    assert_eq!(facts.date_source, Some(exif::DateSource::Xmp));
    assert_eq!(
        facts.date_time_original.map(|d| d.to_string()).as_deref(),
        Some("2013-09-23 10:09:46")
    );
    assert_eq!(
        facts.offset_time_original.map(|o| o.to_string()).as_deref(),
        Some("+02:00")
    );
}
