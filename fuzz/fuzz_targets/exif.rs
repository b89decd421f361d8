//! The EXIF/XMP/maker-note reader on hostile bytes: any panic (caught inside the library or
//! not) is a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(timeline_media::exif::ExifError::Internal(m)) = timeline_media::exif::extract(data) {
        panic!("internal error: {m}");
    }
});
