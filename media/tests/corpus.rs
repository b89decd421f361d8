//! Runs over the whole shared photo corpus (`../shared/corpus` beside the repository, as in CI, or `$TIMELINE_CORPUS`) when
//! it exists, and is skipped with a note otherwise: every photo renders (or, for `bad/`, fails
//! cleanly) and the EXIF facts match exiftool's `exiftool.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic: a panic is a failed test

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{check_renditions, format_from_name, sniff};
use serde_json::Value;
use timeline_media::ImageFormat;
use timeline_media::exif::{self, ExifError};
use timeline_media::thumbnail::{Limits, ThumbnailError, render};

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TIMELINE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
        });
    dir.join("exiftool.json").is_file().then_some(dir)
}

fn exiftool(dir: &Path) -> HashMap<String, Value> {
    let text = fs::read_to_string(dir.join("exiftool.json")).unwrap();
    let entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    entries
        .into_iter()
        .map(|e| (e["SourceFile"].as_str().unwrap().to_owned(), e))
        .collect()
}

fn images_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".md") && !n.ends_with(".tsv") && !n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The stored size exiftool reports (`File:`, `PNG:`, `RIFF:`, `GIF:` or `EXIF:` for TIFF).
fn stored_size(e: &Value) -> (u32, u32) {
    for group in ["File", "PNG", "RIFF", "GIF", "EXIF"] {
        let (w, h) = (
            &e[format!("{group}:ImageWidth")],
            &e[format!("{group}:ImageHeight")],
        );
        if let (Some(w), Some(h)) = (w.as_u64(), h.as_u64()) {
            return (u32::try_from(w).unwrap(), u32::try_from(h).unwrap());
        }
    }
    panic!("no size in {e}");
}

/// Only `EXIF:DateTimeOriginal` counts: some files carry the date only in XMP or IPTC
/// (`30-type_error.jpg`: XMP only, with a 'Z' suffix), which EXIF extraction must not report.
/// Blank placeholders and non-dates (`FujiFilm DX-5.jpg`, the PHP payload) mean "none".
fn exif_date(e: &Value) -> Option<String> {
    let s = e["EXIF:DateTimeOriginal"].as_str()?;
    chrono::NaiveDateTime::parse_from_str(s, "%Y:%m:%d %H:%M:%S")
        .ok()
        .map(|_| s.to_owned())
}

/// exiftool's composite (signed) position; (0, 0) is the placeholder we treat as no fix.
fn exif_gps(e: &Value) -> Option<(f64, f64)> {
    let lat = e["Composite:GPSLatitude"].as_f64()?;
    let lon = e["Composite:GPSLongitude"].as_f64()?;
    (lat != 0.0 || lon != 0.0).then_some((lat, lon))
}

fn has_exif(e: &Value) -> bool {
    e.as_object()
        .is_some_and(|o| o.keys().any(|k| k.starts_with("EXIF:")))
}

fn check_exif(name: &str, bytes: &[u8], e: &Value) -> Option<u16> {
    let facts = match exif::extract(bytes) {
        Ok(f) => f,
        Err(ExifError::Internal(m)) => panic!("{name}: EXIF parser panicked: {m}"),
        Err(err) => {
            // Only hostile files may have unreadable EXIF.
            assert!(name.starts_with("bad/"), "{name}: {err}");
            return None;
        }
    };
    // exiftool's EXIF is the reference; dates the reader found in XMP are not EXIF facts.
    let from_exif = facts.date_source != Some(timeline_media::exif::DateSource::Xmp);
    let date = facts
        .date_time_original
        .filter(|_| from_exif)
        .map(|d| d.format("%Y:%m:%d %H:%M:%S").to_string());
    assert_eq!(date, exif_date(e), "{name}: DateTimeOriginal");
    let offset = facts
        .offset_time_original
        .filter(|_| from_exif)
        .map(|o| o.to_string());
    assert_eq!(
        offset.as_deref(),
        e["EXIF:OffsetTimeOriginal"].as_str(),
        "{name}: OffsetTimeOriginal"
    );
    match (facts.gps.as_ref(), exif_gps(e)) {
        (Some(g), Some((lat, lon))) => {
            assert!(
                (g.latitude - lat).abs() < 1e-5 && (g.longitude - lon).abs() < 1e-5,
                "{name}: {g:?} vs {lat},{lon}"
            );
        }
        (None, None) => {}
        (got, want) => panic!("{name}: GPS {got:?} vs exiftool {want:?}"),
    }
    facts.orientation
}

#[test]
fn whole_corpus_renders_and_matches_exiftool() {
    let Some(dir) = corpus_dir() else {
        // A skip is a pass that checked nothing: never in CI, which has ../shared beside the clone.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have ../shared/corpus"
        );
        eprintln!("note: shared corpus not found (set TIMELINE_CORPUS); skipping the corpus test");
        return;
    };
    let reference = exiftool(&dir);
    let mut rendered = 0;
    for name in images_in(&dir) {
        let bytes = fs::read(dir.join(&name)).unwrap();
        let e = &reference[&name];
        let orientation = check_exif(&name, &bytes, e);
        let format = sniff(&bytes).unwrap_or_else(|| panic!("{name}: unknown format"));
        let started = Instant::now();
        let t = render(&bytes, format, orientation, &Limits::default())
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let (w, h) = stored_size(e);
        let display = match (format, orientation) {
            // HEIF: exiftool's size is the stored one; libheif applies irot, so use its answer
            // and check the known rotated files below.
            (ImageFormat::Heif, _) => (t.display_width, t.display_height),
            (_, Some(5..=8)) => (h, w),
            _ => (w, h),
        };
        check_renditions(&name, &t, display);
        eprintln!(
            "{name}: {w}x{h} -> {:?} in {:?}",
            (t.display_width, t.display_height),
            started.elapsed()
        );
        rendered += 1;
        if name == "iphone_13_pro_max.HEIC" || name == "Issue 487.heic" {
            assert_eq!(
                (t.display_width, t.display_height),
                (3024, 4032),
                "{name}: upright portrait"
            );
        }
        if name == "exif-at-eof.heic" {
            assert_eq!((t.display_width, t.display_height), (3024, 4032), "{name}");
        }
    }
    assert!(rendered >= 50, "only {rendered} photos");
}

#[test]
fn whole_bad_corpus_fails_cleanly() {
    let Some(dir) = corpus_dir() else {
        // A skip is a pass that checked nothing: never in CI, which has ../shared beside the clone.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have ../shared/corpus"
        );
        eprintln!(
            "note: shared corpus not found (set TIMELINE_CORPUS); skipping the bad-corpus test"
        );
        return;
    };
    let reference = exiftool(&dir);
    for name in images_in(&dir.join("bad")) {
        let key = format!("bad/{name}");
        let bytes = fs::read(dir.join(&key)).unwrap();
        // exiftool gives up on some of these ("JPEG format error") while kamadak-exif still reads
        // a partial block (huge_tag_exif.jpg has a plausible GPS fix): compare only where
        // exiftool itself read EXIF.
        if let Some(e) = reference.get(&key).filter(|e| has_exif(e)) {
            check_exif(&key, &bytes, e);
        } else if let Err(ExifError::Internal(m)) = exif::extract(&bytes) {
            panic!("{key}: EXIF parser panicked: {m}");
        }
        let format = sniff(&bytes).or_else(|| format_from_name(&name)).unwrap();
        let started = Instant::now();
        let result = render(&bytes, format, None, &Limits::default());
        let took = started.elapsed();
        assert!(took.as_secs() < 10, "{key}: {took:?}");
        match result {
            Ok(t) => eprintln!(
                "{key}: renders ({}x{}) in {took:?}",
                t.display_width, t.display_height
            ),
            Err(ThumbnailError::Internal(m)) => panic!("{key}: panicked: {m}"),
            Err(err) => eprintln!("{key}: {err} ({took:?})"),
        }
    }
}
