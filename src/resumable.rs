//! Resumable uploads (the engine behind tus at `/v1/uploads`): bytes stream straight into the
//! store as they arrive, every stored piece is recorded in the upload's row with the SHA-256
//! state over everything before it, and any process can take the upload up again from those
//! rows after a cut, a kill or a move to another host. The last byte turns the upload into a
//! media file exactly as `POST /v1/media` does (same lane, dedup, jobs, one transaction).
//!
//! Where the bytes go:
//! - S3: one multipart upload to the media file's final key, opened at creation (its id is
//!   recorded in the session and in the pending object, so an abandoned one is aborted). Each
//!   part streams to the store while its bytes arrive (`storage::PartWriter`), so a request
//!   that carries one part is stored about as soon as it is received; what a request leaves
//!   short of a whole part is kept in a tail object, read back (at most one part) by the next
//!   request. S3 wants every part but
//!   the last to be at least 5 MiB; parts are sized so that the largest allowed file needs at
//!   most 10,000 of them.
//! - `file://`: a staging file appended at the recorded offset (anything past it, written by
//!   a request that died before recording, is cut off first), renamed into place at the end.
//!
//! One request appends at a time: it holds a lease on the row, renewed while it streams.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use object_store::path::Path;
use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use uuid::Uuid;

use crate::config::UploadLimits;
use crate::db::tx::TxPool;
use crate::db::{self, objects::Owner, resumable::Progress, resumable::Resumable};
use crate::format::{MediaFormat, SNIFF_LEN};
use crate::storage::{PartWriter, Rendition, Storage};

/// How long a lease lasts without renewal: a request killed mid-stream blocks its upload
/// this long at most.
const LEASE: Duration = Duration::from_secs(15);

/// A `file://` upload records its progress at least every this many bytes.
const LOCAL_COMMIT_BYTES: u64 = 32 << 20;

/// Why a resumable upload refused a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such upload")]
    NotFound,
    #[error("another request is appending to this upload; retry shortly")]
    Locked,
    #[error("Upload-Offset is {given}, the upload is at {expected}")]
    OffsetMismatch { expected: i64, given: i64 },
    #[error("the body goes past Upload-Length ({length} bytes); nothing past it was stored")]
    PastLength { length: i64 },
    #[error("Upload-Checksum does not match this request's body; the chunk was discarded")]
    ChecksumMismatch,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("this account is being erased; it takes no uploads")]
    Erasing,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Ingest(#[from] crate::ingest::Error),
}

/// A new upload's declaration.
#[derive(Debug, Clone)]
pub struct Declared {
    pub length: u64,
    pub filename: String,
    /// An archive for `POST /v1/imports` (`Upload-Metadata: purpose import`): a zip, kept at
    /// a key of its own, that does not become a media file.
    pub archive: bool,
}

/// Where an upload stands after a request.
#[derive(Debug, Clone)]
pub struct Status {
    pub id: Uuid,
    pub offset: i64,
    pub length: i64,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Set once the upload became a media file.
    pub media_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
}

impl Status {
    fn of(r: &Resumable) -> Self {
        let done = r.state == "completed";
        Self {
            id: r.id,
            offset: r.bytes_received,
            length: r.upload_length,
            expires_at: r.expires_at,
            media_id: (done && !r.archive).then_some(r.media_file_id),
            job_id: r.job_id,
        }
    }
}

/// What the engine needs.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub db: &'a TxPool,
    pub storage: &'a Storage,
    pub limits: &'a UploadLimits,
    /// How long an upload waits for its client between requests.
    pub ttl: Duration,
}

/// The staging object of a `file://` upload.
fn staging_key(user: Uuid, id: Uuid) -> Path {
    Path::from(format!("uploads/{user}/{id}/data"))
}

/// Where an upload's bytes end up: the media file's original, or an archive's own key.
fn object_key(user: Uuid, id: Uuid, media: Uuid, archive: bool) -> Path {
    if archive {
        Path::from(format!("imports/{user}/{id}.zip"))
    } else {
        Storage::key(user, media, Rendition::Original)
    }
}

/// A tail object: the bytes of an S3 upload short of a whole part, ending at `offset`.
fn tail_key(user: Uuid, id: Uuid, offset: i64) -> Path {
    Path::from(format!("uploads/{user}/{id}/tail-{offset}"))
}

/// Creates an upload: its row (committed) names the objects it will write before any is.
pub async fn create(ctx: Ctx<'_>, user: Uuid, declared: &Declared) -> Result<Status, Error> {
    if declared.length == 0 {
        return Err(Error::Invalid("an empty upload is no media file".into()));
    }
    // An archive holds many files: it has its limit, and each file in it is held to the
    // file limit when it is imported.
    let limit = match declared.archive {
        true => ctx.limits.max_archive_bytes,
        false => ctx.limits.max_file_bytes,
    };
    if declared.length > limit {
        let what = if declared.archive { "archive" } else { "file" };
        return Err(Error::TooLarge(format!(
            "Upload-Length {} is over the {limit}-byte {what} limit",
            declared.length
        )));
    }
    let admission = db::uploads::admission(ctx.db, user).await?;
    if admission.erasing {
        return Err(Error::Erasing);
    }
    if let Some(quota) = ctx.limits.user_quota_bytes {
        let used = admission.used;
        if used.saturating_add(declared.length) > quota {
            return Err(Error::TooLarge(format!(
                "this account's storage quota is full: {used} of {quota} bytes used, and \
                 Upload-Length {} does not fit",
                declared.length
            )));
        }
    }
    let id = Uuid::new_v4();
    let media = Uuid::new_v4();
    let length = i64::try_from(declared.length).unwrap_or(i64::MAX);
    let part = i64::try_from(crate::storage::part_size_for(declared.length)).unwrap_or(i64::MAX);
    let mut tx = ctx.db.begin().await?;
    let new = db::resumable::NewResumable {
        id,
        user_id: user,
        upload_length: length,
        media_file_id: media,
        filename: &declared.filename,
        part_size: part,
        ttl_secs: ctx.ttl.as_secs_f64(),
        archive: declared.archive,
    };
    db::resumable::create(&mut tx, &new).await?;
    let key = object_key(user, id, media, declared.archive);
    let mut keys = vec![key.to_string()];
    if !ctx.storage.is_multipart() {
        keys.push(staging_key(user, id).to_string());
    }
    db::objects::name_objects(&mut tx, user, media, &keys, Owner::Session(id)).await?;
    tx.commit().await?;
    let multipart_id = if ctx.storage.is_multipart() {
        Some(ctx.storage.create_multipart(&key).await?)
    } else {
        None
    };
    // Begun once the store has answered: no transaction waits on the store.
    let mut tx = ctx.db.begin().await?;
    if let Some(multipart_id) = &multipart_id {
        // Recorded on the pending object first: an abandoned upload is aborted from there.
        db::objects::set_multipart(&mut tx, key.as_ref(), multipart_id).await?;
        db::resumable::set_multipart(&mut tx, id, multipart_id).await?;
    }
    let r = db::resumable::get(&mut tx, id, user)
        .await?
        .ok_or(Error::NotFound)?;
    tx.commit().await?;
    tracing::info!(upload.id = %id, user.id = %user, media.id = %media, length, "resumable upload created");
    Ok(Status::of(&r))
}

/// Where the user's upload stands; an unfinished upload whose bytes are all stored (its last
/// request died between storing and recording) is completed here.
pub async fn status(ctx: Ctx<'_>, user: Uuid, id: Uuid) -> Result<Status, Error> {
    let r = {
        let mut tx = ctx.db.begin().await?;
        db::resumable::get(&mut tx, id, user)
            .await?
            .ok_or(Error::NotFound)?
    };
    if r.state == "open" && r.bytes_received == r.upload_length {
        let chunk = Chunk {
            offset: r.bytes_received,
            declared: Some(0),
            checksum: None,
        };
        return append(ctx, user, id, chunk, futures::stream::empty()).await;
    }
    Ok(Status::of(&r))
}

/// Deletes an unfinished upload and what it stored (a completed one is a media file now:
/// `DELETE /v1/media/{id}` removes that).
pub async fn terminate(ctx: Ctx<'_>, user: Uuid, id: Uuid) -> Result<(), Error> {
    let mut tx = ctx.db.begin().await?;
    let r = db::resumable::get(&mut tx, id, user)
        .await?
        .ok_or(Error::NotFound)?;
    let keys = db::resumable::keys_of(&mut tx, id).await?;
    if r.state == "completed" {
        // Its object is a media file's now; only the record of the upload goes.
        db::resumable::forget(&mut tx, id).await?;
        tx.commit().await?;
        return Ok(());
    }
    if !db::objects::abort_session(&mut tx, id).await? {
        return Err(Error::NotFound);
    }
    tx.commit().await?;
    for key in keys {
        if let Err(e) = crate::inflight::clean(ctx.db, ctx.storage, &key).await {
            tracing::warn!(upload.id = %id, error = %e, "could not delete a terminated upload's object yet; the reconciler will");
        }
    }
    tracing::info!(upload.id = %id, user.id = %user, "resumable upload terminated");
    Ok(())
}

/// What a request says of the bytes it brings.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    /// Where they go (`Upload-Offset`): must be where the upload is.
    pub offset: i64,
    /// How many there are, if declared (`Content-Length`): a body declared past the upload's
    /// length is refused before a byte is stored.
    pub declared: Option<u64>,
    /// The SHA-256 of this body (`Upload-Checksum`), if promised.
    pub checksum: Option<[u8; 32]>,
}

/// Appends a request's body; completes the upload when its last byte is stored.
pub async fn append<S>(
    ctx: Ctx<'_>,
    user: Uuid,
    id: Uuid,
    chunk: Chunk,
    body: S,
) -> Result<Status, Error>
where
    S: Stream<Item = Result<Bytes, String>> + Send,
{
    let offset = chunk.offset;
    let owner = Uuid::new_v4();
    let started = std::time::Instant::now();
    let r = {
        let mut tx = ctx.db.begin().await?;
        let leased = db::resumable::lease(&mut tx, id, user, owner, LEASE.as_secs_f64()).await?;
        tx.commit().await?;
        match leased {
            Some(r) => r,
            None => {
                let mut conn = ctx.db.begin().await?;
                let r = db::resumable::get(&mut conn, id, user)
                    .await?
                    .ok_or(Error::NotFound)?;
                if r.state == "completed" {
                    if offset != r.bytes_received {
                        return Err(Error::OffsetMismatch {
                            expected: r.bytes_received,
                            given: offset,
                        });
                    }
                    return Ok(Status::of(&r));
                }
                return Err(Error::Locked);
            }
        }
    };
    if offset != r.bytes_received {
        release(ctx.db, id, owner).await;
        return Err(Error::OffsetMismatch {
            expected: r.bytes_received,
            given: offset,
        });
    }
    let declared = chunk.declared.and_then(|n| i64::try_from(n).ok());
    if declared.is_some_and(|n| offset.saturating_add(n) > r.upload_length) {
        release(ctx.db, id, owner).await;
        return Err(Error::PastLength {
            length: r.upload_length,
        });
    }
    let span = tracing::info_span!("upload", upload.id = %id, user.id = %user, media.id = %r.media_file_id);
    let leased = started.elapsed();
    let renewer = tokio::spawn(renew(ctx.db.clone(), id, owner));
    let result = Writer::new(ctx, &r, owner, chunk.checksum)
        .run(Box::pin(body))
        .instrument(span.clone())
        .await;
    renewer.abort();
    let written = started.elapsed();
    let result = match result {
        Ok(w) if w.offset == r.upload_length => {
            let made = complete(ctx, &w.row, owner).instrument(span.clone()).await;
            if let Err(Error::Unsupported(why)) = &made {
                // Bytes that can never make a media file: nothing is kept, as `POST` keeps
                // nothing it refuses.
                span.in_scope(|| tracing::info!(reason = %why, "upload refused at completion"));
                if let Err(e) = terminate(ctx, user, id).await {
                    tracing::warn!(error = %e, "a refused upload is left for the reconciler");
                }
            }
            made
        }
        Ok(w) => Ok(Status {
            offset: w.offset,
            expires_at: chrono::Utc::now()
                + chrono::Duration::from_std(ctx.ttl).unwrap_or(chrono::Duration::MAX),
            ..Status::of(&w.row)
        }),
        Err(e) => Err(e),
    };
    release(ctx.db, id, owner).await;
    // Where a request's time went, for tuning (RUST_LOG=timeline::resumable=debug).
    span.in_scope(|| {
        tracing::debug!(
            lease_ms = leased.as_secs_f64() * 1e3,
            write_ms = (written - leased).as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            offset = result.as_ref().map_or(-1, |s| s.offset),
            "append"
        );
    });
    result
}

async fn release(pool: &TxPool, id: Uuid, owner: Uuid) {
    if let Ok(mut tx) = pool.begin().await
        && db::resumable::release(&mut tx, id, owner).await.is_ok()
    {
        let _ = tx.commit().await;
    }
}

/// Keeps the lease while a request streams (and marks the upload alive).
async fn renew(pool: TxPool, id: Uuid, owner: Uuid) {
    let mut tick = tokio::time::interval(LEASE / 4);
    tick.tick().await;
    loop {
        tick.tick().await;
        let renewed = async {
            let mut tx = pool.begin().await?;
            let renewed = db::resumable::renew(&mut tx, id, owner, LEASE.as_secs_f64()).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(renewed)
        };
        if let Ok(false) = renewed.await {
            return;
        }
    }
}

/// Whole parts one request keeps in flight to the store: a chunk of several parts is stored
/// about as fast as a single `POST /v1/media` of the same bytes (4 in flight as well).
const PARTS_IN_FLIGHT: usize = 4;

/// A whole part handed to the store: its answer (the ETag), its length, and the hash state at
/// its end, which is what gets recorded once it and every part before it are stored.
struct Storing {
    answer: tokio::task::JoinHandle<Result<String, crate::storage::Error>>,
    len: i64,
    hash: Sha256,
}

impl Drop for Storing {
    fn drop(&mut self) {
        // A request that fails stops its parts; nothing unrecorded is relied on.
        self.answer.abort();
    }
}

/// One request's append: the bytes not yet durable, the hash over the durable ones.
struct Writer<'a> {
    ctx: Ctx<'a>,
    row: Resumable,
    owner: Uuid,
    /// What a checksum is checked against: this request's body.
    checksum: Option<([u8; 32], Sha256)>,
    /// SHA-256 over `[0, hashed)`.
    hasher: Sha256,
    hashed: i64,
    /// Durable and recorded up to here.
    offset: i64,
    /// Received up to here (`offset` plus what is buffered or written but unrecorded).
    received: i64,
    /// S3: the bytes of the part being filled (`[fill_start, received)`).
    buffer: BytesMut,
    /// S3: the part being filled, from `fill_start`.
    part: Option<PartWriter>,
    /// S3: whole parts handed to the store, in order, awaiting its answer.
    storing: std::collections::VecDeque<Storing>,
    /// Their bytes together.
    storing_bytes: i64,
    /// `file://`: the staging file, open at `received`.
    file: Option<tokio::fs::File>,
    old_tails: Vec<String>,
}

impl<'a> Writer<'a> {
    fn new(ctx: Ctx<'a>, row: &Resumable, owner: Uuid, checksum: Option<[u8; 32]>) -> Self {
        Self {
            ctx,
            row: row.clone(),
            owner,
            checksum: checksum.map(|c| (c, Sha256::new())),
            hasher: Sha256::new(),
            hashed: 0,
            offset: row.bytes_received,
            received: row.bytes_received,
            buffer: BytesMut::new(),
            part: None,
            storing: std::collections::VecDeque::new(),
            storing_bytes: 0,
            file: None,
            old_tails: Vec::new(),
        }
    }

    /// Where the stored parts end (only the last part of an upload is short of a whole one).
    fn parts_end(&self) -> i64 {
        let parts = i64::try_from(self.row.parts.len()).unwrap_or(i64::MAX);
        self.row
            .part_size
            .saturating_mul(parts)
            .min(self.row.upload_length)
    }

    /// Streams the body in; records progress as pieces become durable. A body that breaks
    /// off keeps what arrived (unless a checksum was promised for all of it).
    async fn run<S>(mut self, mut body: std::pin::Pin<Box<S>>) -> Result<Self, Error>
    where
        S: Stream<Item = Result<Bytes, String>> + Send,
    {
        let length = self.row.upload_length;
        if self.offset == length {
            return self.nothing_more(body).await;
        }
        self.resume().await?;
        let mut broken = None;
        let mut past_length = false;
        while let Some(chunk) = body.next().await {
            let mut chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            };
            let room = usize::try_from(length - self.received).unwrap_or(0);
            if chunk.len() > room {
                chunk.truncate(room);
                past_length = true;
            }
            if let Some((_, h)) = &mut self.checksum {
                h.update(&chunk);
            }
            self.take(chunk).await?;
            if past_length {
                break;
            }
        }
        if let Some((want, h)) = &self.checksum {
            if broken.is_some() || past_length {
                return Err(match broken {
                    Some(e) => Error::Interrupted(e),
                    None => Error::PastLength { length },
                });
            }
            if h.clone().finalize().as_slice() != want {
                return Err(Error::ChecksumMismatch);
            }
        }
        self.record().await?;
        if past_length {
            return Err(Error::PastLength { length });
        }
        if let Some(e) = broken {
            tracing::info!(error = %e, offset = self.offset, "upload request broke off; its bytes so far are kept");
        }
        Ok(self)
    }

    /// Every byte is recorded: only the completion is left (a retry after one that failed, or
    /// a `HEAD` finishing it). Nothing is opened or written: the staging file or the multipart
    /// upload may already be the media file's object, and reopening the one (at the recorded
    /// length) or storing the tail into the other would spoil it. A body with bytes is past the
    /// length.
    async fn nothing_more<S>(self, mut body: std::pin::Pin<Box<S>>) -> Result<Self, Error>
    where
        S: Stream<Item = Result<Bytes, String>> + Send,
    {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) if c.is_empty() => continue,
                Ok(_) => {
                    return Err(Error::PastLength {
                        length: self.row.upload_length,
                    });
                }
                Err(_) => break,
            }
        }
        Ok(self)
    }

    /// Restores the hash state and the bytes short of a whole part (or opens the staging file).
    async fn resume(&mut self) -> Result<(), Error> {
        self.hasher = match &self.row.hash_state {
            Some(state) => restore_hasher(state)?,
            None => Sha256::new(),
        };
        self.hashed = self.row.bytes_received;
        if self.ctx.storage.is_multipart() {
            if let Some(tail) = self.row.tail_key.clone() {
                let bytes = self.ctx.storage.get(&Path::from(tail.as_str())).await?;
                if i64::try_from(bytes.len()).ok() != Some(self.offset - self.parts_end()) {
                    return Err(Error::Invalid("the upload's stored tail is damaged".into()));
                }
                self.buffer.extend_from_slice(&bytes);
            }
            return Ok(());
        }
        let path = self
            .ctx
            .storage
            .local_path(&staging_key(self.row.user_id, self.row.id))
            .ok_or_else(|| Error::Invalid("no local path for a staging file".into()))?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(crate::storage::Error::Io)?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .await
            .map_err(crate::storage::Error::Io)?;
        // Bytes past the recorded offset were never acknowledged: cut them off.
        file.set_len(u64::try_from(self.offset).unwrap_or(0))
            .await
            .map_err(crate::storage::Error::Io)?;
        let mut file = file;
        use tokio::io::AsyncSeekExt;
        file.seek(std::io::SeekFrom::End(0))
            .await
            .map_err(crate::storage::Error::Io)?;
        self.file = Some(file);
        Ok(())
    }

    /// Takes in one chunk: keeps the head for sniffing, refuses what is not media as soon as
    /// the head is complete, stores whole parts (or appends to the staging file).
    async fn take(&mut self, chunk: Bytes) -> Result<(), Error> {
        self.sniff(&chunk)?;
        let n = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
        if let Some(file) = &mut self.file {
            use tokio::io::AsyncWriteExt;
            file.write_all(&chunk)
                .await
                .map_err(crate::storage::Error::Io)?;
            self.hasher.update(&chunk);
            self.hashed += n;
            self.received += n;
            let unrecorded = u64::try_from(self.received - self.offset).unwrap_or(0);
            if self.checksum.is_none() && unrecorded >= LOCAL_COMMIT_BYTES {
                self.record().await?;
            }
            return Ok(());
        }
        self.buffer.extend_from_slice(&chunk);
        self.received += n;
        self.pump().await
    }

    /// Where the part being filled starts: after the stored parts and those in flight.
    fn fill_start(&self) -> i64 {
        self.parts_end() + self.storing_bytes
    }

    /// Hands the buffered bytes to the part being filled, starting one when needed, and
    /// hashes them on the way. A part with all its bytes goes on storing while the next one
    /// fills; with [`PARTS_IN_FLIGHT`] in flight, the oldest is waited for and recorded. A
    /// request's bytes are in the store about as soon as they arrive.
    async fn pump(&mut self) -> Result<(), Error> {
        loop {
            if self.part.is_none() {
                if self.buffer.is_empty() {
                    return Ok(());
                }
                self.part = Some(self.start_part().await?);
            }
            let Some(part) = &self.part else {
                return Ok(());
            };
            let (sent, len) = (part.sent(), part.size());
            let end = self
                .buffer
                .len()
                .min(usize::try_from(len).unwrap_or(usize::MAX));
            let from = usize::try_from(sent).unwrap_or(usize::MAX);
            if from < end {
                let piece = Bytes::copy_from_slice(&self.buffer[from..end]);
                let at = self.fill_start() + i64::try_from(sent).unwrap_or(i64::MAX);
                // Handed over first: the store takes it in while it is hashed.
                if let Some(part) = &mut self.part {
                    part.send(piece.clone()).await?;
                }
                self.hash_at(at, &piece);
            }
            let full = self.part.as_ref().is_some_and(|p| p.is_full());
            let Some(part) = self.part.take().filter(|_| full) else {
                return Ok(());
            };
            let len = i64::try_from(len).unwrap_or(i64::MAX);
            self.buffer
                .advance(usize::try_from(len).unwrap_or(usize::MAX));
            self.storing.push_back(Storing {
                answer: tokio::spawn(part.finish()),
                len,
                hash: self.hasher.clone(),
            });
            self.storing_bytes += len;
            while self.storing.len() >= PARTS_IN_FLIGHT {
                self.settle_oldest().await?;
            }
        }
    }

    /// Waits for the oldest part in flight; records it (with the hash at its end) unless the
    /// request's checksum is still to be checked.
    async fn settle_oldest(&mut self) -> Result<(), Error> {
        let Some(mut oldest) = self.storing.pop_front() else {
            return Ok(());
        };
        let etag = match (&mut oldest.answer).await {
            Ok(answer) => answer?,
            Err(e) => {
                return Err(Error::Interrupted(format!("a part's upload stopped: {e}")));
            }
        };
        self.storing_bytes -= oldest.len;
        self.row.parts.push(etag);
        // The old tail's bytes are in this part now.
        if let Some(tail) = self.row.tail_key.take() {
            self.old_tails.push(tail);
        }
        if self.checksum.is_none() {
            let state = oldest.hash.serialize();
            self.advance(self.parts_end(), state.as_slice()).await?;
        }
        Ok(())
    }

    /// Waits for every part in flight.
    async fn settle_all(&mut self) -> Result<(), Error> {
        while !self.storing.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    /// Starts the next part: a whole part, or what is left of the upload if that is less.
    async fn start_part(&self) -> Result<PartWriter, Error> {
        let start = self.fill_start();
        let len = self.row.part_size.min(self.row.upload_length - start);
        let id = self.row.multipart_id.as_deref().unwrap_or_default();
        Ok(self
            .ctx
            .storage
            .start_part(
                &self.media_key(),
                id,
                self.row.parts.len() + self.storing.len(),
                u64::try_from(len).unwrap_or(0),
            )
            .await?)
    }

    /// Takes bytes that start at `at` into the hash, skipping what it has already seen.
    fn hash_at(&mut self, at: i64, bytes: &[u8]) {
        let seen = usize::try_from(self.hashed - at)
            .unwrap_or(0)
            .min(bytes.len());
        self.hasher.update(&bytes[seen..]);
        self.hashed = self
            .hashed
            .max(at + i64::try_from(bytes.len()).unwrap_or(i64::MAX));
    }

    /// Keeps the first bytes; once there are enough, decides the type (415 at the first
    /// chunk, not after gigabytes).
    fn sniff(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if self.row.head.len() >= SNIFF_LEN || self.row.mime_type.is_some() {
            return Ok(());
        }
        let want = SNIFF_LEN - self.row.head.len();
        self.row
            .head
            .extend_from_slice(&chunk[..chunk.len().min(want)]);
        let complete = self.row.head.len() >= SNIFF_LEN
            || i64::try_from(self.row.head.len()).ok() == Some(self.row.upload_length);
        if complete {
            let mime = if self.row.archive {
                decide_archive(&self.row.head, &self.row.filename)?
            } else {
                decide(&self.row.head, &self.row.filename, self.ctx.limits)?.mime()
            };
            self.row.mime_type = Some(mime.to_owned());
        }
        Ok(())
    }

    fn media_key(&self) -> Path {
        object_key(
            self.row.user_id,
            self.row.id,
            self.row.media_file_id,
            self.row.archive,
        )
    }

    /// Makes everything received durable and records it: the parts in flight are waited
    /// for, and the bytes short of a whole part go to a new tail object (S3; the part they
    /// were filling is cut off), or the staging file is synced (`file://`).
    async fn record(&mut self) -> Result<(), Error> {
        self.settle_all().await?;
        let upto = self.received;
        if upto == self.offset && self.row.bytes_received == self.offset {
            return Ok(());
        }
        if let Some(file) = &mut self.file {
            file.sync_data().await.map_err(crate::storage::Error::Io)?;
        } else if upto > self.parts_end() && self.row.bytes_received != upto {
            // This request ends short of the part: its bytes become the tail instead.
            self.part = None;
            let buffered = self.buffer.clone().freeze();
            self.hash_at(self.parts_end(), &buffered);
            let key = tail_key(self.row.user_id, self.row.id, upto);
            let mut tx = self.ctx.db.begin().await?;
            let keys = [key.to_string()];
            db::objects::name_objects(
                &mut tx,
                self.row.user_id,
                self.row.media_file_id,
                &keys,
                Owner::Session(self.row.id),
            )
            .await?;
            tx.commit().await?;
            self.ctx.storage.put(&key, buffered).await?;
            if let Some(old) = self.row.tail_key.replace(key.to_string()) {
                self.old_tails.push(old);
            }
        }
        let state = self.hasher.serialize();
        self.advance(upto, state.as_slice()).await
    }

    /// Records that everything up to `upto` is durable, with the hash state over exactly
    /// those bytes; then deletes the tails that no longer hold anything needed.
    async fn advance(&mut self, upto: i64, state: &[u8]) -> Result<(), Error> {
        let progress = Progress {
            bytes_received: upto,
            head: &self.row.head,
            mime_type: self.row.mime_type.as_deref(),
            hash_state: state,
            multipart_id: self.row.multipart_id.as_deref(),
            parts: &self.row.parts,
            tail_key: self.row.tail_key.as_deref(),
            ttl_secs: self.ctx.ttl.as_secs_f64(),
        };
        let mut tx = self.ctx.db.begin().await?;
        if !db::resumable::advance(&mut tx, self.row.id, self.owner, &progress).await? {
            return Err(Error::Interrupted(
                "the upload was taken over or removed".into(),
            ));
        }
        // Tails whose bytes are recorded elsewhere now: to delete, in the same transaction.
        let old_tails = std::mem::take(&mut self.old_tails);
        for old in &old_tails {
            let keys = [old.clone()];
            db::objects::name_objects(
                &mut tx,
                self.row.user_id,
                self.row.media_file_id,
                &keys,
                Owner::Nobody,
            )
            .await?;
        }
        tx.commit().await?;
        self.offset = upto;
        self.row.bytes_received = upto;
        self.row.hash_state = Some(state.to_vec());
        for old in &old_tails {
            if let Err(e) = crate::inflight::clean(self.ctx.db, self.ctx.storage, old).await {
                tracing::debug!(error = %e, "old tail left for the reconciler");
            }
        }
        Ok(())
    }
}

/// Decides what the first bytes are; refuses what is not media this server accepts.
fn decide(head: &[u8], filename: &str, limits: &UploadLimits) -> Result<MediaFormat, Error> {
    let format = MediaFormat::sniff(head).ok_or_else(|| {
        let hint = if head.starts_with(b"PK\x03\x04") {
            ": it is a zip; to import an archive, declare it (`filetype` application/zip, \
             or `purpose` import) and pass the upload to POST /v1/imports"
        } else {
            ""
        };
        Error::Unsupported(format!(
            "{filename:?} is not a photo, video or audio file this system can handle{hint}"
        ))
    })?;
    if !limits.allows(format) {
        return Err(Error::Unsupported(format!(
            "{filename:?} is {}, a type this server does not accept (upload.allowed_types)",
            format.mime()
        )));
    }
    Ok(format)
}

/// An archive for an import must be a zip (a local file header first).
fn decide_archive(head: &[u8], filename: &str) -> Result<&'static str, Error> {
    if head.starts_with(b"PK\x03\x04") {
        Ok("application/zip")
    } else {
        Err(Error::Unsupported(format!(
            "{filename:?} is not a zip archive; an import reads the zips a service exports"
        )))
    }
}

/// All bytes of an archive are stored and recorded: puts the object in place and ends the
/// upload. The object stays named by the (completed) session until the upload expires, for
/// `POST /v1/imports` to read; its tails and staging file are cleaned now.
async fn complete_archive(ctx: Ctx<'_>, r: &Resumable, owner: Uuid) -> Result<Status, Error> {
    let key = object_key(r.user_id, r.id, r.media_file_id, true);
    let length = u64::try_from(r.upload_length).unwrap_or(0);
    place(ctx, r, &key, length).await?;
    decide_archive(&r.head, &r.filename)?;
    let mut tx = ctx.db.begin().await?;
    if !db::resumable::hold(&mut tx, r.id, owner).await? {
        return Err(Error::Interrupted(
            "the upload was taken over or removed".into(),
        ));
    }
    let left = db::resumable::complete(&mut tx, r.id, None, Some(key.as_ref()))
        .await?
        .ok_or_else(|| Error::Interrupted("the upload was removed".into()))?;
    db::objects::clear_multipart(&mut tx, key.as_ref()).await?;
    tx.commit().await?;
    tracing::info!(size_bytes = r.upload_length, "archive upload completed");
    for k in left {
        if let Err(e) = crate::inflight::clean(ctx.db, ctx.storage, &k).await {
            tracing::debug!(error = %e, "upload leftovers left for the reconciler");
        }
    }
    Ok(Status {
        id: r.id,
        offset: r.upload_length,
        length: r.upload_length,
        expires_at: r.expires_at,
        media_id: None,
        job_id: None,
    })
}

/// All bytes are stored and recorded: puts the object in place and records the media file,
/// its job and its first task in one transaction, exactly as `POST /v1/media` does.
/// Idempotent: a rerun after a failure finds the object already in place.
async fn complete(ctx: Ctx<'_>, r: &Resumable, owner: Uuid) -> Result<Status, Error> {
    if r.archive {
        return complete_archive(ctx, r, owner).await;
    }
    let key = Storage::key(r.user_id, r.media_file_id, Rendition::Original);
    let length = u64::try_from(r.upload_length).unwrap_or(0);
    let format = decide(&r.head, &r.filename, ctx.limits)?;
    place(ctx, r, &key, length).await?;
    check_structure(ctx, &key, format, length, &r.filename).await?;
    let sha256 = digest_of(r)?;
    let mut tx = ctx.db.begin().await?;
    // The lease is still ours: nobody else completes it meanwhile.
    if !db::resumable::hold(&mut tx, r.id, owner).await? {
        return Err(Error::Interrupted(
            "the upload was taken over or removed".into(),
        ));
    }
    let media = [db::uploads::NewMedia {
        id: r.media_file_id,
        user_id: r.user_id,
        filename: r.filename.clone(),
        file_path: key.to_string(),
        file_size: r.upload_length,
        mime_type: format.mime(),
        sha256: Some(sha256),
    }];
    let job =
        crate::ingest::submit(&mut tx, r.user_id, &media, crate::jobs::Lane::Interactive).await?;
    // As `POST /v1/media`: uploads checked the quota alone at their creation, so the rows now
    // say what the account holds (the counter's row stays locked until this commits). Over
    // it, nothing is made; the upload stays, all its bytes recorded, and an empty `PATCH` at
    // its length (or a `HEAD`) completes it once space is freed (or it expires).
    if let Some(quota) = ctx.limits.user_quota_bytes {
        let used = db::uploads::storage_used(&mut *tx, r.user_id).await?;
        if used > quota {
            return Err(Error::TooLarge(format!(
                "this account's storage quota is full: {used} of {quota} bytes with this upload"
            )));
        }
    }
    db::objects::settle(&mut tx, &[key.to_string()]).await?;
    let left = db::resumable::complete(&mut tx, r.id, Some(job.id), None)
        .await?
        .ok_or_else(|| Error::Interrupted("the upload was removed".into()))?;
    tx.commit().await?;
    tracing::info!(job.id = %job.id, size_bytes = r.upload_length, "resumable upload completed");
    for k in left {
        if let Err(e) = crate::inflight::clean(ctx.db, ctx.storage, &k).await {
            tracing::debug!(error = %e, "upload leftovers left for the reconciler");
        }
    }
    Ok(Status {
        id: r.id,
        offset: r.upload_length,
        length: r.upload_length,
        expires_at: r.expires_at,
        media_id: Some(r.media_file_id),
        job_id: Some(job.id),
    })
}

/// As `POST /v1/media` does, walks the container's framing
/// (`timeline_media::structure`): bytes whose magic promises a JPEG, PNG or ISO BMFF file
/// and whose framing breaks are refused (415). Here over the stored object's first bytes (at
/// most `CHECK_LIMIT`, 16 MiB, and only until the framing is clearly sound), read back once
/// at completion: the walk's state is not kept between requests, which may each reach
/// another web process.
async fn check_structure(
    ctx: Ctx<'_>,
    key: &Path,
    format: MediaFormat,
    length: u64,
    filename: &str,
) -> Result<(), Error> {
    let mut check = timeline_media::structure::StructureCheck::new(format);
    if check.settled() {
        return Ok(());
    }
    let end = length.min(timeline_media::structure::CHECK_LIMIT);
    let mut bytes = ctx.storage.stream_range(key, 0..end).await?;
    while !check.settled() {
        let Some(chunk) = bytes.next().await else {
            break;
        };
        check
            .feed(&chunk?)
            .map_err(|e| Error::Unsupported(format!("{filename:?} is {e}")))?;
    }
    Ok(())
}

/// The SHA-256 of every byte, from the recorded state.
fn digest_of(r: &Resumable) -> Result<String, Error> {
    let state = r.hash_state.as_deref().ok_or_else(unreadable_state)?;
    Ok(hex::encode(restore_hasher(state)?.finalize()))
}

/// The hasher over the bytes recorded so far, from its serialized state.
fn restore_hasher(state: &[u8]) -> Result<Sha256, Error> {
    let state = state.try_into().map_err(|_| unreadable_state())?;
    Sha256::deserialize(state).map_err(|_| unreadable_state())
}

fn unreadable_state() -> Error {
    Error::Invalid("the upload's recorded hash state is unreadable".into())
}

/// Puts the stored bytes at the media file's key: completes the multipart upload from its
/// parts and tail, or renames the staging file. Already in place (an earlier attempt) is fine.
async fn place(ctx: Ctx<'_>, r: &Resumable, key: &Path, length: u64) -> Result<(), Error> {
    // Placed by an earlier attempt whose transaction failed: the key is this upload's own
    // (its media file's, named when the upload was created), so its full length means done.
    // One HEAD, once per upload; it spares a completed multipart upload a second tail part.
    if ctx.storage.size_of(key).await? == Some(length) {
        return Ok(());
    }
    if ctx.storage.is_multipart() {
        let id = r.multipart_id.clone().unwrap_or_default();
        let mut parts = r.parts.clone();
        if let Some(tail) = &r.tail_key {
            match ctx.storage.get(&Path::from(tail.as_str())).await {
                Ok(bytes) => parts.push(ctx.storage.put_part(key, &id, parts.len(), bytes).await?),
                Err(crate::storage::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match ctx.storage.complete_multipart(key, &id, &parts).await {
            Ok(()) => Ok(()),
            Err(e) => match ctx.storage.size_of(key).await? {
                Some(size) if size == length => Ok(()),
                _ => Err(e.into()),
            },
        }
    } else {
        let staging = staging_key(r.user_id, r.id);
        let (Some(from), Some(to)) = (
            ctx.storage.local_path(&staging),
            ctx.storage.local_path(key),
        ) else {
            return Err(Error::Invalid("no local path for a staging file".into()));
        };
        if let Some(dir) = to.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(crate::storage::Error::Io)?;
        }
        match tokio::fs::rename(&from, &to).await {
            Ok(()) => {
                // The staging folders, once empty (never anything else).
                if let Some(dir) = from.parent() {
                    let _ = tokio::fs::remove_dir(dir).await;
                    if let Some(user_dir) = dir.parent() {
                        let _ = tokio::fs::remove_dir(user_dir).await;
                    }
                }
                Ok(())
            }
            Err(e) => match ctx.storage.size_of(key).await? {
                Some(size) if size == length => Ok(()),
                _ => Err(crate::storage::Error::Io(e).into()),
            },
        }
    }
}
