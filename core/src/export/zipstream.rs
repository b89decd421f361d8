//! A zip archive written front to back, for an export streamed into the store part by part.
//!
//! Written here rather than with the `zip` crate's writer: that one is synchronous (`Write`),
//! while an export's bytes come from async store reads and go to async part uploads, so using
//! it would mean a thread and two channels per export. What an export needs is small: entries
//! stored as they are (photos and videos are compressed already; deflating them again costs a
//! core for nothing), CRC-32 and sizes in a data descriptor after each entry (nothing is known
//! before the bytes have passed), and ZIP64 where sizes or offsets pass 4 GiB (APPNOTE 6.3.10,
//! §4.3.9, §4.5.3). Only the central directory is kept until the end: about 80 bytes per entry.

use bytes::{BufMut, Bytes, BytesMut};

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
/// Bit 3: CRC and sizes follow the data; bit 11: the name is UTF-8.
const FLAGS: u16 = (1 << 3) | (1 << 11);
/// 2.0 (stored entries), 4.5 (ZIP64).
const VERSION: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// "Made by" Unix (upper byte 3), version 4.5.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
const U32_MAX: u64 = 0xFFFF_FFFF;

/// One entry's central directory record, kept until the archive ends.
#[derive(Debug)]
struct Central {
    name: Box<str>,
    crc: u32,
    size: u64,
    offset: u64,
    zip64_local: bool,
}

/// An entry being written: its CRC and size so far.
#[derive(Debug)]
pub struct Entry {
    name: Box<str>,
    offset: u64,
    zip64_local: bool,
    crc: crc32fast::Hasher,
    size: u64,
}

impl Entry {
    /// Counts bytes of the entry's data (the caller writes them as they are).
    pub fn update(&mut self, data: &[u8]) {
        self.crc.update(data);
        self.size += data.len() as u64;
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

/// The archive's state: the bytes written so far and the central directory to come.
#[derive(Debug)]
pub struct ZipStream {
    offset: u64,
    central: Vec<Central>,
    /// The DOS date and time every entry carries (the export's).
    dos: (u16, u16),
    /// Entries expected at least this large get ZIP64 local headers (4 GiB; lower in tests).
    zip64_at: u64,
}

/// An error of the archive's layout.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("entry {name}: {size} bytes, but it was started as a small entry (under 4 GiB)")]
    OutgrewEntry { name: String, size: u64 },
}

impl ZipStream {
    /// A new archive whose entries are dated `at`.
    pub fn new(at: chrono::NaiveDateTime) -> Self {
        Self {
            offset: 0,
            central: Vec::new(),
            dos: dos_time(at),
            zip64_at: U32_MAX,
        }
    }

    /// Bytes of the archive written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Starts entry `name`, expected to be about `expected` bytes: returns its local header
    /// (to write first) and the entry to count its data with.
    pub fn begin(&mut self, name: &str, expected: u64) -> (Bytes, Entry) {
        let zip64 = expected >= self.zip64_at;
        let mut b = BytesMut::with_capacity(30 + name.len() + 20);
        b.put_u32_le(LOCAL_SIG);
        b.put_u16_le(if zip64 { VERSION_ZIP64 } else { VERSION });
        b.put_u16_le(FLAGS);
        b.put_u16_le(0); // stored
        b.put_u16_le(self.dos.1);
        b.put_u16_le(self.dos.0);
        b.put_u32_le(0); // CRC-32: in the data descriptor
        let unknown = if zip64 { u32::MAX } else { 0 };
        b.put_u32_le(unknown);
        b.put_u32_le(unknown);
        b.put_u16_le(u16::try_from(name.len()).unwrap_or(u16::MAX));
        b.put_u16_le(if zip64 { 20 } else { 0 });
        b.put_slice(name.as_bytes());
        if zip64 {
            b.put_u16_le(1);
            b.put_u16_le(16);
            b.put_u64_le(0);
            b.put_u64_le(0);
        }
        let entry = Entry {
            name: name.into(),
            offset: self.offset,
            zip64_local: zip64,
            crc: crc32fast::Hasher::new(),
            size: 0,
        };
        self.offset += b.len() as u64;
        (b.freeze(), entry)
    }

    /// Ends an entry whose data (counted by [`Entry::update`]) was written: returns its data
    /// descriptor.
    pub fn end(&mut self, entry: Entry) -> Result<Bytes, Error> {
        let size = entry.size;
        if size >= U32_MAX && !entry.zip64_local {
            return Err(Error::OutgrewEntry {
                name: entry.name.into(),
                size,
            });
        }
        let crc = entry.crc.finalize();
        let mut b = BytesMut::with_capacity(24);
        b.put_u32_le(DESCRIPTOR_SIG);
        b.put_u32_le(crc);
        if entry.zip64_local {
            b.put_u64_le(size);
            b.put_u64_le(size);
        } else {
            b.put_u32_le(size as u32);
            b.put_u32_le(size as u32);
        }
        self.offset += size + b.len() as u64;
        self.central.push(Central {
            name: entry.name,
            crc,
            size,
            offset: entry.offset,
            zip64_local: entry.zip64_local,
        });
        Ok(b.freeze())
    }

    /// Ends the archive: the central directory and its end records.
    pub fn finish(self) -> Bytes {
        let start = self.offset;
        let mut b = BytesMut::with_capacity(self.central.len() * 80 + 100);
        for c in &self.central {
            self.central_record(&mut b, c);
        }
        let dir_size = b.len() as u64;
        let count = self.central.len() as u64;
        let zip64 = count >= 0xFFFF || start >= U32_MAX || dir_size >= U32_MAX;
        if zip64 {
            let record_at = start + dir_size;
            b.put_u32_le(ZIP64_EOCD_SIG);
            b.put_u64_le(44);
            b.put_u16_le(MADE_BY);
            b.put_u16_le(VERSION_ZIP64);
            b.put_u32_le(0);
            b.put_u32_le(0);
            b.put_u64_le(count);
            b.put_u64_le(count);
            b.put_u64_le(dir_size);
            b.put_u64_le(start);
            b.put_u32_le(ZIP64_LOCATOR_SIG);
            b.put_u32_le(0);
            b.put_u64_le(record_at);
            b.put_u32_le(1);
        }
        b.put_u32_le(EOCD_SIG);
        b.put_u16_le(0);
        b.put_u16_le(0);
        let short = |n: u64| u16::try_from(n).ok().filter(|_| !zip64).unwrap_or(u16::MAX);
        let long = |n: u64| u32::try_from(n).ok().filter(|_| !zip64).unwrap_or(u32::MAX);
        b.put_u16_le(short(count));
        b.put_u16_le(short(count));
        b.put_u32_le(long(dir_size));
        b.put_u32_le(long(start));
        b.put_u16_le(0);
        b.freeze()
    }

    fn central_record(&self, b: &mut BytesMut, c: &Central) {
        let big_size = c.size >= U32_MAX;
        let big_offset = c.offset >= U32_MAX;
        let mut extra = BytesMut::new();
        if big_size || big_offset {
            extra.put_u16_le(1);
            let len = if big_size { 16 } else { 0 } + if big_offset { 8 } else { 0 };
            extra.put_u16_le(len);
            if big_size {
                extra.put_u64_le(c.size);
                extra.put_u64_le(c.size);
            }
            if big_offset {
                extra.put_u64_le(c.offset);
            }
        }
        let zip64 = big_size || big_offset || c.zip64_local;
        b.put_u32_le(CENTRAL_SIG);
        b.put_u16_le(MADE_BY);
        b.put_u16_le(if zip64 { VERSION_ZIP64 } else { VERSION });
        b.put_u16_le(FLAGS);
        b.put_u16_le(0);
        b.put_u16_le(self.dos.1);
        b.put_u16_le(self.dos.0);
        b.put_u32_le(c.crc);
        let size = if big_size { u32::MAX } else { c.size as u32 };
        b.put_u32_le(size);
        b.put_u32_le(size);
        b.put_u16_le(u16::try_from(c.name.len()).unwrap_or(u16::MAX));
        b.put_u16_le(extra.len() as u16);
        b.put_u16_le(0); // comment
        b.put_u16_le(0); // disk
        b.put_u16_le(0); // internal attributes
        b.put_u32_le(0o100_644 << 16); // a regular file, rw-r--r--
        b.put_u32_le(if big_offset {
            u32::MAX
        } else {
            c.offset as u32
        });
        b.put_slice(c.name.as_bytes());
        b.put_slice(&extra);
    }
}

/// (date, time) in MS-DOS format; the format starts in 1980.
fn dos_time(at: chrono::NaiveDateTime) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    let year = at.year().clamp(1980, 2107) as u16;
    let date = ((year - 1980) << 9) | ((at.month() as u16) << 5) | at.day() as u16;
    let time = ((at.hour() as u16) << 11) | ((at.minute() as u16) << 5) | (at.second() as u16 / 2);
    (date, time)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn at() -> chrono::NaiveDateTime {
        chrono::DateTime::from_timestamp(1_764_900_000, 0)
            .map(|d| d.naive_utc())
            .unwrap_or_default()
    }

    /// Writes `entries` (each in a few pieces) and returns the archive's bytes.
    fn archive(zip: &mut ZipStream, entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in entries {
            let (header, mut entry) = zip.begin(name, data.len() as u64);
            out.extend_from_slice(&header);
            for piece in data.chunks(7) {
                entry.update(piece);
                out.extend_from_slice(piece);
            }
            out.extend_from_slice(&zip.end(entry).unwrap());
            assert_eq!(zip.offset(), out.len() as u64);
        }
        out
    }

    fn read_back(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut f = archive.by_index(i).unwrap();
                let mut data = Vec::new();
                f.read_to_end(&mut data).unwrap();
                (f.name().expect("a name").to_string(), data)
            })
            .collect()
    }

    #[test]
    fn the_zip_crate_reads_back_what_was_written() {
        let entries = [
            ("media/a.jpg", b"\xff\xd8 not really a jpeg".to_vec()),
            (
                "media/a.json",
                r#"{"filename":"Zürich.jpg"}"#.as_bytes().to_vec(),
            ),
            ("empty", Vec::new()),
        ];
        let mut zip = ZipStream::new(at());
        let mut bytes = archive(&mut zip, &entries);
        bytes.extend_from_slice(&zip.finish());
        let got = read_back(bytes);
        let want: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(n, d)| ((*n).to_owned(), d.clone()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn zip64_records_are_read_back_too() {
        // Every entry with a ZIP64 local header, as an entry of over 4 GiB has.
        let entries = [("big.mov", vec![7u8; 1000]), ("small.json", b"{}".to_vec())];
        let mut zip = ZipStream::new(at());
        zip.zip64_at = 0;
        let mut bytes = archive(&mut zip, &entries);
        bytes.extend_from_slice(&zip.finish());
        let got = read_back(bytes);
        assert_eq!(got[0].1, entries[0].1);
        assert_eq!(got[1].0, "small.json");
    }

    #[test]
    fn more_than_65535_entries_take_the_zip64_end_record() {
        let mut zip = ZipStream::new(at());
        let mut bytes = Vec::new();
        for i in 0..70_000u32 {
            let (header, entry) = zip.begin(&format!("e{i}"), 0);
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(&zip.end(entry).unwrap());
        }
        bytes.extend_from_slice(&zip.finish());
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), 70_000);
    }

    #[test]
    fn an_entry_that_outgrows_its_small_header_is_an_error() {
        let mut zip = ZipStream::new(at());
        let (_, mut entry) = zip.begin("x", 10);
        entry.size = U32_MAX + 1;
        assert!(zip.end(entry).is_err());
    }
}
