//! A mutation fuzzer for the entry points that eat hostile bytes: `exif::extract`,
//! `thumbnail::render`, and the video container parsers with the type sniffer (`video`:
//! ISO-BMFF box walk, `moov` metadata, Motion Photo lookup, `MediaFormat::sniff`). Runs on stable Rust (cargo-fuzz needs a nightly toolchain for its
//! sanitizers, and this project builds with stable only).
//!
//! ```text
//! cargo run -p timeline-media --release --example fuzz -- exif 600
//! cargo run -p timeline-media --release --example fuzz -- thumbnail 600 [SEED]
//! cargo run -p timeline-media --release --example fuzz -- video 600 [SEED]
//! ```
//!
//! Seeds are every file under `tests/fixtures` (good photos of every format plus `bad/`).
//! Each iteration picks a seed and stacks 1–8 mutations (bit flips, interesting integers in
//! headers, inserted/deleted/duplicated ranges, truncation, splicing with another seed), then
//! calls the target. A finding is a panic (reported by the library as an `Internal` error,
//! or escaping it) or a single call over 10 s; each is saved to `target/fuzz-findings/`.
//! The run is deterministic for a given SEED. Exit status 1 when anything was found.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool: its report is its output"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use timeline_media::ImageFormat;
use timeline_media::exif::{self, ExifError};
use timeline_media::thumbnail::{self, Limits, ThumbnailError};

/// xorshift64*: a few lines, deterministic, and plenty for choosing mutations (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u32] = &[
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
];
const SLOW: Duration = Duration::from_secs(10);

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(8) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())] as u8;
            }
            2 if len >= 4 => {
                // A 16- or 32-bit header field, either byte order.
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let i = rng.below(len - 3);
                let bytes = if rng.below(2) == 0 {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                let n = if rng.below(2) == 0 { 2 } else { 4 };
                data[i..i + n].copy_from_slice(&bytes[4 - n..]);
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(64);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(i..i, fill);
            }
            4 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(1024));
                data.drain(i..i + n);
            }
            5 if len > 1 => data.truncate(rng.below(len)),
            6 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(4096));
                let chunk = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            _ => {
                // Splice: our head, another seed's tail.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let cut = rng.below(len + 1);
                    let from = rng.below(other.len());
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
            }
        }
    }
}

/// The container as the API decides it (`timeline_media::format`), as a decoder format.
fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    timeline_media::MediaFormat::sniff(bytes)?.image()
}

fn seeds(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                // `slow/` holds deliberately expensive (not malformed) files for timeout tests.
                if !p.ends_with("slow") {
                    stack.push(p);
                }
            } else if let Ok(b) = std::fs::read(&p)
                && !p.extension().is_some_and(|x| x == "md" || x == "json")
                // Multi-megapixel stills (the 12 MP Motion Photo) decode for seconds: too slow a seed.
                && b.len() <= 3 << 20
            {
                out.push(b);
            }
        }
    }
    out
}

/// One call of the target: `Some(reason)` when it is a finding.
fn run_target(
    target: &str,
    input: &[u8],
    seed_format: Option<ImageFormat>,
    limits: &Limits,
) -> Option<String> {
    let outcome = std::panic::catch_unwind(|| match target {
        "exif" => match exif::extract(input) {
            Err(ExifError::Internal(m)) => Some(m),
            _ => None,
        },
        "video" => {
            // No catch_unwind inside these parsers: any panic is a finding.
            let _format = timeline_media::MediaFormat::sniff(input);
            timeline_media::video::fuzz_entry(input);
            None
        }
        _ => {
            let format = sniff(input).or(seed_format)?;
            match thumbnail::render(input, format, Some((input.len() % 8 + 1) as u16), limits) {
                Err(ThumbnailError::Internal(m)) => Some(m),
                _ => None,
            }
        }
    });
    outcome.unwrap_or_else(|_| Some("panic escaped the library".into()))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "exif".into());
    if !["exif", "thumbnail", "video"].contains(&target.as_str()) {
        eprintln!("usage: fuzz exif|thumbnail|video [SECONDS] [SEED]");
        std::process::exit(2);
    }
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = seeds(&root.join("tests/fixtures"));
    assert!(!corpus.is_empty(), "no seeds under tests/fixtures");
    let findings_dir = root.join("target/fuzz-findings");
    // Panics are expected to be caught and reported by the library; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));
    let limits = Limits::default();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (started, budget) = (Instant::now(), Duration::from_secs(secs));
    let (mut execs, mut findings, mut slowest) = (0u64, 0u64, Duration::ZERO);
    while started.elapsed() < budget {
        let base = &corpus[rng.below(corpus.len())];
        let mut input = base.clone();
        mutate(&mut rng, &mut input, &corpus);
        let t = Instant::now();
        let found = run_target(&target, &input, sniff(base), &limits);
        let took = t.elapsed();
        slowest = slowest.max(took);
        execs += 1;
        let found = found.or_else(|| (took > SLOW).then(|| format!("took {took:?}")));
        if let Some(reason) = found {
            findings += 1;
            let _ = std::fs::create_dir_all(&findings_dir);
            let path = findings_dir.join(format!("{target}-{seed}-{execs}.bin"));
            let _ = std::fs::write(&path, &input);
            eprintln!("FINDING {}: {reason}", path.display());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz {target}: {execs} inputs in {secs:.0}s ({:.0}/s) from {} seeds, seed {seed}, slowest {slowest:?}, {findings} findings",
        execs as f64 / secs,
        corpus.len()
    );
    if findings > 0 {
        std::process::exit(1);
    }
}
