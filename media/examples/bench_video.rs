//! Probe + poster of video files through exactly the code the worker runs (our ISO-BMFF check
//! and `moov` read, `ffmpeg::probe`, `ffmpeg::poster` with its frame choice and rendering),
//! one file after another; prints files, bytes and seconds. `scripts/bench-video.sh` runs it
//! next to `ffprobe` + `ffmpeg -frames:v 1` by hand on the same files.
//!
//! ```text
//! cargo run -p timeline-media --release --example bench_video -- FILE...
//! ```
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use std::time::Instant;

use timeline_media::ffmpeg::{self, Limits};
use timeline_media::video::bmff;
use timeline_media::{Kind, MediaFormat};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let limits = Limits::default();
    let started = Instant::now();
    let (mut files, mut bytes) = (0u64, 0u64);
    for arg in std::env::args().skip(1) {
        let path = std::path::PathBuf::from(&arg);
        let Ok(head) = std::fs::read(&path).map(|b| b[..b.len().min(64)].to_vec()) else {
            eprintln!("skip {arg}: unreadable");
            continue;
        };
        let Some(format) = MediaFormat::sniff(&head).filter(|f| f.kind() == Kind::Video) else {
            continue;
        };
        if format.is_iso_bmff() {
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut r = std::io::BufReader::new(file);
            let meta = bmff::top_level(&mut r, len).and_then(|boxes| {
                bmff::check_movie(&boxes)?;
                match bmff::find_top_level(&boxes, b"moov") {
                    Some(moov) => bmff::movie_meta(&mut r, moov).map(Some),
                    None => Ok(None),
                }
            });
            if let Err(e) = meta {
                eprintln!("skip {arg}: {e}");
                continue;
            }
        }
        let facts = match ffmpeg::probe(&path, format, &limits).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("skip {arg}: {e}");
                continue;
            }
        };
        match ffmpeg::poster(&path, format, &facts, &limits).await {
            Ok(_) => {
                files += 1;
                bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            }
            Err(e) => eprintln!("skip {arg}: {e}"),
        }
    }
    println!("{files} {bytes} {:.4}", started.elapsed().as_secs_f64());
}
