//! Unit tests for EXIF parsing helpers; whole-file behaviour is covered in `media/tests/`.
//! `text_chunks`: PNG raw profiles and XMP dates; `far_fix`: GPS fixes far from any town;
//! `gps_entries`: a fix beside one malformed GPS entry.

mod far_fix;
mod gps_entries;
mod text_chunks;

use super::metadata::{sanitise, webp_exif_chunk};
use super::*;

#[test]
fn offsets_parse_and_reject_nonsense() {
    assert_eq!(parse_offset("+02:00"), FixedOffset::east_opt(7200));
    assert_eq!(
        parse_offset("-05:30"),
        FixedOffset::west_opt(5 * 3600 + 1800)
    );
    assert_eq!(parse_offset("+0100\0"), FixedOffset::east_opt(3600));
    assert_eq!(parse_offset("   :  "), None);
    assert_eq!(parse_offset("+25:00"), None);
    assert_eq!(parse_offset("02:00"), None);
    assert_eq!(parse_offset("+2:00"), None);
    assert_eq!(parse_offset(""), None);
}

#[test]
fn subsec_is_scaled_to_nanoseconds() {
    assert_eq!(subsec_nanos("550"), Some(550_000_000));
    assert_eq!(subsec_nanos("0887"), Some(88_700_000));
    assert_eq!(subsec_nanos("1234567890123"), Some(123_456_789));
    assert_eq!(subsec_nanos("  "), None);
}

#[test]
fn camera_strings_are_cleaned() {
    assert_eq!(
        clean_camera_string("  NIKON\0\0 ").as_deref(),
        Some("NIKON")
    );
    assert_eq!(clean_camera_string("\0\0\0"), None);
    assert_eq!(
        clean_camera_string("a\u{1b}[31mb").as_deref(),
        Some("a[31mb")
    );
    assert_eq!(
        clean_camera_string(&"x".repeat(500)).map(|s| s.len()),
        Some(200)
    );
}

#[test]
fn sanitise_caps_and_strips() {
    assert_eq!(sanitise("a\nb\u{7}c "), "abc");
    let long = "é".repeat(2000);
    let s = sanitise(&long);
    assert!(s.len() <= 1024 && s.ends_with('…'));
}

#[test]
fn garbage_and_empty_inputs_have_no_exif() {
    for bytes in [&b""[..], b"this is stuff", b"GIF89a\x01\x00\x01\x00"] {
        let facts = extract(bytes).unwrap();
        assert!(facts.gps.is_none() && facts.date_time_original.is_none());
        assert_eq!(facts.metadata, serde_json::json!({}));
    }
}

#[test]
fn webp_chunk_walk_is_bounded() {
    assert_eq!(webp_exif_chunk(b"RIFF\0\0\0\0WEBP"), None);
    let mut file = b"RIFF\0\0\0\0WEBPVP8 \x03\0\0\0abc\0EXIF\x02\0\0\0hi".to_vec();
    assert_eq!(webp_exif_chunk(&file), Some(&b"hi"[..]));
    file.truncate(file.len() - 1);
    assert_eq!(webp_exif_chunk(&file), None);
    assert_eq!(
        webp_exif_chunk(b"RIFF\0\0\0\0WEBPEXIF\xff\xff\xff\xff"),
        None
    );
}

#[test]
fn live_photo_still_has_its_content_identifier() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/video/IMG_7943.HEIC"
    );
    let facts = extract(&std::fs::read(path).unwrap()).unwrap();
    // exiftool: MakerNotes:MediaGroupUUID; the paired IMG_7943_HEVC.MOV has the same value.
    assert_eq!(
        facts.content_identifier.as_deref(),
        Some("9B539AB8-A668-4FA6-9207-EB653A5E7E3C")
    );
    let metadata = facts.metadata.as_object().unwrap();
    assert!(!metadata.contains_key("MakerNote"));
    assert!(
        !metadata
            .values()
            .any(|v| v.as_str().is_some_and(|s| s.contains("Apple iOS")))
    );
    // Non-Apple stills have none.
    let nikon = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/DSCN0010.jpg"
    );
    assert_eq!(
        extract(&std::fs::read(nikon).unwrap())
            .unwrap()
            .content_identifier,
        None
    );
}
