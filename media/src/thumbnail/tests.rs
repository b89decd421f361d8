//! Unit tests for sizing, limits and synthetic renders; real files are in `media/tests/`.

use super::*;

#[test]
fn target_size_scales_the_shorter_edge_and_never_upscales() {
    assert_eq!(target_size(4000, 3000, 1440), (1920, 1440));
    assert_eq!(target_size(3000, 4000, 1440), (1440, 1920));
    assert_eq!(target_size(1920, 1440, 250), (333, 250));
    assert_eq!(target_size(600, 450, 1440), (600, 450));
    assert_eq!(target_size(1, 1, 250), (1, 1));
    assert_eq!(target_size(65_000, 300, 250), (54_167, 250));
    assert_eq!(target_size(1440, 1440, 1440), (1440, 1440));
}

#[test]
fn limits_refuse_bombs_with_readable_messages() {
    let limits = Limits::default();
    let e = check_limits(64_250, 64_250, 3, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "image too large: 64250x64250 pixels exceeds the 100000000-pixel limit"
    );
    let e = check_limits(70_000, 10, 3, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "image too large: 70000x10 pixels exceeds the 65000-pixel side limit"
    );
    let small = Limits {
        max_alloc_bytes: 1000,
        ..limits
    };
    assert!(matches!(
        check_limits(100, 100, 3, &small),
        Err(ThumbnailError::LimitExceeded(_))
    ));
    assert!(matches!(
        check_limits(0, 10, 3, &limits),
        Err(ThumbnailError::Corrupt(_))
    ));
    assert!(check_limits(4000, 3000, 3, &limits).is_ok());
}

fn gradient(width: u32, height: u32) -> RgbBuf {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            data.extend([
                (x * 255 / width.max(1)) as u8,
                (y * 255 / height.max(1)) as u8,
                128,
            ]);
        }
    }
    RgbBuf {
        data,
        width,
        height,
    }
}

fn jpeg_bytes(width: u32, height: u32) -> Vec<u8> {
    encode::jpeg(&gradient(width, height), 90).unwrap().bytes
}

#[test]
fn large_jpeg_renders_both_sizes() {
    let bytes = jpeg_bytes(4000, 3000);
    let t = render(&bytes, ImageFormat::Jpeg, Some(1), &Limits::default()).unwrap();
    assert_eq!((t.display_width, t.display_height), (4000, 3000));
    assert_eq!((t.preview.width, t.preview.height), (1920, 1440));
    assert_eq!((t.thumb.width, t.thumb.height), (333, 250));
    assert_eq!(t.preview.mime, "image/jpeg");
    assert_eq!(t.thumb.mime, "image/webp");
    assert!(t.preview.bytes.starts_with(&[0xFF, 0xD8]));
    assert!(t.thumb.bytes.starts_with(b"RIFF"));
}

#[test]
fn orientation_six_swaps_axes() {
    let bytes = jpeg_bytes(4000, 3000);
    let t = render(&bytes, ImageFormat::Jpeg, Some(6), &Limits::default()).unwrap();
    assert_eq!((t.display_width, t.display_height), (3000, 4000));
    assert_eq!((t.preview.width, t.preview.height), (1440, 1920));
    assert_eq!((t.thumb.width, t.thumb.height), (250, 333));
    // Invalid orientations are ignored.
    let t = render(&bytes, ImageFormat::Jpeg, Some(42), &Limits::default()).unwrap();
    assert_eq!((t.display_width, t.display_height), (4000, 3000));
}

#[test]
fn small_and_extreme_shapes() {
    let t = render(
        &jpeg_bytes(1, 1),
        ImageFormat::Jpeg,
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        (
            t.preview.width,
            t.preview.height,
            t.thumb.width,
            t.thumb.height
        ),
        (1, 1, 1, 1)
    );
    // A 20000x300 panorama: the thumb is 16667 px wide, beyond WebP, so it falls back to JPEG.
    let t = render(
        &jpeg_bytes(20_000, 300),
        ImageFormat::Jpeg,
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((t.preview.width, t.preview.height), (20_000, 300));
    assert_eq!((t.thumb.width, t.thumb.height), (16_667, 250));
    assert_eq!(t.thumb.mime, "image/jpeg");
}

#[test]
fn tight_limits_refuse_before_decoding() {
    let bytes = jpeg_bytes(400, 300);
    let limits = Limits {
        max_pixels: 1000,
        ..Limits::default()
    };
    let e = render(&bytes, ImageFormat::Jpeg, None, &limits).unwrap_err();
    assert!(
        matches!(
            e,
            ThumbnailError::TooManyPixels {
                width: 400,
                height: 300,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn garbage_is_an_error_for_every_format() {
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::WebP,
        ImageFormat::Gif,
        ImageFormat::Tiff,
        ImageFormat::Heif,
    ] {
        for bytes in [&b""[..], b"this is stuff", &[0xFF, 0xD8, 0xFF][..]] {
            assert!(
                render(bytes, format, None, &Limits::default()).is_err(),
                "{format:?}"
            );
        }
    }
}
