//! The video container parsers of the video step: ISO-BMFF box walk and structure check, `moov`
//! metadata (Apple keys, ©xyz, loci, ISO 6709) and the Motion Photo lookup.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    timeline_media::video::fuzz_entry(data);
});
