//! A 2 GiB video through the real processes: `timeline serve` receives it (streamed to the
//! store) and `timeline-worker` hashes, probes and posters it; both stay under 300 MB of
//! resident memory (peak `VmHWM`, read from /proc). The clip is made by looping a phone clip
//! with `ffmpeg -stream_loop N -c copy`, never committed.

use std::process::Command;
use std::time::Duration;

use sqlx::PgPool;

use crate::common::TestApp;
use crate::common::peak_rss;
use crate::video::{tempdir, video_dir};

const TARGET_BYTES: u64 = 2 << 30;
const RSS_LIMIT: u64 = 300 << 20;

#[sqlx::test(migrations = false)]
async fn a_2_gib_video_streams_through_in_bounded_memory(pool: PgPool) {
    let dir = tempdir("big");
    let src = video_dir().join("Issue 515 (java).mp4");
    let loops = TARGET_BYTES / std::fs::metadata(&src).expect("src").len() + 1;
    let big = dir.join("big.mp4");
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-stream_loop",
            &loops.to_string(),
            "-i",
        ])
        .arg(&src)
        .args(["-c", "copy", "-map", "0"])
        .arg(&big)
        .output()
        .expect("ffmpeg must be installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&big).expect("big").len();
    assert!(size >= TARGET_BYTES, "{size}");

    let mut app = TestApp::start(pool, true).await;
    let (_, token) = app.user("big@example.com").await;
    let serve = app.spawn_serve().await;
    let base = serve.base.clone();
    // curl streams the file from disk (`-T`), as a phone app would.
    let upload = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-X", "POST", "-T"])
        .arg(&big)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/octet-stream"])
        .arg(format!("{base}/v1/media?filename=big.mp4"))
        .output()
        .expect("curl");
    assert!(
        upload.status.success(),
        "{}",
        String::from_utf8_lossy(&upload.stdout)
    );
    let body: serde_json::Value = serde_json::from_slice(&upload.stdout).expect("json");
    let job = body["job"]["id"].as_str().expect("job");
    let id = body["media"][0]["id"].as_str().expect("media id");
    app.wait_job(&token, job, Duration::from_secs(600)).await;
    let (_, m) = app.get(&token, &format!("/v1/media/{id}")).await;
    assert_eq!(m["processing_status"], "completed", "{m}");
    assert_eq!(m["file_size"].as_u64(), Some(size));
    let sum = Command::new("sha256sum")
        .arg(&big)
        .output()
        .expect("sha256sum");
    let want = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    assert_eq!(
        m["file_hash"].as_str(),
        Some(want.as_str()),
        "streamed hash"
    );
    let minutes = m["duration_ms"].as_f64().expect("duration") / 60_000.0;
    assert!(minutes > 60.0, "{minutes} min");
    assert!(m["thumbnails"].is_object());

    let serve_rss = peak_rss(serve.child.id());
    let worker_rss = peak_rss(app.worker.as_ref().expect("worker").id());
    eprintln!(
        "2 GiB video ({size} bytes): peak RSS timeline serve {} MB, timeline-worker {} MB",
        serve_rss >> 20,
        worker_rss >> 20
    );
    assert!(
        serve_rss < RSS_LIMIT,
        "timeline serve peaked at {} MB",
        serve_rss >> 20
    );
    assert!(
        worker_rss < RSS_LIMIT,
        "timeline-worker peaked at {} MB",
        worker_rss >> 20
    );
    assert!(app.worker_alive());
    drop(serve);
    let _ = std::fs::remove_dir_all(dir);
}
