//! EXIF in PNG text chunks (ImageMagick's raw profiles) and capture dates from XMP, including
//! damaged and hostile chunks.

use chrono::{FixedOffset, NaiveDate, NaiveDateTime};

use super::super::png_text::{self, MAX_INFLATED_BYTES, decode_raw_profile};
use super::super::xmp_date::{capture_date, parse_date, property};
use super::super::xmp_packet;
use super::super::{DateSource, ExifError, extract};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
}

/// A minimal PNG (1x1 grey IHDR, no image data needed by the readers) with `chunks` after IHDR.
/// CRCs are left zero: neither kamadak-exif nor our reader checks them.
fn png(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut out = png_text::SIGNATURE.to_vec();
    let ihdr = [0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0];
    let all = std::iter::once((b"IHDR", ihdr.to_vec()))
        .chain(chunks.iter().map(|(k, d)| (*k, d.clone())))
        .chain(std::iter::once((b"IEND", Vec::new())));
    for (kind, data) in all {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        out.extend_from_slice(kind.as_slice());
        out.extend_from_slice(&data);
        out.extend_from_slice(&[0; 4]);
    }
    out
}

fn keyword(name: &str, rest: &[u8]) -> Vec<u8> {
    [name.as_bytes(), b"\0", rest].concat()
}

fn ztxt(name: &str, text: &[u8]) -> Vec<u8> {
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(text, 6);
    keyword(name, &[&[0u8][..], &compressed].concat())
}

fn itxt(name: &str, text: &[u8], compress: bool) -> Vec<u8> {
    let body = if compress {
        miniz_oxide::deflate::compress_to_vec_zlib(text, 6)
    } else {
        text.to_vec()
    };
    let header: &[u8] = if compress {
        b"\x01\x00\0\0"
    } else {
        b"\0\0\0\0"
    };
    keyword(name, &[header, &body].concat())
}

/// The EXIF block the raw-profile fixtures carry ("Exif\0\0" + TIFF), from the tEXt fixture.
fn fixture_profile_text() -> Vec<u8> {
    let file = fixture("png_raw_profile_exif_text.png");
    let start = file.windows(4).position(|w| w == b"tEXt").unwrap() + 4;
    let len = usize::try_from(u32::from_be_bytes(
        file[start - 8..start - 4].try_into().unwrap(),
    ))
    .unwrap();
    file[start + "Raw profile type exif\0".len()..start + len].to_vec()
}

fn wrap_xmp(body: &str) -> String {
    format!(
        "<?xpacket begin='\u{feff}'?><x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF>{body}</rdf:RDF></x:xmpmeta><?xpacket end='w'?>"
    )
}

#[test]
fn raw_profile_fixtures_read_like_normal_exif() {
    for name in [
        "png_raw_profile_exif.png",
        "png_raw_profile_exif_text.png",
        "png_raw_profile_app1.png",
    ] {
        let facts = extract(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            facts.date_time_original,
            Some(at(2019, 5, 6, 7, 8, 9)),
            "{name}"
        );
        assert_eq!(
            facts.offset_time_original,
            FixedOffset::east_opt(9 * 3600),
            "{name}"
        );
        assert_eq!(facts.date_source, Some(DateSource::Exif), "{name}");
        assert_eq!(facts.make.as_deref(), Some("TimelineCam"), "{name}");
        assert_eq!(facts.model.as_deref(), Some("PNG Test"), "{name}");
        assert_eq!(facts.orientation, Some(6), "{name}");
        let gps = facts.gps.unwrap_or_else(|| panic!("{name}: no GPS"));
        assert!((gps.latitude - 35.6586).abs() < 1e-4, "{name}: {gps:?}");
        assert!((gps.longitude - 139.7454).abs() < 1e-4, "{name}: {gps:?}");
        // The other tags go through the same JSON path as any EXIF.
        let metadata = facts.metadata.as_object().unwrap();
        assert!(metadata.contains_key("ExifVersion"), "{name}: {metadata:?}");
    }
}

#[test]
fn xmp_only_png_gets_its_date_and_offset() {
    let facts = extract(&fixture("png_xmp_date.png")).unwrap();
    assert_eq!(facts.date_time_original, Some(at(2021, 7, 4, 18, 22, 11)));
    assert_eq!(facts.offset_time_original, FixedOffset::east_opt(2 * 3600));
    assert_eq!(facts.date_source, Some(DateSource::Xmp));
    assert_eq!((facts.gps, facts.make), (None, None));
}

#[test]
fn xmp_only_jpeg_gets_its_create_date() {
    // no_exif.jpg: Photoshop's xmp:CreateDate 2013-09-23T10:09:46+02:00, no EXIF at all.
    let facts = extract(&fixture("no_exif.jpg")).unwrap();
    assert_eq!(facts.date_time_original, Some(at(2013, 9, 23, 10, 9, 46)));
    assert_eq!(facts.offset_time_original, FixedOffset::east_opt(2 * 3600));
    assert_eq!(facts.date_source, Some(DateSource::Xmp));
}

#[test]
fn exif_date_wins_over_xmp() {
    let xmp = wrap_xmp(r#"<rdf:Description exif:DateTimeOriginal="2001-01-01T00:00:00Z"/>"#);
    let file = png(&[
        (
            b"tEXt",
            keyword("Raw profile type exif", &fixture_profile_text()),
        ),
        (b"iTXt", itxt("XML:com.adobe.xmp", xmp.as_bytes(), false)),
    ]);
    let facts = extract(&file).unwrap();
    assert_eq!(facts.date_time_original, Some(at(2019, 5, 6, 7, 8, 9)));
    assert_eq!(facts.date_source, Some(DateSource::Exif));
}

#[test]
fn compressed_itxt_and_raw_xmp_profile_are_read() {
    let xmp = wrap_xmp(
        "<rdf:Description><xmp:CreateDate>2018-02-03T04:05Z</xmp:CreateDate></rdf:Description>",
    );
    let facts = extract(&png(&[(
        b"iTXt",
        itxt("XML:com.adobe.xmp", xmp.as_bytes(), true),
    )]))
    .unwrap();
    assert_eq!(facts.date_time_original, Some(at(2018, 2, 3, 4, 5, 0)));
    assert_eq!(facts.offset_time_original, FixedOffset::east_opt(0));

    let hex: String = xmp.bytes().map(|b| format!("{b:02x}")).collect();
    let text = format!("\nxmp\n{:8}\n{hex}\n", xmp.len());
    let facts = extract(&png(&[(
        b"zTXt",
        ztxt("Raw profile type xmp", text.as_bytes()),
    )]))
    .unwrap();
    assert_eq!(facts.date_time_original, Some(at(2018, 2, 3, 4, 5, 0)));
}

#[test]
fn webp_xmp_chunk_gives_the_date_without_offset() {
    let xmp = wrap_xmp(
        r#"<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" photoshop:DateCreated='2020-02-29T23:59:58'/>"#,
    );
    let mut body = b"WEBPVP8 \x03\0\0\0abc\0XMP ".to_vec();
    body.extend_from_slice(&u32::try_from(xmp.len()).unwrap().to_le_bytes());
    body.extend_from_slice(xmp.as_bytes());
    let file = [
        &b"RIFF"[..],
        &u32::try_from(body.len()).unwrap().to_le_bytes(),
        &body,
    ]
    .concat();
    let facts = extract(&file).unwrap();
    assert_eq!(facts.date_time_original, Some(at(2020, 2, 29, 23, 59, 58)));
    assert_eq!(facts.offset_time_original, None);
    assert_eq!(facts.date_source, Some(DateSource::Xmp));
}

#[test]
fn packets_elsewhere_are_found_by_searching() {
    let xmp = wrap_xmp(r#"<rdf:Description xmp:CreateDate="2015-06-07T08:09:10-03:00"/>"#);
    let file = [
        &b"\0\0\0\x18ftypheic"[..],
        &[7u8; 300],
        xmp.as_bytes(),
        &[9u8; 50],
    ]
    .concat();
    let packet = xmp_packet::find(&file).unwrap();
    assert!(packet.starts_with("<x:xmpmeta") && packet.ends_with("</x:xmpmeta>"));
    let date = capture_date(&packet).unwrap();
    assert_eq!(date.date_time, at(2015, 6, 7, 8, 9, 10));
    assert_eq!(date.offset, FixedOffset::west_opt(3 * 3600));
    // An unterminated packet is cut at the cap, not read to the end of memory.
    assert!(xmp_packet::find(b"II*\0<x:xmpmeta xmp:CreateDate='2015-06-07T08:09'").is_some());
    assert!(xmp_packet::find(b"<x:xmpmet").is_none());
}

#[test]
fn properties_by_priority_and_syntax() {
    let xmp = r#"<rdf:Description xmp:CreateDate="2003-03-03T03:03"
        myxmp:CreateDate="1999-09-09T09:09">
        <photoshop:DateCreated>2002-02-02T02:02:02+01:00</photoshop:DateCreated>
        <exif:DateTimeOriginal>not a date</exif:DateTimeOriginal>"#;
    assert_eq!(property(xmp, "xmp:CreateDate"), Some("2003-03-03T03:03"));
    assert_eq!(property(xmp, "exif:DateTimeOriginal"), Some("not a date"));
    assert_eq!(property(xmp, "exif:DateTime"), None);
    // exif: is unreadable, so photoshop: is next, and it beats xmp: wherever it stands.
    let date = capture_date(xmp).unwrap();
    assert_eq!(date.date_time, at(2002, 2, 2, 2, 2, 2));
    assert_eq!(date.offset, FixedOffset::east_opt(3600));
    // A prefix that merely ends like ours is another property.
    assert_eq!(
        property(r#"<a myxmp:CreateDate="x"/>"#, "xmp:CreateDate"),
        None
    );
    assert_eq!(capture_date("<xmp:CreateDate/>"), None);
    assert_eq!(capture_date(""), None);
}

#[test]
fn iso_dates_parse_and_reject_nonsense() {
    let d = |s: &str| parse_date(s).map(|x| (x.date_time, x.offset));
    assert_eq!(
        d("2021-07-04T18:22:11+02:00"),
        Some((at(2021, 7, 4, 18, 22, 11), FixedOffset::east_opt(7200)))
    );
    assert_eq!(
        d("2021-07-04T18:22:11.25-05:30"),
        Some((
            at(2021, 7, 4, 18, 22, 11) + chrono::Duration::milliseconds(250),
            FixedOffset::west_opt(5 * 3600 + 1800)
        ))
    );
    assert_eq!(
        d("2021-07-04T18:22Z").map(|x| x.1),
        Some(FixedOffset::east_opt(0))
    );
    assert_eq!(
        d("2021:07:04 18:22:11"),
        Some((at(2021, 7, 4, 18, 22, 11), None))
    );
    for bad in [
        "2021-07-04",
        "2021",
        "2021-13-01T00:00",
        "2021-07-04T25:00",
        "2021-07-04T18:22:11+25:00",
        "2021-07-04T18:22:11+2",
        "21-07-04T18:22",
        "2021-07-04T",
        "garbage",
        "2021-07-04T18:22:11\u{e9}",
    ] {
        assert_eq!(d(bad), None, "{bad}");
    }
    assert_eq!(d(&format!("2021-07-04T18:22:11{}", "0".repeat(100))), None);
}

#[test]
fn raw_profile_decoding() {
    assert_eq!(
        decode_raw_profile(b"\nexif\n       3\nA0ff\n01\n").unwrap(),
        [0xA0, 0xFF, 1]
    );
    // The declared length limits the output...
    assert_eq!(decode_raw_profile(b"\nexif\n 1\nA0ff").unwrap(), [0xA0]);
    // ...but a lie in the other direction keeps what is there, without a huge allocation.
    assert_eq!(
        decode_raw_profile(b"exif 18446744073709551615 0102").unwrap(),
        [1, 2]
    );
    for bad in [
        &b""[..],
        b"\nexif\n",
        b"\nexif\n  x\n0102",
        b"\nexif\n 99999999999999999999999\n0102",
        b"\nexif\n 2\n01zz",
        b"\nexif\n 0\n0102",
        b"\nexif\n 2\n",
    ] {
        assert!(
            matches!(decode_raw_profile(bad), Err(ExifError::Corrupt(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn hostile_profiles_are_errors_not_panics() {
    let profile = fixture_profile_text();
    // Bad hex in an otherwise fine chunk.
    let mut bad_hex = profile.clone();
    let last = bad_hex.len() - 3;
    bad_hex[last] = b'g';
    let file = png(&[(b"tEXt", keyword("Raw profile type exif", &bad_hex))]);
    assert!(matches!(extract(&file), Err(ExifError::Corrupt(_))));
    // A length claiming far more than the chunk holds: the EXIF that is there still reads.
    let text = String::from_utf8(profile.clone()).unwrap();
    let lying = text.replacen("     386", "99999999", 1);
    let facts = extract(&png(&[(
        b"tEXt",
        keyword("Raw profile type exif", lying.as_bytes()),
    )]))
    .unwrap();
    assert_eq!(facts.date_time_original, Some(at(2019, 5, 6, 7, 8, 9)));
    // A length claiming far less: the TIFF block is cut short, which kamadak-exif reports.
    let short = text.replacen("     386", "      20", 1);
    let result = extract(&png(&[(
        b"tEXt",
        keyword("Raw profile type exif", short.as_bytes()),
    )]));
    assert!(result.is_err() || result.unwrap().date_time_original.is_none());
    // Broken zlib.
    let mut broken = ztxt("Raw profile type exif", &profile);
    broken.truncate(broken.len() / 2);
    assert!(matches!(
        extract(&png(&[(b"zTXt", broken)])),
        Err(ExifError::Truncated(_))
    ));
    // Unknown compression method.
    let file = png(&[(b"zTXt", keyword("Raw profile type exif", b"\x05xyz"))]);
    assert!(matches!(extract(&file), Err(ExifError::Corrupt(_))));
    // A chunk whose length runs past the end of the file is never read; kamadak-exif's verdict
    // on the broken PNG ("Broken PNG file") stands.
    let mut cut = png(&[(b"tEXt", keyword("Raw profile type exif", &profile))]);
    cut.truncate(cut.len() - 200);
    assert!(matches!(extract(&cut), Err(ExifError::Corrupt(_))));
}

#[test]
fn zip_bomb_profile_is_capped() {
    // 17 MiB of hex digits inflate past the 16 MiB budget from ~17 KB of zTXt.
    let mut text = b"\nexif\n 99999999\n".to_vec();
    text.resize(MAX_INFLATED_BYTES + 1024 * 1024, b'0');
    let file = png(&[(b"zTXt", ztxt("Raw profile type exif", &text))]);
    assert!(file.len() < 100 * 1024, "{}", file.len());
    match extract(&file) {
        Err(ExifError::Corrupt(message)) => assert!(message.contains("inflates beyond")),
        other => panic!("{other:?}"),
    }
    // Pillow's text-chunk bomb uses other keywords: never inflated, nothing found.
    let facts = extract(&fixture("bad/png_decompression_dos.png")).unwrap();
    assert!(facts.date_time_original.is_none());
}

#[test]
fn every_truncation_of_the_fixtures_is_harmless() {
    for name in ["png_raw_profile_exif.png", "png_xmp_date.png"] {
        let file = fixture(name);
        for len in (0..file.len()).step_by(5) {
            // Ok or Err, never a panic (extract catches those and says Internal).
            if let Err(ExifError::Internal(e)) = extract(&file[..len]) {
                panic!("{name} cut at {len}: {e}");
            }
        }
    }
}
