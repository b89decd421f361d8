//! The image entry point (decode, orient, resize, encode) on whatever the sniffer calls an
//! image; tighter size limits than production keep each run fast.
#![no_main]

use timeline_media::thumbnail::{self, Limits, ThumbnailError};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(format) = timeline_media::MediaFormat::sniff(data).and_then(|f| f.image()) else {
        return;
    };
    let limits = Limits {
        max_pixels: 16_000_000,
        max_dimension: 16_384,
        max_alloc_bytes: 256 << 20,
    };
    let orientation = Some((data.len() % 8 + 1) as u16);
    if let Err(ThumbnailError::Internal(m)) = thumbnail::render(data, format, orientation, &limits) {
        panic!("internal error: {m}");
    }
});
