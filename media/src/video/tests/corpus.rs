//! The real clips and stills of `tests/fixtures/video/`, checked against `manifest.tsv`,
//! `ffprobe.json` and `exiftool.json`.

use std::fs::File;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, Utc};

use super::{fixture, is_bmff_movie, json, manifest, open};
use crate::video::bmff::{self, MovieMeta};
use crate::video::motion::{self, EmbeddedVideo};
use crate::video::{ContainerError, iso6709};

fn meta_of(name: &str) -> MovieMeta {
    let (mut file, len) = open(name);
    meta_of_file(&mut file, len)
}

fn meta_of_file(file: &mut File, len: u64) -> MovieMeta {
    let boxes = bmff::top_level(file, len).unwrap();
    bmff::check_movie(&boxes).unwrap();
    let moov = bmff::find_top_level(&boxes, b"moov").unwrap();
    bmff::movie_meta(file, moov).unwrap()
}

fn offset_date(s: &str) -> Option<DateTime<FixedOffset>> {
    Some(DateTime::parse_from_rfc3339(s).unwrap())
}

fn position(meta: &MovieMeta) -> Option<(f64, f64, Option<f64>)> {
    meta.location.as_deref().and_then(iso6709::parse)
}

fn assert_near(got: Option<(f64, f64, Option<f64>)>, lat: f64, lon: f64) {
    let (glat, glon, _) = got.unwrap_or_else(|| panic!("no GPS, expected {lat},{lon}"));
    assert!(
        (glat - lat).abs() < 1e-4 && (glon - lon).abs() < 1e-4,
        "{glat},{glon} vs {lat},{lon}"
    );
}

#[test]
fn movie_verdicts_match_the_manifest() {
    for (name, _row) in manifest().iter().filter(|(n, _)| is_bmff_movie(n)) {
        if name == "quicktime-hvc1.mov" {
            continue; // AGPL: not copied here, see `agpl_clip_from_shared_corpus`.
        }
        let (mut file, len) = open(name);
        let verdict = bmff::top_level(&mut file, len).and_then(|b| bmff::check_movie(&b));
        match name.as_str() {
            "bad_truncated_no_moov.mov" => assert!(verdict.is_err(), "{name}"),
            "bad_truncated_mdat.mp4" | "bad_moov_size.mp4" => {
                let fourcc = if name.contains("mdat") {
                    "'mdat'"
                } else {
                    "'moov'"
                };
                match verdict {
                    Err(ContainerError::Truncated(m)) => assert!(m.contains(fourcc), "{m}"),
                    other => panic!("{name}: expected Truncated, got {other:?}"),
                }
            }
            _ => assert!(verdict.is_ok(), "{name}: {verdict:?}"),
        }
    }
}

#[test]
fn truncation_messages_are_readable() {
    let (mut file, len) = open("bad_truncated_mdat.mp4");
    let err = bmff::top_level(&mut file, len).unwrap_err();
    assert_eq!(
        err.to_string(),
        "truncated video: box 'mdat' at byte 81743 claims 603206 bytes but only 218257 remain"
    );
    let (mut file, len) = open("bad_truncated_no_moov.mov");
    let err = bmff::top_level(&mut file, len).unwrap_err();
    assert!(err.to_string().contains("'mdat'"), "{err}");
}

#[test]
fn non_bmff_files_are_not_movies() {
    for name in [
        "MVI_4823.AVI",
        "video_mkv.mkv",
        "IMG_7943.HEIC",
        "motionphoto.heic",
    ] {
        let (mut file, len) = open(name);
        let verdict = bmff::top_level(&mut file, len).and_then(|b| bmff::check_movie(&b));
        assert!(
            matches!(verdict, Err(ContainerError::Corrupt(_))),
            "{name}: {verdict:?}"
        );
    }
}

#[test]
fn mvhd_creation_matches_ffprobe() {
    let probe = json("ffprobe.json");
    for name in manifest()
        .keys()
        .filter(|n| is_bmff_movie(n) && !n.starts_with("bad_"))
    {
        if name == "quicktime-hvc1.mov" {
            continue;
        }
        let expected = probe[name.as_str()]["format"]["tags"]["creation_time"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().unwrap());
        assert_eq!(meta_of(name).mvhd_creation, expected, "{name}");
    }
    // The M4A stores zero dates (exiftool: 0000:00:00 00:00:00): no date, not 1904.
    assert_eq!(meta_of("Issue 337 (dotnet).m4a").mvhd_creation, None);
}

#[test]
fn mvhd_duration_matches_the_manifest() {
    for (name, row) in manifest().iter().filter(|(n, _)| is_bmff_movie(n)) {
        if name.starts_with("bad_") || name == "quicktime-hvc1.mov" {
            continue;
        }
        let expected: f64 = row["duration_s"].parse().unwrap();
        let got = meta_of(name).duration_s.unwrap();
        assert!((got - expected).abs() < 0.05, "{name}: {got} vs {expected}");
    }
}

#[test]
fn apple_keys() {
    let mov = meta_of("with-gps.mov");
    assert_eq!(
        mov.apple_creation_date,
        offset_date("2019-07-24T11:25:40+03:00")
    );
    assert_eq!(mov.make.as_deref(), Some("Apple"));
    assert_eq!(mov.model.as_deref(), Some("iPhone 6"));
    assert_eq!(mov.location.as_deref(), Some("+32.0929+034.8620+028.516/"));
    assert_near(position(&mov), 32.0929, 34.862);
    assert_eq!(position(&mov).and_then(|p| p.2), Some(28.516));
    assert_eq!(mov.content_identifier, None);

    let live = meta_of("IMG_7943_HEVC.MOV");
    assert_eq!(
        live.apple_creation_date,
        offset_date("2026-03-23T15:57:19+01:00")
    );
    assert_eq!(
        live.content_identifier.as_deref(),
        Some("9B539AB8-A668-4FA6-9207-EB653A5E7E3C")
    );
    assert_near(position(&live), 49.1989, 16.6071);
    assert_eq!(live.model.as_deref(), Some("iPhone 13 Pro"));
    let accuracy = live.horizontal_accuracy_m.unwrap();
    assert!((accuracy - 3.535534).abs() < 1e-5, "{accuracy}");
}

#[test]
fn user_data_dates_and_locations() {
    let java = meta_of("Issue 515 (java).mp4");
    // exiftool: QuickTime:DateTimeOriginal 2020:11:20 15:04:02+01:00 (a `udta/date` box).
    assert_eq!(java.day, offset_date("2020-11-20T15:04:02+01:00"));
    assert_eq!(java.day_local, None);
    assert_eq!(java.apple_creation_date, None);
    // Only a 3GPP `loci` box; ffprobe shows it as +52.3693+006.6761+10.534988/.
    assert_near(position(&java), 52.3693, 6.6761);
    assert_near(position(&java), 52.36929, 6.67609);
    let alt = position(&java).and_then(|p| p.2).unwrap();
    assert!((alt - 10.535).abs() < 1e-3, "{alt}");

    let android = meta_of("with-gps.mp4");
    assert_eq!(android.location.as_deref(), Some("+51.4169-000.0806/"));
    assert_near(position(&android), 51.4169, -0.0806);
    assert_eq!((android.day, android.day_local), (None, None));

    // `©xyz` is +00.0000+000.0000/: kept raw, but no position.
    let null_island = meta_of("ftyp3gp5.mp4");
    assert_eq!(null_island.location.as_deref(), Some("+00.0000+000.0000/"));
    assert_eq!(position(&null_island), None);

    let threegp = meta_of("sample.3gp");
    assert_eq!(threegp.location, None);
    assert_eq!(threegp.mvhd_creation, "2005-10-28T17:36:40Z".parse().ok());
    for quiet in ["sample.3gp", "Issue 337 (dotnet).m4a", "video_rotate.mp4"] {
        let m = meta_of(quiet);
        assert_eq!(
            (
                m.apple_creation_date,
                m.day,
                m.day_local,
                m.location,
                m.content_identifier
            ),
            (None, None, None, None, None),
            "{quiet}"
        );
    }
}

#[test]
fn agpl_clip_from_shared_corpus() {
    // Not copied into the repository (AGPL-3.0): read it from the shared corpus when present.
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/video/"
    ))
    .join("quicktime-hvc1.mov");
    let Ok(mut file) = File::open(&path) else {
        return;
    };
    let len = file.metadata().unwrap().len();
    let meta = meta_of_file(&mut file, len);
    assert_eq!(
        meta.apple_creation_date,
        offset_date("2023-09-22T18:34:05+02:00")
    );
    assert_eq!(meta.mvhd_creation, "2023-09-22T16:34:05Z".parse().ok());
    assert_near(position(&meta), 52.4597, 13.322);
    assert_eq!(meta.horizontal_accuracy_m, Some(35.0));
    assert_eq!(meta.model.as_deref(), Some("iPad mini"));
}

fn find_motion(path: &std::path::Path) -> Option<EmbeddedVideo> {
    let mut file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len();
    motion::find(&mut file, len).unwrap()
}

#[test]
fn samsung_heic_motion_photo() {
    let video = find_motion(&fixture("motionphoto.heic")).unwrap();
    // manifest: 'mpvd' box at byte 1455403; exiftool: MotionPhotoVideo 2193658 bytes.
    assert_eq!(video.offset, 1_455_403 + 8);
    assert_eq!(video.len, 2_193_658);
    assert_eq!(video.offset + video.len, 3_649_069);
    let (mut file, _) = open("motionphoto.heic");
    let head = bmff::read_at(&mut file, video.offset, 8).unwrap();
    assert_eq!(&head[4..], b"ftyp");
}

#[test]
fn google_jpeg_motion_photo() {
    let path = fixture("motion_google.jpg");
    let len = std::fs::metadata(&path).unwrap().len();
    let video = find_motion(&path).unwrap();
    assert_eq!(video.len, 242_752);
    assert_eq!(video.offset, len - 242_752);
    assert_eq!(video.presentation_timestamp_us, Some(85_000));
    // The embedded clip is byte for byte the fixture it was made from.
    let bytes = std::fs::read(&path).unwrap();
    let original = std::fs::read(fixture("with-gps.mp4")).unwrap();
    assert_eq!(&bytes[video.offset as usize..], original.as_slice());
}

#[test]
fn plain_stills_and_movies_have_no_motion_video() {
    let stills = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&stills).unwrap() {
        let path = entry.unwrap().path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ["jpg", "jpeg", "heic"].contains(&ext.as_str()) {
            assert_eq!(find_motion(&path), None, "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} stills found");
    for name in [
        "IMG_7943.HEIC",
        "with-gps.mp4",
        "MVI_4823.AVI",
        "video_mkv.mkv",
    ] {
        assert_eq!(find_motion(&fixture(name)), None, "{name}");
    }
}

#[test]
fn fuzz_entry_survives_every_fixture() {
    for name in manifest().keys().chain(&["motion_google.jpg".to_owned()]) {
        let Ok(bytes) = std::fs::read(fixture(name)) else {
            continue; // quicktime-hvc1.mov lives only in the shared corpus.
        };
        crate::video::fuzz_entry(&bytes);
    }
}
