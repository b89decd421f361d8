//! An object in the store read at positions, so that an uploaded archive is read where it is
//! (`POST /v1/imports`): the zip crate reads its central directory first, then each entry, by
//! ranged GETs. A read-ahead block turns the reader's many small reads (headers, a few bytes
//! each) into few requests; an entry's bytes are read in blocks of at least that size. Blocking:
//! call from a blocking thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::path::Path;

use super::archive::ReadAt;
use crate::storage::Storage;

/// The least a ranged read asks for.
const BLOCK: u64 = 1 << 20;
/// Blocks kept: one per reader that reads this object at once (entries are stored a few at a
/// time), so that readers do not evict each other's block.
const BLOCKS: usize = 4;

/// An object read by ranges, with its last blocks kept.
#[derive(Debug)]
pub struct StoreObject {
    storage: Storage,
    key: Path,
    len: u64,
    rt: tokio::runtime::Handle,
    /// Most recently read first. Held only to look up or add a block, never during a read.
    blocks: Mutex<VecDeque<(u64, Bytes)>>,
    /// Whether a read failed in the store (not in the archive's bytes): what was read through
    /// this object may then be incomplete for reasons that pass.
    failed: AtomicBool,
}

impl StoreObject {
    /// The object `key` of `len` bytes, read through the runtime `rt`.
    pub fn new(storage: Storage, key: Path, len: u64, rt: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Self {
            storage,
            key,
            len,
            rt,
            blocks: Mutex::new(VecDeque::with_capacity(BLOCKS)),
            failed: AtomicBool::new(false),
        })
    }

    /// Whether a read of this object failed in the store.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// The kept block holding `pos`, if any.
    fn cached(&self, pos: u64) -> std::io::Result<Option<(u64, Bytes)>> {
        let blocks = self.lock()?;
        Ok(blocks
            .iter()
            .find(|(start, bytes)| pos >= *start && pos < *start + bytes.len() as u64)
            .cloned())
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, VecDeque<(u64, Bytes)>>> {
        self.blocks
            .lock()
            .map_err(|_| std::io::Error::other("a reader of this object panicked"))
    }
}

impl ReadAt for StoreObject {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        if buf.is_empty() || pos >= self.len {
            return Ok(0);
        }
        let (start, bytes) = match self.cached(pos)? {
            Some(hit) => hit,
            None => {
                let want = (buf.len() as u64).max(BLOCK);
                let end = self.len.min(pos.saturating_add(want));
                let bytes = self
                    .rt
                    .block_on(self.storage.get_range(&self.key, pos..end))
                    .map_err(|e| {
                        self.failed.store(true, Ordering::Relaxed);
                        std::io::Error::other(e)
                    })?;
                if bytes.is_empty() {
                    return Ok(0);
                }
                // Only read-ahead blocks are kept: a large read (an entry read whole) is used
                // once, and keeping it would hold megabytes per archive.
                if bytes.len() as u64 <= BLOCK {
                    let mut blocks = self.lock()?;
                    blocks.push_front((pos, bytes.clone()));
                    blocks.truncate(BLOCKS);
                }
                (pos, bytes)
            }
        };
        let from = usize::try_from(pos - start).unwrap_or(usize::MAX);
        let n = buf.len().min(bytes.len().saturating_sub(from));
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        Ok(n)
    }
}
