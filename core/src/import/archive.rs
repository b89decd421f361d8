//! The entries of an export: zip parts (read through their central directory, each entry
//! streamed, never the archive whole) and extracted folders. Blocking I/O: call from a
//! blocking thread. Entry names are data: they are matched as strings and never become paths.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{EntryMeta, Skipped};

/// A declared size this many times the compressed one is a zip bomb, not a photo (JPEG and
/// video barely compress; a sidecar JSON a few times).
const MAX_RATIO: u64 = 200;

/// Bytes read at positions: a local file, or an object in the store (ranged reads).
pub trait ReadAt: std::fmt::Debug + Send + Sync {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, pos)
    }
}

/// A file read at positions, cheap to clone: every entry of a part reads the one open file
/// (the zip crate's parsed central directory is shared between clones of the archive).
#[derive(Debug, Clone)]
struct SharedFile {
    file: Arc<dyn ReadAt>,
    pos: u64,
    len: u64,
}

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SharedFile {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| std::io::Error::other("seek before the start"))?;
        Ok(self.pos)
    }
}

/// Where an entry's bytes are.
#[derive(Debug, Clone)]
enum Location {
    Zip {
        part: usize,
        index: usize,
    },
    /// An entry of a damaged zip (no central directory), found by its local header at
    /// `header` in `damaged[part]`.
    Local {
        part: usize,
        header: u64,
    },
    File(PathBuf),
}

/// Every entry of the export's parts and folders, in the order given.
#[derive(Debug, Default)]
pub struct Export {
    parts: Vec<zip::ZipArchive<SharedFile>>,
    /// Zips whose central directory is lost (a truncated download): read by local headers.
    damaged: Vec<SharedFile>,
    pub entries: Vec<EntryMeta>,
    locations: Vec<Location>,
}

/// Why an entry could not be read (named in the summary).
pub type ReadError = String;

impl Export {
    /// Opens zips read at positions (`sources`: a name to show, the reader, its length), such
    /// as objects in the store read by ranges: the central directory first, then each entry
    /// as it is read, never the archive whole. Unreadable ones are named, as by [`Export::open`].
    pub fn open_sources(sources: Vec<(String, Arc<dyn ReadAt>, u64)>) -> (Self, Vec<Skipped>) {
        let mut export = Self::default();
        let mut skipped = Vec::new();
        for (shown, file, len) in sources {
            let shared = SharedFile { file, pos: 0, len };
            match zip_of(shared) {
                Ok(archive) => export.add_zip(archive, &mut skipped),
                Err((Some(file), e)) => export.add_damaged(&shown, file, &e, &mut skipped),
                Err((None, e)) => {
                    skipped.push(Skipped::new(&shown, format!("unreadable zip: {e}")));
                }
            }
        }
        (export, skipped)
    }

    /// Opens `paths` (zip files and folders). An unreadable zip is named in the returned list
    /// and the rest goes on; so is an entry that is a zip bomb.
    pub fn open(paths: &[PathBuf]) -> (Self, Vec<Skipped>) {
        let mut export = Self::default();
        let mut skipped = Vec::new();
        for path in paths {
            let shown = path.display().to_string();
            if path.is_dir() {
                export.add_folder(path, &mut skipped);
            } else {
                match open_zip(path) {
                    Ok(archive) => export.add_zip(archive, &mut skipped),
                    Err((Some(file), e)) => export.add_damaged(&shown, file, &e, &mut skipped),
                    Err((None, e)) => {
                        skipped.push(Skipped::new(&shown, format!("unreadable zip: {e}")));
                    }
                }
            }
        }
        (export, skipped)
    }

    fn add_zip(&mut self, mut archive: zip::ZipArchive<SharedFile>, skipped: &mut Vec<Skipped>) {
        let part = self.parts.len();
        for index in 0..archive.len() {
            let Ok(entry) = archive.by_index_raw(index) else {
                continue;
            };
            if entry.is_dir() {
                continue;
            }
            let name = match entry.name() {
                Ok(n) => n.into_owned(),
                Err(e) => {
                    skipped.push(Skipped::new(
                        &format!("entry {index}"),
                        format!("unreadable name: {e}"),
                    ));
                    continue;
                }
            };
            let (size, packed) = (entry.size(), entry.compressed_size());
            if let Some(bomb) = bomb(&name, size, packed) {
                skipped.push(bomb);
                continue;
            }
            self.entries.push(EntryMeta { name, size });
            self.locations.push(Location::Zip { part, index });
        }
        self.parts.push(archive);
    }

    /// A zip without its central directory (cut short): its entries are found walking the
    /// local headers from the start, up to the damage. An entry cut in the middle fails its
    /// checksum when read and is named then; what lies past the damage is named here.
    fn add_damaged(
        &mut self,
        shown: &str,
        mut file: SharedFile,
        error: &str,
        skipped: &mut Vec<Skipped>,
    ) {
        let part = self.damaged.len();
        let mut found = 0usize;
        let end = loop {
            let header = file.pos;
            let entry = match zip::read::read_zipfile_from_stream(&mut file) {
                Ok(Some(entry)) => entry,
                Ok(None) => break None,
                Err(e) => break Some(format!("{e} at byte {header}")),
            };
            // Dropping a streamed entry reads past its compressed bytes (no decompression).
            if entry.is_dir() {
                continue;
            }
            let name = match entry.name() {
                Ok(n) => n.into_owned(),
                Err(e) => break Some(format!("an unreadable entry name ({e}) at byte {header}")),
            };
            let (size, packed) = (entry.size(), entry.compressed_size());
            drop(entry);
            if let Some(bomb) = bomb(&name, size, packed) {
                skipped.push(bomb);
                continue;
            }
            found += 1;
            self.entries.push(EntryMeta { name, size });
            self.locations.push(Location::Local { part, header });
        };
        let after = end.map_or_else(String::new, |e| format!("; reading stopped: {e}"));
        skipped.push(Skipped::new(
            shown,
            format!(
                "a damaged zip ({error}): its {found} entries up to the damage are read (one cut by \
                 it is named when read), anything after it is lost{after}"
            ),
        ));
        file.pos = 0;
        self.damaged.push(file);
    }

    fn add_folder(&mut self, root: &Path, skipped: &mut Vec<Skipped>) {
        let mut stack = vec![root.to_path_buf()];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            let Ok(list) = std::fs::read_dir(&dir) else {
                skipped.push(Skipped::new(
                    &dir.display().to_string(),
                    "unreadable folder",
                ));
                continue;
            };
            for entry in list.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(path),
                    Ok(t) if t.is_file() => {
                        let size = entry.metadata().map_or(0, |m| m.len());
                        let name = path
                            .strip_prefix(root)
                            .unwrap_or(&path)
                            .to_string_lossy()
                            .replace(std::path::MAIN_SEPARATOR, "/");
                        found.push((name, size, path));
                    }
                    _ => {}
                }
            }
        }
        found.sort();
        for (name, size, path) in found {
            self.entries.push(EntryMeta { name, size });
            self.locations.push(Location::File(path));
        }
    }

    /// Runs `f` on a reader of entry `i`'s bytes (never more than its declared size; a zip
    /// entry's checksum is checked as its end is read).
    pub fn with_reader<T>(
        &self,
        i: usize,
        f: impl FnOnce(&mut dyn Read) -> T,
    ) -> Result<T, ReadError> {
        let size = self.entries.get(i).map_or(0, |e| e.size);
        match self.locations.get(i) {
            Some(Location::Zip { part, index }) => {
                let mut archive = self.parts.get(*part).ok_or("no such part")?.clone();
                let entry = archive
                    .by_index(*index)
                    .map_err(|e| format!("unreadable entry: {e}"))?;
                Ok(f(&mut entry.take(size)))
            }
            Some(Location::Local { part, header }) => {
                let mut file = self.damaged.get(*part).ok_or("no such part")?.clone();
                file.pos = *header;
                let entry = zip::read::read_zipfile_from_stream(&mut file)
                    .map_err(|e| format!("unreadable entry: {e}"))?
                    .ok_or("no entry at its header")?;
                Ok(f(&mut entry.take(size)))
            }
            Some(Location::File(path)) => {
                let file = File::open(path).map_err(|e| format!("cannot read: {e}"))?;
                Ok(f(&mut file.take(size)))
            }
            None => Err("no such entry".into()),
        }
    }

    /// Entry `i` whole, if it is at most `cap` bytes (sidecars, small photos).
    pub fn read_whole(&self, i: usize, cap: u64) -> Result<Vec<u8>, ReadError> {
        let size = self.entries.get(i).map_or(0, |e| e.size);
        if size > cap {
            return Err(format!(
                "{size} bytes, over the {cap}-byte limit for this entry"
            ));
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        self.with_reader(i, |r| r.read_to_end(&mut out))?
            .map_err(|e| format!("unreadable: {e}"))?;
        Ok(out)
    }
}

/// A zip bomb: an entry declaring far more than its compressed size could hold.
fn bomb(name: &str, size: u64, packed: u64) -> Option<Skipped> {
    (size > packed.max(1).saturating_mul(MAX_RATIO) && size > 1 << 20).then(|| {
        Skipped::new(
            name,
            format!("refused: {size} bytes declared from {packed} compressed (a zip bomb)"),
        )
    })
}

/// Opens a zip through its central directory. On failure, the file (when it could be opened
/// and starts like a zip) to be read by local headers instead.
fn open_zip(path: &Path) -> Result<zip::ZipArchive<SharedFile>, (Option<SharedFile>, String)> {
    let file = File::open(path).map_err(|e| (None, e.to_string()))?;
    let len = file.metadata().map_err(|e| (None, e.to_string()))?.len();
    zip_of(SharedFile {
        file: Arc::new(file),
        pos: 0,
        len,
    })
}

/// [`open_zip`] of a reader.
fn zip_of(
    mut shared: SharedFile,
) -> Result<zip::ZipArchive<SharedFile>, (Option<SharedFile>, String)> {
    zip::ZipArchive::new(shared.clone()).map_err(|e| {
        let mut magic = [0u8; 4];
        let local = shared.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04";
        shared.pos = 0;
        (local.then_some(shared), e.to_string())
    })
}
