//! Videos, audio, Live Photos and Motion Photos through the real API and a real worker (which
//! runs real ffprobe/ffmpeg), checked against the corpus's reference (`manifest.tsv`, made from
//! ffprobe and exiftool): duration, display size after rotation, taken_at, GPS, a poster that
//! is upright and not blank; broken clips fail with a reason and the worker keeps going.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use crate::common::{TestApp, fixtures};

/// The repository's copy of the video corpus (`tests/fixtures/video`).
pub fn video_dir() -> PathBuf {
    fixtures().join("video")
}

/// `quicktime-hvc1.mov` (HEVC, AGPL-licensed) may not be copied into the repository: it is read
/// from `../shared` beside the clone, which CI always has. A user's clone tests the rest.
fn shared_hevc_clip() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/video/quicktime-hvc1.mov"
    ));
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must have ../shared/corpus/video/quicktime-hvc1.mov"
    );
    eprintln!("note: ../shared/corpus/video absent: quicktime-hvc1.mov not checked");
    None
}

/// One row of `manifest.tsv`, keyed by column name.
pub fn manifest() -> HashMap<String, HashMap<String, String>> {
    let text = std::fs::read_to_string(video_dir().join("manifest.tsv")).expect("manifest");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .map(|l| {
            let row: HashMap<String, String> = header
                .iter()
                .zip(l.split('\t'))
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect();
            (row["filename"].clone(), row)
        })
        .collect()
}

/// The `taken_at` the API must show, from the manifest by the photo rule: a date with its own
/// offset as written (`local_datetime` with an offset); else the container's UTC time
/// (`ffprobe_creation_time`) at the zone of the GPS position (Europe/London in February is
/// +00:00) or, without GPS, as UTC ("Z"); an AVI's zone-less `IDIT` stays a bare wall clock.
fn expected_taken_at(name: &str) -> Option<&'static str> {
    Some(match name {
        "with-gps.mov" => "2019-07-24T11:25:40+03:00",
        "with-gps.mp4" => "2017-02-22T08:20:28+00:00",
        "Issue 515 (java).mp4" => "2020-11-20T15:04:02+01:00",
        "ftyp3gp5.mp4" => "2020-10-23T20:27:29Z",
        "MVI_4823.AVI" => "2012-09-10T20:52:00",
        "sample.3gp" => "2005-10-28T17:36:40Z",
        "quicktime-hvc1.mov" => "2023-09-22T18:34:05+02:00",
        "video_mkv.mkv" => "2019-01-24T08:01:24Z",
        "video_rotate.mp4" => "2019-02-15T21:13:20Z",
        "IMG_7943_HEVC.MOV" => "2026-03-23T15:57:19+01:00",
        "IMG_7943.HEIC" => "2026-03-23T15:57:20.001+01:00", // SubSecTimeOriginal 001
        "motionphoto.heic" => "2023-03-08T12:31:05.059+05:30", // SubSecTimeOriginal 059
        _ => return None,
    })
}

fn num(row: &HashMap<String, String>, col: &str) -> Option<f64> {
    row.get(col)?.parse().ok()
}

/// Display size from the manifest: stored size, swapped for a quarter turn.
fn display(row: &HashMap<String, String>) -> Option<(i64, i64)> {
    let (w, h) = (num(row, "width")? as i64, num(row, "height")? as i64);
    Some(match row.get("rotation").map(String::as_str) {
        Some("90" | "270") => (h, w),
        _ => (w, h),
    })
}

/// Luma mean and spread of a decoded image.
fn luma_stats(img: &image::RgbImage) -> (f64, f64) {
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for p in img.pixels() {
        let y = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
        n += 1.0;
        sum += y;
        sq += y * y;
    }
    let mean = sum / n.max(1.0);
    (mean, (sq / n.max(1.0) - mean * mean).max(0.0).sqrt())
}

/// Fetches a rendition and checks it is a real picture of the right shape: aspect ratio of
/// the display size (within rounding), shorter edge at most the rendition's, not blank.
pub async fn check_picture(app: &TestApp, token: &str, name: &str, m: &Value, kind: &str) {
    let id = m["id"].as_str().expect("id");
    let (status, bytes) = app
        .get_bytes(token, &format!("/v1/media/{id}/thumbnails/{kind}"))
        .await;
    assert_eq!(status, 200, "{name}: {kind}");
    let img = image::load_from_memory(&bytes)
        .unwrap_or_else(|e| panic!("{name}: {kind} does not decode: {e}"))
        .to_rgb8();
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let (dw, dh) = (
        m["width"].as_f64().expect("width"),
        m["height"].as_f64().expect("height"),
    );
    let limit = if kind == "thumb" { 250.0 } else { 1440.0 };
    assert!(w.min(h) <= limit, "{name}: {kind} {w}x{h} over {limit}");
    assert!(
        w <= dw && h <= dh,
        "{name}: {kind} {w}x{h} upscaled from {dw}x{dh}"
    );
    let (ratio, want) = (w / h, dw / dh);
    // Rounding to whole pixels on a small side moves the ratio by up to 1/short side.
    let tolerance = 1.5 / w.min(h) * want.max(1.0) + 0.01;
    assert!(
        (ratio - want).abs() <= tolerance,
        "{name}: {kind} {w}x{h} vs display {dw}x{dh}"
    );
    let (mean, spread) = luma_stats(&img);
    assert!(
        mean > 20.0 && spread > 8.0,
        "{name}: {kind} is blank (mean {mean:.1}, spread {spread:.1})"
    );
}

async fn detail(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, m) = app.get(token, &format!("/v1/media/{id}")).await;
    assert_eq!(status, 200, "{m}");
    m
}

async fn upload_files(app: &TestApp, token: &str, paths: &[PathBuf]) -> Value {
    let files: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(p).expect("read fixture"))
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, body) = app.upload(token, &refs).await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().expect("job id").to_owned();
    app.wait_job(token, &job, Duration::from_secs(300)).await;
    body
}

fn ids_by_name(body: &Value) -> HashMap<String, String> {
    body["media"]
        .as_array()
        .expect("media")
        .iter()
        .map(|m| {
            (
                m["filename"].as_str().expect("filename").to_owned(),
                m["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = manifest()
        .keys()
        .map(|n| video_dir().join(n))
        .filter(|p| p.is_file())
        .collect();
    files.extend(shared_hevc_clip());
    files.sort();
    files
}

#[sqlx::test(migrations = false)]
async fn every_clip_matches_the_reference(pool: PgPool) {
    let mut app = TestApp::start(pool, true).await;
    let (_, token) = app.user("clips@example.com").await;
    let files = corpus_files();
    assert!(files.len() >= 15, "corpus incomplete: {files:?}");
    let body = upload_files(&app, &token, &files).await;
    let ids = ids_by_name(&body);
    let manifest = manifest();
    for path in &files {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let row = &manifest[&name];
        let m = detail(&app, &token, &ids[&name]).await;
        let kind = row["kind"].as_str();
        if kind.starts_with("broken") {
            assert_eq!(m["processing_status"], "failed", "{name}: {m}");
            let reason = m["error_message"].as_str().unwrap_or("");
            assert!(reason.len() > 10, "{name}: reason {reason:?}");
            crate::common::assert_names_no_path(&app, &name, reason);
            continue;
        }
        assert_eq!(m["processing_status"], "completed", "{name}: {m}");
        assert_eq!(
            m["taken_at"].as_str(),
            expected_taken_at(&name),
            "{name}: taken_at"
        );
        // GPS equal to the reference (null island and absent fixes are no location).
        match (num(row, "gps_lat"), num(row, "gps_lon")) {
            (Some(lat), Some(lon)) if lat != 0.0 || lon != 0.0 => {
                let l = &m["location"];
                assert!(
                    (l["latitude"].as_f64().expect("lat") - lat).abs() < 1e-4,
                    "{name}: {l}"
                );
                assert!(
                    (l["longitude"].as_f64().expect("lon") - lon).abs() < 1e-4,
                    "{name}: {l}"
                );
                assert!(l["timezone"].is_string(), "{name}: {l}");
            }
            _ => assert!(m["location"].is_null(), "{name}: {}", m["location"]),
        }
        if kind.starts_with("video") || kind.starts_with("live photo video") {
            assert_eq!(m["kind"], "video", "{name}");
            let want = num(row, "duration_s").expect("duration") * 1000.0;
            let got = m["duration_ms"].as_f64().expect("duration_ms");
            assert!(
                (got - want).abs() <= (want * 0.01).max(100.0),
                "{name}: {got} ms vs {want}"
            );
            let (w, h) = display(row).expect("size");
            assert_eq!(
                (m["width"].as_i64(), m["height"].as_i64()),
                (Some(w), Some(h)),
                "{name}"
            );
            for k in ["thumb", "preview"] {
                check_picture(&app, &token, &name, &m, k).await;
            }
            assert!(
                m["metadata"]["video_codec"].is_string(),
                "{name}: {}",
                m["metadata"]
            );
            assert!(m["metadata"]["frame_rate"].is_number(), "{name}");
        } else if kind == "audio" {
            assert_eq!(m["kind"], "audio", "{name}");
            let got = m["duration_ms"].as_f64().expect("duration_ms");
            assert!((got - 11288.0).abs() <= 113.0, "{name}: {got}");
            assert_eq!(m["metadata"]["audio_codec"], "alac");
            assert!(m["width"].is_null());
        } else {
            assert_eq!(m["kind"], "image", "{name}");
        }
    }
    // The Live Photo pair uploaded together is linked, and the clip left the timeline.
    let still = detail(&app, &token, &ids["IMG_7943.HEIC"]).await;
    assert_eq!(
        still["motion"]["media_id"].as_str(),
        Some(ids["IMG_7943_HEVC.MOV"].as_str())
    );
    let (_, list) = app.get(&token, "/v1/media?limit=200").await;
    let listed: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        !listed.contains(&ids["IMG_7943_HEVC.MOV"].as_str()),
        "clip listed"
    );
    assert!(listed.contains(&ids["IMG_7943.HEIC"].as_str()));
    assert!(app.worker_alive(), "the worker died on the corpus");
}

/// Uploads the two halves of a Live Photo in two requests, in the given order.
async fn pair_in_order(app: &TestApp, email: &str, first: &str, second: &str) {
    let (_, token) = app.user(email).await;
    let a = upload_files(app, &token, &[video_dir().join(first)]).await;
    let b = upload_files(app, &token, &[video_dir().join(second)]).await;
    let mut ids = ids_by_name(&a);
    ids.extend(ids_by_name(&b));
    let still = detail(app, &token, &ids["IMG_7943.HEIC"]).await;
    let clip_id = ids["IMG_7943_HEVC.MOV"].as_str();
    assert_eq!(
        still["motion"]["media_id"].as_str(),
        Some(clip_id),
        "{first} first: {still}"
    );
    let ms = still["motion"]["duration_ms"]
        .as_f64()
        .expect("motion duration");
    assert!((ms - 1933.0).abs() < 100.0, "{ms}");
    let clip = detail(app, &token, clip_id).await;
    assert_eq!(
        clip["motion_of"].as_str(),
        Some(ids["IMG_7943.HEIC"].as_str())
    );
    assert_eq!(clip["processing_status"], "completed");
    let (_, list) = app.get(&token, "/v1/media").await;
    assert_eq!(list["items"].as_array().expect("items").len(), 1, "{list}");
    // Deleting the photo deletes both halves, objects included.
    let resp = app
        .http
        .delete(format!("{}/v1/media/{}", app.base, ids["IMG_7943.HEIC"]))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        app.get(&token, &format!("/v1/media/{clip_id}")).await.0,
        404
    );
}

#[sqlx::test(migrations = false)]
async fn live_photo_halves_pair_in_either_order(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    pair_in_order(
        &app,
        "still-first@example.com",
        "IMG_7943.HEIC",
        "IMG_7943_HEVC.MOV",
    )
    .await;
    pair_in_order(
        &app,
        "clip-first@example.com",
        "IMG_7943_HEVC.MOV",
        "IMG_7943.HEIC",
    )
    .await;
    assert!(
        crate::common::walk(&app.storage_dir)
            .iter()
            .all(|p| !p.is_file()),
        "objects left after deleting every photo: {:?}",
        crate::common::walk(&app.storage_dir)
    );
}

#[sqlx::test(migrations = false)]
async fn motion_photos_get_their_clip_as_a_linked_video(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (_, token) = app.user("motion@example.com").await;
    // Samsung HEIC (`mpvd` box: HEVC 1440x1080 turned 90°, 2.08 s) and a Google-style JPEG
    // (XMP Container directory + appended MP4, the 0.171 s with-gps.mp4).
    let cases = [
        ("motionphoto.heic", 2080.0, (1080, 1440)),
        ("motion_google.jpg", 171.0, (1920, 1080)),
    ];
    let body = upload_files(&app, &token, &cases.map(|(n, _, _)| video_dir().join(n))).await;
    let ids = ids_by_name(&body);
    for (name, duration, size) in cases {
        let still = detail(&app, &token, &ids[name]).await;
        assert_eq!(still["processing_status"], "completed", "{name}: {still}");
        assert_eq!(still["kind"], "image");
        let clip_id = still["motion"]["media_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no motion: {still}"));
        let clip = wait_completed(&app, &token, clip_id).await;
        assert_eq!(clip["kind"], "video", "{clip}");
        assert_eq!(clip["motion_of"].as_str(), Some(ids[name].as_str()));
        let got = clip["duration_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: {clip}"));
        assert!(
            (got - duration).abs() <= (duration * 0.01).max(100.0),
            "{name}: {got}"
        );
        assert_eq!(
            (clip["width"].as_i64(), clip["height"].as_i64()),
            (Some(size.0), Some(size.1)),
            "{name}"
        );
        check_picture(&app, &token, name, &clip, "preview").await;
        // The still's own thumbnails come from the still, not the clip.
        check_picture(&app, &token, name, &still, "thumb").await;
        let (status, bytes) = app
            .get_bytes(&token, &format!("/v1/media/{clip_id}/original"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(&bytes[4..8], b"ftyp", "{name}: the clip is an MP4");
    }
    let (_, list) = app.get(&token, "/v1/media").await;
    assert_eq!(
        list["items"].as_array().expect("items").len(),
        2,
        "clips are not listed: {list}"
    );
}

/// The clip is processed after its still (its hash step is queued by the still's EXIF step).
async fn wait_completed(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let m = detail(app, token, id).await;
        if m["processing_status"] != "pending" && m["processing_status"] != "processing" {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} not processed in 60 s");
}

/// Makes a clip with ffmpeg (which the worker needs anyway; scripts/setup.sh installs it).
fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[sqlx::test(migrations = false)]
async fn a_clip_that_opens_on_black_gets_a_real_poster_and_ranges_work(pool: PgPool) {
    let app = TestApp::start(pool, true).await;
    let (_, token) = app.user("black@example.com").await;
    let dir = tempdir("black");
    let clip = dir.join("fade-in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=black:s=640x360:d=2:r=25",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=640x360:d=2:r=25",
        "-filter_complex",
        "[0:v][1:v]concat=n=2:v=1[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        clip.to_str().expect("path"),
    ]);
    let body = upload_files(&app, &token, std::slice::from_ref(&clip)).await;
    let id = ids_by_name(&body)["fade-in.mp4"].clone();
    let m = detail(&app, &token, &id).await;
    assert_eq!(m["processing_status"], "completed", "{m}");
    assert_eq!(
        (m["width"].as_i64(), m["height"].as_i64()),
        (Some(640), Some(360))
    );
    check_picture(&app, &token, "fade-in.mp4", &m, "preview").await;

    // Range requests on the original: a player seeks without downloading it whole.
    let bytes = std::fs::read(&clip).expect("clip");
    let get = |range: &'static str| {
        app.http
            .get(format!("{}/v1/media/{id}/original", app.base))
            .bearer_auth(&token)
            .header("range", range)
            .send()
    };
    let r = get("bytes=100-199").await.expect("range");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{}", bytes.len()).as_str()
    );
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.bytes().await.expect("body").as_ref(), &bytes[100..200]);
    let r = get("bytes=-10").await.expect("suffix");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        &bytes[bytes.len() - 10..]
    );
    let r = get("bytes=999999999-").await.expect("past the end");
    assert_eq!(r.status().as_u16(), 416);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        r.headers()["content-range"].to_str().ok(),
        Some(format!("bytes */{}", bytes.len()).as_str())
    );
    let r = app
        .http
        .get(format!("{}/v1/media/{id}/original", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("whole");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.expect("body").len(), bytes.len());
    let _ = std::fs::remove_dir_all(dir);
}

pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("timeline-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}
