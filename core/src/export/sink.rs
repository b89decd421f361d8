//! Where an archive's bytes go as they are made: on S3 a multipart upload whose id is
//! recorded in the export's row before its first part (so whatever a killed run leaves is
//! found and aborted from the row), one part uploading while the next fills; on a `file://`
//! store the store's own streamed write (a killed one leaves a staging file that
//! `Storage::discard` of the key removes). Memory: two parts at most.

use bytes::{Bytes, BytesMut};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use tokio::task::JoinHandle;

use crate::storage::{self, Storage};

/// An archive being written.
pub enum Sink {
    S3(S3Sink),
    Local(object_store::WriteMultipart),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3(s) => write!(f, "Sink::S3({} parts of {})", s.etags.len(), s.part_size),
            Self::Local(_) => f.write_str("Sink::Local"),
        }
    }
}

/// The S3 side: the upload, its part size, the parts stored and the one in flight.
#[derive(Debug)]
pub struct S3Sink {
    storage: Storage,
    key: Path,
    id: String,
    part_size: usize,
    buf: BytesMut,
    etags: Vec<String>,
    in_flight: Option<JoinHandle<Result<String, storage::Error>>>,
}

impl Sink {
    /// Starts writing `key`, expected to be about `estimate` bytes. On S3, `record` is given the
    /// new multipart upload's id and must commit it before this returns.
    pub async fn open<F, Fut>(
        storage: &Storage,
        key: &Path,
        estimate: u64,
        record: F,
    ) -> Result<Self, super::Error>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<(), super::Error>>,
    {
        if !storage.is_multipart() {
            let upload = storage
                .inner()
                .put_multipart(key)
                .await
                .map_err(storage::Error::from)?;
            return Ok(Self::Local(
                object_store::WriteMultipart::new_with_chunk_size(upload, storage::PART_SIZE),
            ));
        }
        let id = storage.create_multipart(key).await?;
        if let Err(e) = record(id.clone()).await {
            let _ = storage.abort_multipart(key, &id).await;
            return Err(e);
        }
        let part_size = usize::try_from(storage::part_size_for(estimate)).unwrap_or(usize::MAX);
        Ok(Self::S3(S3Sink {
            storage: storage.clone(),
            key: key.clone(),
            id,
            part_size,
            buf: BytesMut::new(),
            etags: Vec::new(),
            in_flight: None,
        }))
    }

    /// Appends bytes (waits while a part is stored when the next one is full).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), storage::Error> {
        match self {
            Self::Local(w) => {
                w.wait_for_capacity(4).await?;
                w.write(bytes);
                Ok(())
            }
            Self::S3(s) => s.write(bytes).await,
        }
    }

    /// Stores the last part and completes the object.
    pub async fn finish(self) -> Result<(), storage::Error> {
        match self {
            Self::Local(w) => {
                w.finish().await?;
                Ok(())
            }
            Self::S3(mut s) => {
                // An empty archive still needs one part; never an empty one after a full one.
                if !s.buf.is_empty() || (s.etags.is_empty() && s.in_flight.is_none()) {
                    let last = s.buf.split().freeze();
                    s.send(last).await?;
                }
                s.settle().await?;
                s.storage.complete_multipart(&s.key, &s.id, &s.etags).await
            }
        }
    }

    /// Gives up: aborts the upload (its parts are deleted). The caller clears the row's
    /// record of it once this returns.
    pub async fn abort(self) -> Result<(), storage::Error> {
        match self {
            Self::Local(w) => {
                w.abort().await?;
                Ok(())
            }
            Self::S3(mut s) => {
                if let Some(h) = s.in_flight.take() {
                    h.abort();
                }
                s.storage.abort_multipart(&s.key, &s.id).await
            }
        }
    }
}

impl S3Sink {
    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), storage::Error> {
        while !bytes.is_empty() {
            let room = self.part_size - self.buf.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = rest;
            if self.buf.len() == self.part_size {
                let part = self.buf.split().freeze();
                self.send(part).await?;
            }
        }
        Ok(())
    }

    /// Starts storing `part` once the one before it is stored.
    async fn send(&mut self, part: Bytes) -> Result<(), storage::Error> {
        self.settle().await?;
        let (storage, key, id) = (self.storage.clone(), self.key.clone(), self.id.clone());
        let index = self.etags.len();
        self.in_flight = Some(tokio::spawn(async move {
            storage.put_part(&key, &id, index, part).await
        }));
        Ok(())
    }

    /// Waits for the part in flight and records its ETag.
    async fn settle(&mut self) -> Result<(), storage::Error> {
        if let Some(h) = self.in_flight.take() {
            let etag = h
                .await
                .map_err(|e| storage::Error::Part(format!("the part's task stopped: {e}")))??;
            self.etags.push(etag);
        }
        Ok(())
    }
}
