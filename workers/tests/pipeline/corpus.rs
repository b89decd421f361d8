//! The whole shared photo corpus (`../shared/corpus` beside the repository, as in CI) through
//! the real API and a real worker, checked against exiftool's reference (`exiftool.json`).
//! Skipped with a note when the corpus is absent (a user's clone has only `tests/fixtures`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::common::TestApp;
use crate::ingest::check_photo;

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TIMELINE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
        });
    dir.join("exiftool.json").is_file().then_some(dir)
}

/// Only a parseable `EXIF:DateTimeOriginal` counts (XMP-only dates and blank placeholders are
/// not EXIF facts).
fn exif_date(e: &Value) -> Option<&str> {
    let s = e["EXIF:DateTimeOriginal"].as_str()?;
    chrono::NaiveDateTime::parse_from_str(s, "%Y:%m:%d %H:%M:%S")
        .ok()
        .map(|_| s)
}

/// The displayed size exiftool implies: the stored size, axes swapped for orientations 5–8.
/// HEIF is left out (libheif applies the container's rotation, which exiftool does not
/// report as a size); its thumbnails are still checked for shape against the API's answer.
fn display_size(e: &Value) -> Option<(u64, u64)> {
    if e["File:MIMEType"]
        .as_str()
        .is_some_and(|m| m.contains("hei"))
    {
        return None;
    }
    let (w, h) = ["File", "PNG", "RIFF", "GIF", "EXIF"]
        .iter()
        .find_map(|g| {
            Some((
                e[format!("{g}:ImageWidth")].as_u64()?,
                e[format!("{g}:ImageHeight")].as_u64()?,
            ))
        })?;
    Some(match e["EXIF:Orientation"].as_u64() {
        Some(5..=8) => (h, w),
        _ => (w, h),
    })
}

/// exiftool's entry in `expected.json`'s shape, with the hash of the bytes.
fn reference(e: &Value, bytes: &[u8]) -> Value {
    let (w, h) = display_size(e).unzip();
    json!({
        "sha256": hex::encode(Sha256::digest(bytes)),
        "GPSLatitude": e["Composite:GPSLatitude"], "GPSLongitude": e["Composite:GPSLongitude"],
        "DateTimeOriginal": exif_date(e), "OffsetTimeOriginal": e["EXIF:OffsetTimeOriginal"],
        "display_width": w, "display_height": h,
    })
}

#[sqlx::test(migrations = false)]
async fn shared_corpus_ingests_and_matches_exiftool(pool: PgPool) {
    let Some(dir) = corpus_dir() else {
        // A skip is a pass that checked nothing: never in CI, which has ../shared beside the clone.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have ../shared/corpus"
        );
        eprintln!("note: ../shared/corpus not found; skipping the corpus pipeline test");
        return;
    };
    let entries: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("exiftool.json")).unwrap()).unwrap();
    let app = TestApp::start(pool, true).await;
    let (_, token) = app.user("corpus@example.org").await;
    let mut photos = Vec::new();
    for e in entries {
        let name = e["SourceFile"].as_str().unwrap().to_owned();
        if name.starts_with("bad/") {
            continue; // the hostile test covers these
        }
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        photos.push((name, reference(&e, &bytes), bytes));
    }
    assert!(
        photos.len() >= 50,
        "only {} photos in the corpus",
        photos.len()
    );

    // Several requests, like an app uploading an album in pieces.
    let mut uploaded = Vec::new();
    for chunk in photos.chunks(12) {
        let files: Vec<(&str, Vec<u8>)> = chunk
            .iter()
            .map(|(n, _, b)| (n.as_str(), b.clone()))
            .collect();
        let (status, body) = app.upload(&token, &files).await;
        assert_eq!(status, 202, "{body}");
        uploaded.push(body);
    }
    for body in &uploaded {
        let job = app
            .wait_job(
                &token,
                body["job"]["id"].as_str().unwrap(),
                Duration::from_secs(600),
            )
            .await;
        let n = body["media"].as_array().unwrap().len();
        assert_eq!(
            job["output_data"]["completed"], n,
            "every photo completes: {job}"
        );
        assert_eq!(job["progress"], 100);
        for media in body["media"].as_array().unwrap() {
            let name = media["filename"].as_str().unwrap();
            let (_, want, _) = photos.iter().find(|(n, _, _)| n == name).unwrap();
            let (status, m) = app
                .get(
                    &token,
                    &format!("/v1/media/{}", media["id"].as_str().unwrap()),
                )
                .await;
            assert_eq!(status, 200);
            check_photo(&app, &token, name, want, &m).await;
        }
    }
}
