//! Helpers shared by the integration tests: fixture paths, format guessing, rendition checks.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use timeline_media::ImageFormat;
use timeline_media::thumbnail::{PREVIEW_SHORT_EDGE, THUMB_SHORT_EDGE, Thumbnails};

/// `tests/fixtures` at the workspace root.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The format the API decides from the file's magic bytes.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    timeline_media::MediaFormat::sniff(bytes)?.image()
}

/// The format from a file name's extension (for inputs whose bytes lie).
pub fn format_from_name(name: &str) -> Option<ImageFormat> {
    let ext = name.rsplit('.').next()?.to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
        "png" => Some(ImageFormat::Png),
        "webp" => Some(ImageFormat::WebP),
        "gif" => Some(ImageFormat::Gif),
        "tif" | "tiff" => Some(ImageFormat::Tiff),
        "heic" | "heif" => Some(ImageFormat::Heif),
        _ => None,
    }
}

/// Checks sizes, aspect ratio, MIME types and that both renditions decode to their stated size.
pub fn check_renditions(name: &str, t: &Thumbnails, display: (u32, u32)) {
    assert_eq!(
        (t.display_width, t.display_height),
        display,
        "{name}: display size"
    );
    let short = display.0.min(display.1);
    let preview_short = PREVIEW_SHORT_EDGE.min(short);
    assert_eq!(
        t.preview.width.min(t.preview.height),
        preview_short,
        "{name}: preview short edge"
    );
    let thumb_short = THUMB_SHORT_EDGE.min(preview_short);
    assert_eq!(
        t.thumb.width.min(t.thumb.height),
        thumb_short,
        "{name}: thumb short edge"
    );
    for (label, r) in [("preview", &t.preview), ("thumb", &t.thumb)] {
        // Same orientation as the display size, aspect ratio kept (long edge within rounding).
        let (dl, ds) = (display.0.max(display.1), display.0.min(display.1));
        let (rl, rs) = (r.width.max(r.height), r.width.min(r.height));
        assert_eq!(
            display.0 >= display.1,
            r.width >= r.height,
            "{name}: {label} orientation"
        );
        let expected_long = f64::from(dl) * f64::from(rs) / f64::from(ds);
        assert!(
            (f64::from(rl) - expected_long).abs() <= 1.0,
            "{name}: {label} {rl} vs {expected_long}"
        );
        let format = match r.mime {
            "image/jpeg" => image::ImageFormat::Jpeg,
            "image/webp" => image::ImageFormat::WebP,
            other => panic!("{name}: unexpected mime {other}"),
        };
        let decoded = image::load_from_memory_with_format(&r.bytes, format).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (r.width, r.height),
            "{name}: {label} decodes"
        );
    }
    assert_eq!(t.preview.mime, "image/jpeg");
}
