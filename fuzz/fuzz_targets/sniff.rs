//! The type sniffer on any head of any file: never a panic, and every verdict has a kind and a
//! MIME type from the one table.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(format) = timeline_media::MediaFormat::sniff(data) {
        let _ = (format.kind(), format.mime());
    }
});
