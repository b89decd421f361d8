//! The object store holding originals and thumbnails: local filesystem by default, any
//! S3-compatible service by URL (`TIMELINE_STORAGE=s3://bucket/prefix`, `AWS_*` variables).
//! Keys are made here from ids only; a client's filename never becomes part of a path.

use std::sync::Arc;

use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, path::Path};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// Errors talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid storage URL {url:?}: {reason}")]
    Config { url: String, reason: String },
    #[error("object not found: {0}")]
    NotFound(String),
    #[error("storage error: {0}")]
    Store(#[source] object_store::Error),
    #[error("local file error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => Self::NotFound(path),
            other => Self::Store(other),
        }
    }
}

/// Which stored rendition of a media file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    Original,
    Thumb,
    Preview,
}

/// A handle to the configured object store (cheap to clone).
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The directory of a `file://` store: tools that need a path (ffmpeg) read the object in
    /// place instead of a spooled copy.
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.store)
    }
}

impl Storage {
    /// Opens the store named by `url`: `file:///abs/dir`, a plain directory path, or
    /// `s3://bucket/prefix` (credentials from the usual `AWS_*` environment variables).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let config_err = |reason: String| Error::Config {
            url: url.to_owned(),
            reason,
        };
        let mut local_root = None;
        let store: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(s3_retry())
                .build()
                .map_err(|e| config_err(e.to_string()))?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(dir).map_err(|e| config_err(e.to_string()))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| config_err(e.to_string()))?;
            local_root = Some(std::fs::canonicalize(dir).map_err(|e| config_err(e.to_string()))?);
            Arc::new(fs.with_automatic_cleanup(true))
        };
        Ok(Self { store, local_root })
    }

    /// The default store: `./data` under the working directory.
    pub fn default_url() -> String {
        let dir = std::env::current_dir().unwrap_or_default().join("data");
        format!("file://{}", dir.display())
    }

    /// The deterministic key of a rendition: retries and redeliveries overwrite, never add.
    pub fn key(user_id: Uuid, media_id: Uuid, rendition: Rendition) -> Path {
        let name = match rendition {
            Rendition::Original => "original",
            Rendition::Thumb => "thumb",
            Rendition::Preview => "preview",
        };
        Path::from(format!("media/{user_id}/{media_id}/{name}"))
    }

    /// The underlying store, for streaming uploads.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores `bytes` under `key`, replacing what was there.
    pub async fn put(&self, key: &Path, bytes: Bytes) -> Result<(), Error> {
        self.store.put(key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// [`Storage::put`] returning the size stored.
    pub async fn put_counted(&self, key: &Path, bytes: Bytes) -> Result<u64, Error> {
        let size = bytes.len() as u64;
        self.put(key, bytes).await?;
        Ok(size)
    }

    /// Reads a whole object. Only for objects known to be small (thumbnails, bounded image
    /// originals); originals of any size are read with [`Storage::stream`].
    pub async fn get(&self, key: &Path) -> Result<Bytes, Error> {
        Ok(self.store.get(key).await?.bytes().await?)
    }

    /// Reads an object as a stream of chunks, with its total size.
    pub async fn stream(
        &self,
        key: &Path,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, Error>>), Error> {
        let got = self.store.get(key).await?;
        let size = got.meta.size;
        Ok((size, got.into_stream().map_err(Error::from).boxed()))
    }

    /// Reads the byte range `range` of an object as a stream.
    pub async fn stream_range(
        &self,
        key: &Path,
        range: std::ops::Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, Error>>, Error> {
        let opts = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        let got = self.store.get_opts(key, opts).await?;
        Ok(got.into_stream().map_err(Error::from).boxed())
    }

    /// Reads at most `limit` bytes of an object; `Ok(None)` when it is larger (the caller
    /// refuses it rather than holding an unbounded original in memory).
    pub async fn get_bounded(&self, key: &Path, limit: u64) -> Result<Option<Bytes>, Error> {
        let got = self.store.get(key).await?;
        if got.meta.size > limit {
            return Ok(None);
        }
        Ok(Some(got.bytes().await?))
    }

    /// Writes a stream of chunks as one object (a multipart upload: memory stays at a few
    /// parts whatever the size). On error the partial upload is aborted; returns the size.
    pub async fn put_stream<S>(&self, key: &Path, mut body: S) -> Result<u64, Error>
    where
        S: Stream<Item = Result<Bytes, Error>> + Unpin,
    {
        let upload = self.store.put_multipart(key).await?;
        let mut writer = WriteMultipart::new(upload);
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            if let Err(e) = writer.wait_for_capacity(4).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            size += chunk.len() as u64;
            writer.write(&chunk);
        }
        writer.finish().await?;
        Ok(size)
    }

    /// The object's own file, for a `file://` store (`None` for remote stores).
    pub fn local_path(&self, key: &Path) -> Option<PathBuf> {
        // Keys are made by `Storage::key` from ids only, never from a client's name.
        self.local_root.as_ref().map(|root| root.join(key.as_ref()))
    }

    /// A path on the local disk holding the object's bytes: the object itself for a `file://`
    /// store, else a spooled temporary copy (streamed, removed when the guard drops).
    pub async fn local_copy(
        &self,
        key: &Path,
        spool_dir: &std::path::Path,
    ) -> Result<LocalFile, Error> {
        if let Some(path) = self.local_path(key) {
            if tokio::fs::metadata(&path).await.is_ok() {
                return Ok(LocalFile {
                    path,
                    temporary: false,
                });
            }
            return Err(Error::NotFound(key.to_string()));
        }
        tokio::fs::create_dir_all(spool_dir).await?;
        let path = spool_dir.join(format!("spool-{}", Uuid::new_v4().simple()));
        let guard = LocalFile {
            path,
            temporary: true,
        };
        let (_, mut chunks) = self.stream(key).await?;
        let mut file = tokio::fs::File::create(&guard.path).await?;
        while let Some(chunk) = chunks.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await?;
        Ok(guard)
    }

    /// Deletes an object; a missing object is not an error (deletes are retried).
    pub async fn delete(&self, key: &Path) -> Result<(), Error> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every rendition of a media file, then its (now empty) folder on a `file://`
    /// store.
    pub async fn delete_media(&self, user_id: Uuid, media_id: Uuid) -> Result<(), Error> {
        for r in [Rendition::Original, Rendition::Thumb, Rendition::Preview] {
            self.delete(&Self::key(user_id, media_id, r)).await?;
        }
        self.remove_empty_media_dir(&Self::key(user_id, media_id, Rendition::Original))
            .await;
        Ok(())
    }

    /// On a `file://` store, removes the folder of `key` (`media/{user}/{media}`) once it is
    /// empty, so deleted media leave no empty folders behind.
    pub async fn remove_empty_media_dir(&self, key: &Path) {
        if let Some(root) = &self.local_root
            && let Some(dir) = root.join(key.as_ref()).parent()
        {
            // Only succeeds when empty, which is what we want: never remove unknown files.
            let _ = tokio::fs::remove_dir(dir).await;
        }
    }
}

impl Storage {
    /// On a `file://` store, deletes the staging files of multipart uploads that never
    /// completed (`<key>#<n>`, left by a process killed mid-upload) and are older than
    /// `older_than`; object listings never show them. Returns how many were deleted.
    pub async fn sweep_local_staging(&self, older_than: std::time::Duration) -> Result<u64, Error> {
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        let cutoff = std::time::SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(std::time::UNIX_EPOCH);
        tokio::task::spawn_blocking(move || sweep_staging(&root.join("media"), cutoff))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

/// Walks `dir` (media/{user}/{media}/…, so three levels) deleting stale staging files.
fn sweep_staging(dir: &std::path::Path, cutoff: std::time::SystemTime) -> Result<u64, Error> {
    let mut deleted = 0;
    let mut stack = vec![(dir.to_path_buf(), 0u8)];
    while let Some((d, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && depth < 3 {
                stack.push((path, depth + 1));
            } else if meta.is_file()
                && is_staging_name(&entry.file_name().to_string_lossy())
                && meta.modified().is_ok_and(|m| m < cutoff)
            {
                std::fs::remove_file(&path)?;
                if let Some(parent) = path.parent() {
                    let _ = std::fs::remove_dir(parent);
                }
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

/// object_store's local staging name: `<name>#<digits>`.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A local path to an object's bytes; a spooled copy is deleted on drop.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    temporary: bool,
}

impl LocalFile {
    /// Where the bytes are.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The S3 client's own retries: a few quick ones for a dropped request
/// (`TIMELINE_S3_MAX_RETRIES`, default 3, within `TIMELINE_S3_RETRY_TIMEOUT_SECS`, default 15).
/// Longer outages are the queue's business — the step fails transiently and its task waits out
/// a growing delay in the queue — rather than a worker slot blocked for minutes (object_store's
/// default is 10 retries over up to 3 minutes).
fn s3_retry() -> object_store::RetryConfig {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    object_store::RetryConfig {
        max_retries: usize::try_from(env("TIMELINE_S3_MAX_RETRIES", 3)).unwrap_or(3),
        retry_timeout: std::time::Duration::from_secs(env("TIMELINE_S3_RETRY_TIMEOUT_SECS", 15)),
        ..object_store::RetryConfig::default()
    }
}
