//! A 2 GiB video through the real processes and a real S3-compatible server (`s3s-fs`) behind
//! a slow link: a proxy the test controls throttles everything the store sends to 20 MB/s and
//! cuts the connection once in the middle of the worker's read. `timeline serve` receives the
//! clip (streamed to an S3 multipart upload); `timeline-worker` hashes it as it streams, spools
//! it for ffprobe/ffmpeg and posters it. Each read of the original takes about 100 s, far past
//! any whole-request timeout, and the cut read resumes from its last byte. A slow client's
//! `Range` read of `/original` completes too. Both processes stay under 300 MB of resident
//! memory (peak `VmHWM`). The clip is made by looping a phone clip with `ffmpeg -stream_loop N
//! -c copy`, never committed.

use std::io::{Read, Seek, SeekFrom};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::common::TestApp;
use crate::common::peak_rss;
use crate::proxy::Proxy;
use crate::s3_faults::{S3Server, as_refs, s3_env};
use crate::video::{tempdir, video_dir};

const TARGET_BYTES: u64 = 2 << 30;
const RSS_LIMIT: u64 = 300 << 20;
const LINK_BYTES_PER_S: u64 = 20_000_000;

/// Loops a phone clip to at least `bytes` (stream copy: seconds, not minutes).
pub fn make_clip(dir: &std::path::Path, bytes: u64) -> std::path::PathBuf {
    let src = video_dir().join("Issue 515 (java).mp4");
    let loops = bytes / std::fs::metadata(&src).expect("src").len() + 1;
    let big = dir.join(format!("clip-{bytes}.mp4"));
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
    big
}

pub fn sha256_of(path: &std::path::Path, range: std::ops::Range<u64>) -> String {
    let mut file = std::fs::File::open(path).expect("open");
    file.seek(SeekFrom::Start(range.start)).expect("seek");
    let mut left = range.end - range.start;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = file
            .read(&mut buf[..(left as usize).min(1 << 20)])
            .expect("read");
        assert!(n > 0, "short file");
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    hex::encode(hasher.finalize())
}

#[sqlx::test(migrations = false)]
async fn a_2_gib_video_streams_through_a_slow_s3_link_in_bounded_memory(pool: PgPool) {
    let dir = tempdir("big");
    let big = make_clip(&dir, TARGET_BYTES);
    let size = std::fs::metadata(&big).expect("big").len();
    assert!(size >= TARGET_BYTES, "{size}");

    let s3 = S3Server::start();
    let proxy = Proxy::start(s3.port).await;
    let mut env = s3_env(&s3);
    for (k, v) in env.iter_mut() {
        if *k == "AWS_ENDPOINT" {
            *v = format!("http://127.0.0.1:{}", proxy.port);
        }
    }
    let env = as_refs(&env);
    let mut app = TestApp::start(pool, false).await;
    let (_, token) = app.user("big@example.com").await;
    let serve = app.spawn_serve_env(&env).await;
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

    // From here the store answers at 20 MB/s, and the worker's read is cut once mid-way.
    proxy.throttle(LINK_BYTES_PER_S);
    proxy.cut_after(600 << 20);
    app.start_worker_env(&[], &env);
    app.wait_job(&token, job, Duration::from_secs(900)).await;
    let (_, m) = app.get(&token, &format!("/v1/media/{id}")).await;
    assert_eq!(m["processing_status"], "completed", "{m}");
    assert_eq!(proxy.cuts(), 1, "the read was cut once and resumed");
    assert_eq!(m["file_size"].as_u64(), Some(size));
    let want = sha256_of(&big, 0..size);
    assert_eq!(
        m["file_hash"].as_str(),
        Some(want.as_str()),
        "streamed hash"
    );
    let minutes = m["duration_ms"].as_f64().expect("duration") / 60_000.0;
    assert!(minutes > 60.0, "{minutes} min");
    assert!(m["thumbnails"].is_object(), "{m}");

    // A slow client reads 40 MiB from the middle with Range, at 4 MB/s.
    let range = 1_000_000_000..1_000_000_000 + (40 << 20);
    let part = dir.join("part");
    let got = Command::new("curl")
        .args(["-sS", "--fail", "--limit-rate", "4M", "-o"])
        .arg(&part)
        .args(["-r", &format!("{}-{}", range.start, range.end - 1)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{base}/v1/media/{id}/original"))
        .output()
        .expect("curl");
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let part_len = std::fs::metadata(&part).expect("part").len();
    assert_eq!(part_len, range.end - range.start);
    assert_eq!(sha256_of(&part, 0..part_len), sha256_of(&big, range));

    let serve_rss = peak_rss(serve.child.id());
    let worker_rss = peak_rss(app.worker.as_ref().expect("worker").id());
    eprintln!(
        "2 GiB video ({size} bytes) over a 20 MB/s S3 link cut once: peak RSS timeline serve {} MB, timeline-worker {} MB",
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
