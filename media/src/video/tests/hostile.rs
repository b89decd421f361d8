//! Hand-made hostile inputs: empty and tiny files, lying sizes, deep nesting, lying metadata.

use std::io::Cursor;

use crate::video::bmff::{self, BoxHeader};
use crate::video::{ContainerError, fuzz_entry, motion};

/// A box with a 32-bit size.
fn boxed(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = u32::try_from(payload.len() + 8)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    b.extend_from_slice(fourcc);
    b.extend_from_slice(payload);
    b
}

fn walk(bytes: &[u8]) -> Result<Vec<BoxHeader>, ContainerError> {
    bmff::top_level(&mut Cursor::new(bytes), bytes.len() as u64)
}

fn meta(moov_payload: &[u8]) -> bmff::MovieMeta {
    let file = [
        boxed(b"ftyp", b"isom\0\0\0\0"),
        boxed(b"moov", moov_payload),
    ]
    .concat();
    let boxes = walk(&file).unwrap();
    bmff::check_movie(&boxes).unwrap();
    let moov = bmff::find_top_level(&boxes, b"moov").unwrap();
    bmff::movie_meta(&mut Cursor::new(&file), moov).unwrap()
}

fn mvhd_v0(creation: u32) -> Vec<u8> {
    let mut body = vec![0u8; 100];
    body[4..8].copy_from_slice(&creation.to_be_bytes());
    body[12..16].copy_from_slice(&1000u32.to_be_bytes());
    body[16..20].copy_from_slice(&2500u32.to_be_bytes());
    boxed(b"mvhd", &body)
}

#[test]
fn empty_and_tiny_inputs() {
    assert_eq!(walk(b"").unwrap(), vec![]);
    assert!(matches!(
        bmff::check_movie(&[]),
        Err(ContainerError::Corrupt(_))
    ));
    let err = walk(b"\0\0\0\x10fty").unwrap_err();
    assert!(matches!(err, ContainerError::Truncated(_)), "{err:?}");
    assert!(
        err.to_string().contains("needs 8 bytes but only 7 remain"),
        "{err}"
    );
    assert_eq!(motion::find(&mut Cursor::new(b""), 0).unwrap(), None);
    assert_eq!(
        motion::find(&mut Cursor::new(b"\xFF\xD8"), 2).unwrap(),
        None
    );
    for n in 0..16 {
        fuzz_entry(&b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"[..n]);
    }
}

#[test]
fn sizes_that_lie() {
    // size == 1 with a huge 64-bit size.
    let mut large = vec![0, 0, 0, 1];
    large.extend_from_slice(b"mdat");
    large.extend_from_slice(&u64::MAX.to_be_bytes());
    let err = walk(&large).unwrap_err();
    assert!(
        matches!(err, ContainerError::Truncated(ref m) if m.contains("'mdat'")),
        "{err:?}"
    );
    // size == 1 cut off before the 64-bit size.
    assert!(matches!(
        walk(&large[..12]),
        Err(ContainerError::Truncated(_))
    ));
    // A size smaller than the header.
    let err = walk(b"\0\0\0\x04moov").unwrap_err();
    assert!(
        matches!(err, ContainerError::Corrupt(ref m) if m.contains("less than")),
        "{err:?}"
    );
    // 64-bit size smaller than its 16-byte header.
    let mut small = vec![0, 0, 0, 1];
    small.extend_from_slice(b"free");
    small.extend_from_slice(&9u64.to_be_bytes());
    assert!(matches!(walk(&small), Err(ContainerError::Corrupt(_))));
    // Garbage is "not a box", not a nonsense size.
    assert!(matches!(
        walk(b"\xFF\xD8\xFF\xE0\0\x10JFIF"),
        Err(ContainerError::Corrupt(_))
    ));
}

#[test]
fn size_zero_uuid_and_padding() {
    let mut file = boxed(b"ftyp", b"qt  \0\0\0\0");
    file.extend_from_slice(&boxed(b"uuid", &[7u8; 20]));
    file.extend_from_slice(&boxed(b"moov", &mvhd_v0(3_000_000_000)));
    file.extend_from_slice(b"\0\0\0\0mdat0123456789");
    let boxes = walk(&file).unwrap();
    assert_eq!(boxes.len(), 4);
    assert_eq!(boxes[1].header_len, 24);
    assert_eq!(boxes[1].payload_len(), 4);
    assert_eq!((boxes[3].size, boxes[3].end()), (18, file.len() as u64));
    bmff::check_movie(&boxes).unwrap();
    // Zero padding after the last box is not damage.
    file.extend_from_slice(&[0; 5]);
    assert_eq!(walk(&file).unwrap().len(), 4);
}

#[test]
fn movie_verdicts() {
    let no_moov = [boxed(b"ftyp", b"isom\0\0\0\0"), boxed(b"mdat", b"x")].concat();
    let err = bmff::check_movie(&walk(&no_moov).unwrap()).unwrap_err();
    assert!(err.to_string().contains("no 'moov' box"), "{err}");
    let odd_start = [boxed(b"abcd", b""), boxed(b"moov", b"")].concat();
    assert!(bmff::check_movie(&walk(&odd_start).unwrap()).is_err());
    // Old QuickTime: no ftyp, starts with `wide`.
    let old = [
        boxed(b"wide", b""),
        boxed(b"mdat", b""),
        boxed(b"moov", b""),
    ]
    .concat();
    bmff::check_movie(&walk(&old).unwrap()).unwrap();
}

#[test]
fn too_many_top_level_boxes() {
    let file = boxed(b"free", b"").repeat(bmff::MAX_TOP_LEVEL_BOXES + 1);
    assert!(matches!(walk(&file), Err(ContainerError::Corrupt(ref m)) if m.contains("100000")));
}

#[test]
fn oversized_or_cut_moov() {
    let huge = BoxHeader {
        fourcc: *b"moov",
        offset: 0,
        size: 65 * 1024 * 1024,
        header_len: 8,
    };
    let err = bmff::movie_meta(&mut Cursor::new(b""), &huge).unwrap_err();
    assert!(
        matches!(err, ContainerError::Corrupt(ref m) if m.contains("64 MiB")),
        "{err:?}"
    );
    let cut = BoxHeader {
        fourcc: *b"moov",
        offset: 0,
        size: 1000,
        header_len: 8,
    };
    let err = bmff::movie_meta(&mut Cursor::new(vec![0u8; 100]), &cut).unwrap_err();
    assert!(matches!(err, ContainerError::Truncated(_)), "{err:?}");
}

#[test]
fn moov_children_that_lie_are_skipped() {
    // mvhd is fine; the udta after it claims far more than the moov holds.
    let mut moov = mvhd_v0(3_000_000_000);
    moov.extend_from_slice(b"\0\x10\0\0udta\0\0\0\x10\xA9xyz");
    let m = meta(&moov);
    assert!(m.mvhd_creation.is_some());
    assert_eq!(m.duration_s, Some(2.5));
    assert_eq!(m.location, None);
    // Broken keys/ilst, an ilst index past the keys, a ©xyz whose length lies.
    let keys = [
        &[0u8; 4][..],
        &1000u32.to_be_bytes(),
        b"\0\0\0\x30mdtacom.apple",
    ]
    .concat();
    let ilst = boxed(
        b"ilst",
        &boxed(&7u32.to_be_bytes(), &boxed(b"data", b"\0\0\0\x01\0\0\0\0x")),
    );
    let qt_meta = [boxed(b"hdlr", &[0; 24]), boxed(b"keys", &keys), ilst].concat();
    let udta = boxed(b"udta", &boxed(b"\xA9xyz", b"\x7F\xFF\x15\xC7+12.0+013.0/"));
    let m = meta(&[boxed(b"meta", &qt_meta), udta, mvhd_v0(0)].concat());
    // Only the (zero-dated) mvhd survives.
    assert_eq!(
        m,
        bmff::MovieMeta {
            duration_s: Some(2.5),
            ..bmff::MovieMeta::default()
        }
    );
}

#[test]
fn deep_nesting_is_harmless() {
    let mut inner = boxed(b"\xA9xyz", b"\0\x0F\x15\xC7+12.0+013.0/");
    for _ in 0..10_000 {
        inner = boxed(b"udta", &inner);
    }
    let m = meta(&inner);
    assert_eq!(m.location, None);
    fuzz_entry(&inner);
}

#[test]
fn user_data_variants() {
    let udta = [
        boxed(b"\xA9day", b"\0\x13\x15\xC72020-11-20T15:04:02"),
        boxed(b"\xA9mak", b"\0\x07\x15\xC7ACME\x1b[m"),
        boxed(b"\xA9xyz", b"\0\x12\x15\xC7+51.4169-000.0806/"),
    ]
    .concat();
    let m = meta(&boxed(b"udta", &udta));
    assert_eq!(m.day, None);
    assert_eq!(
        m.day_local.map(|d| d.to_string()).as_deref(),
        Some("2020-11-20 15:04:02")
    );
    assert_eq!(m.make.as_deref(), Some("ACME[m"));
    assert_eq!(m.location.as_deref(), Some("+51.4169-000.0806/"));
    // iTunes-style udta/meta/ilst/©day.
    let data = boxed(b"data", b"\0\0\0\x01\0\0\0\x002021-01-02T03:04:05Z");
    let ilst = boxed(b"ilst", &boxed(b"\xA9day", &data));
    let itunes = boxed(b"meta", &[&[0u8; 4][..], ilst.as_slice()].concat());
    let m = meta(&boxed(b"udta", &itunes));
    assert_eq!(
        m.day.map(|d| d.to_rfc3339()).as_deref(),
        Some("2021-01-02T03:04:05+00:00")
    );
}

/// A fake still: SOI, optional APP1 XMP, EOI, then `tail`.
fn jpeg_with(xmp: Option<&str>, tail: &[u8]) -> Vec<u8> {
    let mut file = vec![0xFF, 0xD8];
    if let Some(xmp) = xmp {
        let payload = [&b"http://ns.adobe.com/xap/1.0/\0"[..], xmp.as_bytes()].concat();
        file.extend_from_slice(&[0xFF, 0xE1]);
        file.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        file.extend_from_slice(&payload);
    }
    file.extend_from_slice(&[0xFF, 0xDA, 0, 2, 1, 2, 3, 0xFF, 0xD9]);
    file.extend_from_slice(tail);
    file
}

fn find(bytes: &[u8]) -> Option<motion::EmbeddedVideo> {
    motion::find(&mut Cursor::new(bytes), bytes.len() as u64).unwrap()
}

fn tiny_mp4() -> Vec<u8> {
    [boxed(b"ftyp", b"mp42\0\0\0\0"), boxed(b"mdat", b"frames")].concat()
}

#[test]
fn jpeg_xmp_element_syntax_and_lies() {
    let mp4 = tiny_mp4();
    let n = mp4.len();
    let xmp = format!(
        "<GCamera:MicroVideo>1</GCamera:MicroVideo><GCamera:MicroVideoOffset>{n}</GCamera:MicroVideoOffset>"
    );
    let file = jpeg_with(Some(&xmp), &mp4);
    let video = find(&file).unwrap();
    assert_eq!(
        (video.offset, video.len),
        ((file.len() - n) as u64, n as u64)
    );
    // The XMP claims a video but the bytes there are not an MP4, or the offset is past the start.
    for offset in [n - 1, n + 1, 10_000_000] {
        let lying = format!(r#"<x GCamera:MotionPhoto="1" GCamera:MicroVideoOffset="{offset}"/>"#);
        assert_eq!(find(&jpeg_with(Some(&lying), &mp4)), None, "{offset}");
    }
    // No XMP, and a segment length that runs off the end.
    assert_eq!(find(&jpeg_with(None, &mp4)), None);
    assert_eq!(
        find(b"\xFF\xD8\xFF\xE1\xFF\xFFhttp://ns.adobe.com/xap/1.0/\0"),
        None
    );
    assert_eq!(find(b"\xFF\xD8\xFF\xE1\0\x01"), None);
}

#[test]
fn samsung_sef_trailer() {
    let mp4 = tiny_mp4();
    let mut file = jpeg_with(None, b"");
    let block_pos = file.len();
    let mut block = vec![0, 0, 0x30, 0x0A];
    block.extend_from_slice(&16u32.to_le_bytes());
    block.extend_from_slice(b"MotionPhoto_Data");
    block.extend_from_slice(&mp4);
    file.extend_from_slice(&block);
    let dir_pos = file.len();
    let mut dir = b"SEFH".to_vec();
    dir.extend_from_slice(&106u32.to_le_bytes());
    dir.extend_from_slice(&1u32.to_le_bytes());
    dir.extend_from_slice(&[0, 0, 0x30, 0x0A]);
    dir.extend_from_slice(&u32::try_from(dir_pos - block_pos).unwrap().to_le_bytes());
    dir.extend_from_slice(&u32::try_from(block.len()).unwrap().to_le_bytes());
    file.extend_from_slice(&dir);
    file.extend_from_slice(&u32::try_from(dir.len()).unwrap().to_le_bytes());
    file.extend_from_slice(b"SEFT");
    let video = find(&file).unwrap();
    assert_eq!(
        (video.offset, video.len),
        ((block_pos + 24) as u64, mp4.len() as u64)
    );
    // A directory length pointing before the start of the file.
    let end = file.len();
    file[end - 8..end - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(find(&file), None);
}

#[test]
fn heif_mpvd_cut_off_or_not_mp4() {
    let ftyp = boxed(b"ftyp", b"heic\0\0\0\0mif1heic");
    let mut cut = [ftyp.clone(), boxed(b"mpvd", &tiny_mp4())].concat();
    cut.truncate(cut.len() - 3);
    let err = motion::find(&mut Cursor::new(&cut), cut.len() as u64).unwrap_err();
    assert!(
        matches!(err, ContainerError::Truncated(ref m) if m.contains("'mpvd'")),
        "{err:?}"
    );
    let not_mp4 = [ftyp.clone(), boxed(b"mpvd", &[0x42; 40])].concat();
    assert_eq!(find(&not_mp4), None);
    // An MP4 (not HEIF brand) with an mpvd box is not a Motion Photo.
    let movie = [boxed(b"ftyp", b"isom\0\0\0\0"), boxed(b"mpvd", &tiny_mp4())].concat();
    assert_eq!(find(&movie), None);
}

#[test]
fn fuzz_entry_survives_cuts_and_flips() {
    let bytes = std::fs::read(super::fixture("sample.3gp")).unwrap();
    for cut in (0..bytes.len()).step_by(211) {
        fuzz_entry(&bytes[..cut]);
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut flipped = bytes.clone();
        let at = (state % bytes.len() as u64) as usize;
        flipped[at] ^= (state >> 32) as u8 | 1;
        fuzz_entry(&flipped);
    }
}
