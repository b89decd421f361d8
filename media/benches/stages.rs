//! Per-stage cost of ingesting one 12 MP camera JPEG: sha256, EXIF extraction, preview+thumb
//! rendering (and render split by orientation/ICC, the end-to-end sum being what a worker pays).
//!
//! Input: `target/bench-corpus/jpg12/*.jpg` made by `bash /work/shared/bench/make_corpus.sh
//! target/bench-corpus` (realistic 4000x3000 q90 files with EXIF, mixed orientations, some with
//! an Adobe RGB profile); falls back to a synthetic 4000x3000 JPEG when that folder is absent.
//!
//! Run: `CARGO_TARGET_DIR=target/media cargo bench -p timeline-media --bench stages`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use timeline_media::thumbnail::{Limits, render};
use timeline_media::{ImageFormat, exif, hash};

/// Bench inputs: a few real-looking files (name, bytes, EXIF orientation).
fn inputs() -> Vec<(String, Vec<u8>, Option<u16>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-corpus/jpg12");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jpg"));
    files.sort();
    if files.is_empty() {
        eprintln!(
            "note: {} not found, using a synthetic 4000x3000 JPEG",
            dir.display()
        );
        let bytes = synthetic_jpeg(4000, 3000);
        return vec![("synthetic".into(), bytes, Some(1))];
    }
    files
        .iter()
        .filter_map(|p| {
            let bytes = std::fs::read(p).ok()?;
            let orientation = exif::extract(&bytes).ok()?.orientation;
            Some((
                p.file_name()?.to_string_lossy().into_owned(),
                bytes,
                orientation,
            ))
        })
        .collect()
}

/// A noisy gradient, so the JPEG has realistic entropy (a flat image decodes unrealistically fast).
fn synthetic_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed % 48) as u8;
        image::Rgb([
            ((x * 255) / width) as u8 ^ n,
            ((y * 255) / height) as u8 ^ n,
            n.wrapping_mul(5),
        ])
    });
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    img.write_with_encoder(encoder).unwrap_or_default();
    out
}

fn stages(c: &mut Criterion) {
    let inputs = inputs();
    let limits = Limits::default();
    let mut group = c.benchmark_group("stages_12mp");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));
    // Cycle through the files so every iteration sees a different orientation / profile mix.
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % inputs.len();
        &inputs[i]
    };
    group.bench_function("sha256", |b| {
        b.iter(|| hash::sha256_hex(black_box(&next().1)))
    });
    group.bench_function("exif_extract", |b| {
        b.iter(|| exif::extract(black_box(&next().1)))
    });
    group.bench_function("thumbnail_render", |b| {
        b.iter(|| {
            let (_, bytes, orientation) = next();
            render(black_box(bytes), ImageFormat::Jpeg, *orientation, &limits)
        })
    });
    group.bench_function("all_stages", |b| {
        b.iter(|| {
            let (_, bytes, _) = next();
            let digest = hash::sha256_hex(black_box(bytes));
            let orientation = exif::extract(bytes).ok().and_then(|f| f.orientation);
            (
                digest,
                render(bytes, ImageFormat::Jpeg, orientation, &limits),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
