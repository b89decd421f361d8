//! What rendering in a decoder child process costs against rendering in the worker's own
//! process, on the same photos in one run: per photo, the worker's path (`Decoders::render`:
//! original piped to a reused child, renditions piped back) next to `decoder::render` called
//! directly, alternating rounds, medians. Run by `scripts/bench-decoder.sh`.
//!
//!   bench_decoder ROUNDS FILE...

use std::process::ExitCode;
use std::time::{Duration, Instant};

use timeline_media::ImageFormat;
use timeline_media::thumbnail::Limits;
use timeline_workers::decoder::{self, CHILD_ARG, Decoders};

// As in `timeline-worker`: the child is this binary, with the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CHILD_ARG) {
        return decoder::child_main(&args[1..]);
    }
    let Some(rounds) = args.first().and_then(|r| r.parse::<usize>().ok()) else {
        eprintln!("usage: bench_decoder ROUNDS FILE...");
        return ExitCode::FAILURE;
    };
    let photos: Vec<(bytes::Bytes, ImageFormat)> = args[1..]
        .iter()
        .filter_map(|p| {
            let b = std::fs::read(p).ok()?;
            let f = timeline_media::MediaFormat::sniff(&b)?.image()?;
            Some((bytes::Bytes::from(b), f))
        })
        .collect();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let limits = Limits::default();
    let Ok(decoders) = Decoders::new(limits, 4 << 30) else {
        return ExitCode::FAILURE;
    };
    let (mut inproc, mut child) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for (b, f) in &photos {
            let _ = std::hint::black_box(decoder::render(b, *f, &limits));
        }
        inproc.push(t.elapsed() / photos.len().max(1) as u32);
        let t = Instant::now();
        for (b, f) in &photos {
            let r = rt.block_on(decoders.render(b.clone(), *f, Duration::from_secs(120), false));
            let _ = std::hint::black_box(r);
        }
        child.push(t.elapsed() / photos.len().max(1) as u32);
    }
    let (a, b) = (median(inproc), median(child));
    eprintln!(
        "{} photos × {rounds} rounds, median per photo: in-process {:.1} ms, decoder child {:.1} ms, ratio {:.3}",
        photos.len(),
        a.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        b.as_secs_f64() / a.as_secs_f64().max(1e-9)
    );
    ExitCode::SUCCESS
}
