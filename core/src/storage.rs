//! The object store holding originals and thumbnails: local filesystem by default, any
//! S3-compatible service by URL (`TIMELINE_STORAGE=s3://bucket/prefix`, `AWS_*` variables).
//! Keys are made here from ids only; a client's filename never becomes part of a path.

use std::sync::Arc;

use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart, path::Path};
use tokio::io::AsyncWriteExt;

mod part;
pub use part::PartWriter;
use uuid::Uuid;

/// Errors talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid storage URL {url:?}: {reason}")]
    Config { url: String, reason: String },
    #[error("object not found: {0}")]
    NotFound(String),
    #[error("object replaced while it was being read: {0}")]
    Changed(String),
    #[error("storage error: {0}")]
    Store(#[source] object_store::Error),
    #[error("local file error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage error: a part upload failed: {0}")]
    Part(String),
}

impl Error {
    /// What went wrong, for a user to read: it names no store key, path or URL (those are in
    /// the error's `Display`, for the logs). A failed file's reason comes from here.
    pub fn reason(&self) -> String {
        match self {
            Self::Config { .. } => "the object store is not configured correctly".into(),
            Self::NotFound(_) => "the object is missing from storage".into(),
            Self::Changed(_) => "the object was replaced while it was being read".into(),
            Self::Io(e) => format!("storage I/O error: {}", e.kind()),
            Self::Part(_) => "the object store did not take a part of the upload".into(),
            Self::Store(e) => match e {
                object_store::Error::NotFound { .. } => "the object is missing from storage".into(),
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => {
                    "the object store refused access".into()
                }
                object_store::Error::Generic { store, .. } => {
                    format!("the object store ({store}) failed; the worker's log has the details")
                }
                _ => "the object store failed; the worker's log has the details".into(),
            },
        }
    }
}

/// A message meant for a user with every filesystem path, URL and store key cut out: the
/// last guard before a reason is stored where its owner (or an admin) reads it. Words that
/// look like a path (`/…`, `file:…`, `s3://…`) or a key (`media/…`, `uploads/…`) become `[…]`.
pub fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let core = word.trim_end_matches([':', ',', ';', ')', '.', '"', '\'']);
            let lead = core.trim_start_matches(['(', '"', '\'']);
            let looks_like_path = (lead.starts_with('/') && lead.len() > 1)
                || ["file:", "s3:", "http:", "https:"]
                    .iter()
                    .any(|scheme| lead.starts_with(scheme))
                || ["media/", "uploads/", "spool"]
                    .iter()
                    .any(|key| lead.contains(key));
            if looks_like_path {
                format!("[…]{}", &word[core.len()..])
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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

impl Rendition {
    /// Every rendition a media file may have stored.
    pub const ALL: [Rendition; 3] = [Rendition::Original, Rendition::Thumb, Rendition::Preview];
}

/// A handle to the configured object store (cheap to clone).
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The S3 client's multipart calls, with the store's key prefix: resumable uploads keep a
    /// multipart upload open across requests and processes (its id and parts live in rows).
    multipart: Option<(Arc<dyn MultipartStore>, Path)>,
    /// Parts stored while their bytes arrive (S3 only).
    parts: Option<part::Streamer>,
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
        Self::from_url_with(url, &[])
    }

    /// [`Storage::from_url`] with S3 options (`aws_endpoint`, `aws_access_key_id`, …, the
    /// names of the `AWS_*` variables in lower case) that win over the environment's.
    pub fn from_url_with(url: &str, s3_options: &[(&str, &str)]) -> Result<Self, Error> {
        let config_err = |reason: String| Error::Config {
            url: url.to_owned(),
            reason,
        };
        let mut local_root = None;
        let mut multipart = None;
        let mut parts = None;
        let store: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let mut builder = s3_builder();
            for (key, value) in s3_options {
                let key = key
                    .parse()
                    .map_err(|e: object_store::Error| config_err(e.to_string()))?;
                builder = builder.with_config(key, *value);
            }
            let s3 = Arc::new(
                builder
                    .with_bucket_name(bucket)
                    .with_retry(s3_retry())
                    .build()
                    .map_err(|e| config_err(e.to_string()))?,
            );
            multipart = Some((s3.clone() as Arc<dyn MultipartStore>, Path::from(prefix)));
            let (connect, stall) = s3_timeouts();
            parts = Some(part::Streamer::new(s3.clone(), connect, stall)?);
            if prefix.is_empty() {
                s3
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
        Ok(Self {
            store,
            multipart,
            parts,
            local_root,
        })
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

    /// The media file a key made by [`Storage::key`] belongs to (`media/{user}/{media}/…`).
    pub fn media_of(key: &str) -> Option<Uuid> {
        let mut parts = key.split('/');
        (parts.next()? == "media").then_some(())?;
        let _user: Uuid = parts.next()?.parse().ok()?;
        parts.next()?.parse().ok()
    }

    /// The underlying store, for streaming uploads.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores `bytes` under `key`, replacing what was there.
    ///
    /// On a `file://` store a put writes a staging file (`<key>#<n>`) and renames it; a writer
    /// killed mid-put leaves its staging file behind, invisible to listings. Once a put of the
    /// same key succeeds, those leftovers are stale and are removed here (steps rewrite their
    /// deterministic keys, so this is where a killed attempt's leftover meets its successor).
    pub async fn put(&self, key: &Path, bytes: Bytes) -> Result<(), Error> {
        self.store.put(key, PutPayload::from(bytes)).await?;
        if let Err(e) = self.remove_staging(key).await {
            tracing::warn!(error = %e, "could not remove a killed writer's staging files");
        }
        Ok(())
    }

    /// [`Storage::put`] returning the size stored.
    pub async fn put_counted(&self, key: &Path, bytes: Bytes) -> Result<u64, Error> {
        let size = bytes.len() as u64;
        self.put(key, bytes).await?;
        Ok(size)
    }

    /// Whether the object exists (one HEAD request).
    pub async fn exists(&self, key: &Path) -> Result<bool, Error> {
        Ok(self.size_of(key).await?.is_some())
    }

    /// Reads a whole object. Only for objects known to be small (thumbnails, bounded image
    /// originals); originals of any size are read with [`Storage::stream`].
    pub async fn get(&self, key: &Path) -> Result<Bytes, Error> {
        Ok(self.store.get(key).await?.bytes().await?)
    }

    /// Reads an object as a stream of chunks, with its total size.
    /// A broken read resumes from its last byte (see [`resume::resuming`]).
    pub async fn stream(
        &self,
        key: &Path,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, Error>>), Error> {
        let got = self.store.get(key).await?;
        let size = got.meta.size;
        let etag = got.meta.e_tag.clone();
        let start = got.range.start;
        let body = got.into_stream();
        let stream = resume::resuming(self.store.clone(), key.clone(), etag, start..size, body);
        Ok((size, stream))
    }

    /// Reads the byte range `range` of an object as a stream; a broken read resumes from its
    /// last byte.
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
        let etag = got.meta.e_tag.clone();
        let range = got.range.clone();
        let body = got.into_stream();
        Ok(resume::resuming(
            self.store.clone(),
            key.clone(),
            etag,
            range,
            body,
        ))
    }

    /// Reads the byte range `range` of an object whole (a small range: an archive's block).
    pub async fn get_range(&self, key: &Path, range: std::ops::Range<u64>) -> Result<Bytes, Error> {
        Ok(self.store.get_range(key, range).await?)
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
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
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
        self.delete_existing(key).await.map(|_| ())
    }

    /// [`Storage::delete`], saying whether the key held something (a missing key is no error).
    async fn delete_existing(&self, key: &Path) -> Result<bool, Error> {
        match self.store.delete(key).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
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

/// The part size of a streamed upload: 8 MiB, so the 10,000 parts S3 allows hold 80 GiB.
pub const PART_SIZE: usize = 8 << 20;

/// The part size for an upload of `length` bytes: [`PART_SIZE`], or larger (whole MiB) when
/// the file needs it to stay within 10,000 parts.
pub fn part_size_for(length: u64) -> u64 {
    length
        .div_ceil(10_000)
        .max(PART_SIZE as u64)
        .next_multiple_of(1 << 20)
}

/// The error of a multipart call on a store that is not S3.
fn not_s3() -> Error {
    Error::Config {
        url: "file://".into(),
        reason: "multipart uploads need an S3 store".into(),
    }
}

/// Multipart uploads that outlive a request (resumable uploads on S3): their id and parts
/// are kept in rows, so any process can add a part, complete or abort them.
impl Storage {
    /// Whether objects are written with S3 multipart uploads (else: a local directory).
    pub fn is_multipart(&self) -> bool {
        self.multipart.is_some()
    }

    fn multipart_of(&self, key: &Path) -> Result<(&Arc<dyn MultipartStore>, Path), Error> {
        let (store, prefix) = self.multipart.as_ref().ok_or_else(not_s3)?;
        let full = if prefix.as_ref().is_empty() {
            key.clone()
        } else {
            Path::from(format!("{prefix}/{key}"))
        };
        Ok((store, full))
    }

    /// Starts a multipart upload to `key`; returns its id.
    pub async fn create_multipart(&self, key: &Path) -> Result<String, Error> {
        let (store, full) = self.multipart_of(key)?;
        Ok(store.create_multipart(&full).await?)
    }

    /// Stores part `index` (from 0) of a multipart upload; returns its ETag.
    pub async fn put_part(
        &self,
        key: &Path,
        id: &str,
        index: usize,
        bytes: Bytes,
    ) -> Result<String, Error> {
        let (store, full) = self.multipart_of(key)?;
        let id = id.to_owned();
        let part = store
            .put_part(&full, &id, index, PutPayload::from(bytes))
            .await?;
        Ok(part.content_id)
    }

    /// Starts storing part `index` (from 0) of a multipart upload, `len` bytes that the caller
    /// hands over as they arrive (see [`PartWriter`]).
    pub async fn start_part(
        &self,
        key: &Path,
        id: &str,
        index: usize,
        len: u64,
    ) -> Result<PartWriter, Error> {
        let (_, full) = self.multipart_of(key)?;
        let streamer = self.parts.as_ref().ok_or_else(not_s3)?;
        streamer.start(&full, id, index, len).await
    }

    /// Completes a multipart upload from its parts' ETags, in order.
    pub async fn complete_multipart(
        &self,
        key: &Path,
        id: &str,
        parts: &[String],
    ) -> Result<(), Error> {
        let (store, full) = self.multipart_of(key)?;
        let parts = parts
            .iter()
            .map(|e| PartId {
                content_id: e.clone(),
            })
            .collect();
        store
            .complete_multipart(&full, &id.to_owned(), parts)
            .await?;
        Ok(())
    }

    /// Aborts a multipart upload (its parts are deleted); an unknown one is not an error.
    pub async fn abort_multipart(&self, key: &Path, id: &str) -> Result<(), Error> {
        let (store, full) = self.multipart_of(key)?;
        match store.abort_multipart(&full, &id.to_owned()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The size of an object, `None` when there is none.
    pub async fn size_of(&self, key: &Path) -> Result<Option<u64>, Error> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl Storage {
    /// Deletes an object with what a killed writer may have left of it: on a `file://` store
    /// the staging files of its unfinished multipart upload (`<key>#<n>`, which listings never
    /// show) and its folder once empty. A key that held nothing leaves the folder as it was:
    /// the folder of a live file whose rendition was never written stays.
    pub async fn discard(&self, key: &Path) -> Result<(), Error> {
        let existed = self.delete_existing(key).await?;
        self.remove_staging(key).await?;
        if existed {
            self.remove_empty_media_dir(key).await;
        }
        Ok(())
    }

    /// Removes the staging files a killed writer left of `key` (a `file://` store's only).
    async fn remove_staging(&self, key: &Path) -> Result<(), Error> {
        let Some(path) = self.local_path(key) else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || remove_staging(&path))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }

    /// One page of the store's keys under `media/`, after `after`, each with when it was last
    /// written (for the operator's audit).
    pub async fn list_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Path, chrono::DateTime<chrono::Utc>)>, Error> {
        let prefix = Path::from("media");
        let mut listing = match after {
            Some(after) => self
                .store
                .list_with_offset(Some(&prefix), &Path::from(after)),
            None => self.store.list(Some(&prefix)),
        };
        // S3 lists in key order, so a page is its first `limit` keys. A local listing walks
        // folders in no order: the page is the `limit` smallest keys of the whole walk.
        let sorted = self.local_root.is_none();
        let mut page = std::collections::BinaryHeap::with_capacity(limit + 1);
        while let Some(meta) = listing.next().await.transpose()? {
            page.push((meta.location, meta.last_modified));
            if page.len() > limit {
                page.pop();
            }
            if sorted && page.len() == limit {
                break;
            }
        }
        Ok(page.into_sorted_vec())
    }
}

/// Removes the staging files of the object at `path` (`<name>#<digits>` beside it).
fn remove_staging(path: &std::path::Path) -> Result<(), Error> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let name = name.to_string_lossy();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if let Some((stem, n)) = file.rsplit_once('#')
            && stem == name
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
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
    object_store::RetryConfig {
        max_retries: usize::try_from(env_u64("TIMELINE_S3_MAX_RETRIES", 3)).unwrap_or(3),
        retry_timeout: std::time::Duration::from_secs(env_u64(
            "TIMELINE_S3_RETRY_TIMEOUT_SECS",
            15,
        )),
        ..object_store::RetryConfig::default()
    }
}

/// The S3 client: its connections time out on progress, never on a whole body. A request has
/// `TIMELINE_S3_CONNECT_TIMEOUT_SECS` (5) to connect and may then run as long as bytes keep
/// coming: a read that sees no byte for `TIMELINE_S3_STALL_SECS` (60) fails, and a broken
/// read resumes from its last byte (see [`resume`]). Idle connections are kept for 90 s.
/// object_store's default, a 30 s timeout over the whole request body, cut every read of a
/// large original on a slow link. `AWS_*` variables are applied last and win.
fn s3_builder() -> object_store::aws::AmazonS3Builder {
    let (connect, stall) = s3_timeouts();
    let client = object_store::ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(connect)
        .with_read_timeout(stall)
        .with_pool_idle_timeout(std::time::Duration::from_secs(90));
    let mut builder = object_store::aws::AmazonS3Builder::new().with_client_options(client);
    for (key, value) in std::env::vars() {
        if key.starts_with("AWS_")
            && let Ok(config_key) = key.to_ascii_lowercase().parse()
        {
            builder = builder.with_config(config_key, value);
        }
    }
    builder
}

/// The S3 connect timeout and stall limit (see [`s3_builder`]).
fn s3_timeouts() -> (std::time::Duration, std::time::Duration) {
    let secs = |name: &str, default: u64| std::time::Duration::from_secs(env_u64(name, default));
    (
        secs("TIMELINE_S3_CONNECT_TIMEOUT_SECS", 5),
        secs("TIMELINE_S3_STALL_SECS", 60),
    )
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(default)
}

mod resume {
    //! Reads that survive a broken connection: the rest of the object is asked for again with
    //! `Range` from the last byte received (and `If-Match` on its ETag, so a replaced object is
    //! never spliced onto the old one's head). object_store resumes a body only within its
    //! retry budget, counted from the request's start, so a read of many minutes is never
    //! resumed by it.

    use std::ops::Range;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use futures::StreamExt;
    use futures::stream::BoxStream;
    use object_store::{GetOptions, GetRange, ObjectStore, path::Path};

    use super::Error;

    /// Consecutive failures without a byte of progress before a read gives up.
    const MAX_FAILURES: u32 = 5;

    struct Read {
        store: Arc<dyn ObjectStore>,
        key: Path,
        etag: Option<String>,
        pos: u64,
        end: u64,
        body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
        failures: u32,
        done: bool,
    }

    /// `body`, the bytes `range` of the object `key`, resumed from the last byte on error.
    pub(super) fn resuming(
        store: Arc<dyn ObjectStore>,
        key: Path,
        etag: Option<String>,
        range: Range<u64>,
        body: BoxStream<'static, object_store::Result<Bytes>>,
    ) -> BoxStream<'static, Result<Bytes, Error>> {
        let read = Read {
            store,
            key,
            etag,
            pos: range.start,
            end: range.end,
            body: Some(body),
            failures: 0,
            done: false,
        };
        futures::stream::unfold(read, |mut r| async move {
            if r.done {
                return None;
            }
            match r.next().await {
                Ok(Some(chunk)) => Some((Ok(chunk), r)),
                Ok(None) => None,
                Err(e) => {
                    r.done = true;
                    Some((Err(e), r))
                }
            }
        })
        .boxed()
    }

    impl Read {
        async fn next(&mut self) -> Result<Option<Bytes>, Error> {
            loop {
                if self.pos >= self.end {
                    return Ok(None);
                }
                let failure = match self.body.as_mut() {
                    Some(body) => match body.next().await {
                        Some(Ok(chunk)) => {
                            self.pos += chunk.len() as u64;
                            self.failures = 0;
                            return Ok(Some(chunk));
                        }
                        Some(Err(e)) => Error::from(e),
                        None => Error::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the store ended the body early",
                        )),
                    },
                    None => match self.reopen().await {
                        Ok(body) => {
                            self.body = Some(body);
                            continue;
                        }
                        // The object is gone or was replaced: resuming cannot help.
                        Err(e @ (Error::NotFound(_) | Error::Changed(_))) => return Err(e),
                        Err(e) => e,
                    },
                };
                self.body = None;
                self.failures += 1;
                if self.failures > MAX_FAILURES {
                    return Err(failure);
                }
                tracing::warn!(object = %self.key, at = self.pos, error = %failure,
                               "read broken; resuming from the last byte");
                tokio::time::sleep(Duration::from_millis(200) * self.failures).await;
            }
        }

        async fn reopen(
            &mut self,
        ) -> Result<BoxStream<'static, object_store::Result<Bytes>>, Error> {
            let opts = GetOptions {
                range: Some(GetRange::Bounded(self.pos..self.end)),
                if_match: self.etag.clone(),
                ..Default::default()
            };
            match self.store.get_opts(&self.key, opts).await {
                Ok(got) => Ok(got.into_stream()),
                Err(object_store::Error::Precondition { .. }) => {
                    Err(Error::Changed(self.key.to_string()))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[tokio::test]
    async fn a_put_removes_what_a_killed_put_of_the_same_key_left() {
        let dir = std::env::temp_dir().join(format!("timeline-staging-{}", uuid::Uuid::new_v4()));
        let storage = super::Storage::from_url(dir.to_str().unwrap_or_default()).unwrap();
        let key = object_store::path::Path::from("media/u/m/preview");
        let folder = dir.join("media/u/m");
        std::fs::create_dir_all(&folder).unwrap();
        // A killed writer's staging file, and another object's, which stays.
        std::fs::write(folder.join("preview#1"), b"half").unwrap();
        std::fs::write(folder.join("thumb#1"), b"other").unwrap();
        storage
            .put(&key, bytes::Bytes::from_static(b"whole"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(folder.join("preview")).unwrap(), b"whole");
        assert!(!folder.join("preview#1").exists());
        assert!(folder.join("thumb#1").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scrub_cuts_paths_keys_and_urls_but_keeps_the_words() {
        assert_eq!(
            scrub("unreadable file: file:/srv/data/media/u/m/original: End of file"),
            "unreadable file: […]: End of file"
        );
        assert_eq!(
            scrub("reading (/tmp/timeline-spool-1/x.mov) failed"),
            "reading […]) failed"
        );
        assert_eq!(
            scrub("GET s3://bucket/tl/media/a/b/original, http://10.0.0.5:9000/x: 503"),
            "GET […], […]: 503"
        );
        // A MIME type and ordinary words stay.
        assert_eq!(
            scrub("not a video or audio file: video/mp4 and 1/2 of it"),
            "not a video or audio file: video/mp4 and 1/2 of it"
        );
    }
}
