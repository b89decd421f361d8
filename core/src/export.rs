//! The right of access: a user's library as one zip (`POST /v1/exports`), written into the store
//! by a background job and downloadable until it expires.
//!
//! The archive (docs/IMPORTS.md has the format) holds each media file's original as it was
//! uploaded (`media/<id>.<ext>`) with a JSON sidecar of every fact about it (`media/<id>.json`),
//! then `collections.json`, `memories.json` and the manifest `timeline-export.json`.
//! `timeline import --from timeline` reads it back into any account.
//!
//! It is written front to back as it is made: originals are streamed from the store, the zip is
//! streamed into the store ([`sink`]), and only the central directory is held until the end.
//! The export's row names the object before it is written and records the S3 multipart upload
//! in progress; a run beats every few seconds and is fenced by its attempt. Runs are tasks of
//! the workers' `library` queue, queued with the export's row. A run that dies is run again by
//! the queue (its task comes back once its worker is seen dead), or queued again by the
//! reconciler when no task is left; the next run aborts what the dead one had stored and starts
//! over; after [`MAX_ATTEMPTS`] runs that died or failed (not those an outage of the store or
//! the database stopped, which it waits out) the export fails with its reason. Expired archives
//! are deleted by the reconciler from the rows; an erasure deletes the user's.

pub mod sink;
pub mod zipstream;

use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::path::Path;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{self, exports::ExportMedia};
use crate::storage::Storage;
use sink::Sink;
use zipstream::ZipStream;

/// Days an archive is kept once written.
pub const KEEP_DAYS: i32 = 7;
/// Runs an export is given before it fails.
pub const MAX_ATTEMPTS: i32 = 5;
/// The manifest's name and format tag (`timeline import` detects an export by it).
pub const MANIFEST: &str = "timeline-export.json";
pub const FORMAT: &str = "timeline-export";
/// A run records progress at least this often while it streams (its heartbeat).
const BEAT: Duration = Duration::from_secs(2);
/// Rows read per query.
const PAGE: i64 = 100;

/// Errors of an export run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Layout(#[from] zipstream::Error),
    #[error("queue: {0}")]
    Queue(String),
    /// Another run took the export over (this one was thought dead), or it was deleted.
    #[error("the export was taken over by another run, or deleted")]
    Superseded,
}

impl Error {
    /// What went wrong, for its owner to read (no key, path or URL).
    fn reason(&self) -> String {
        match self {
            Self::Database(_) | Self::Queue(_) => {
                "the database failed while the archive was written".into()
            }
            Self::Storage(e) => e.reason(),
            Self::Layout(e) => e.to_string(),
            Self::Superseded => "superseded".into(),
        }
    }

    /// Whether the store or the database stopped the run (unreachable, busy, a part it did
    /// not take), as opposed to the archive itself (its layout) or a store set up wrong: such
    /// a run does not count against the export's attempts.
    fn is_outage(&self) -> bool {
        use crate::storage::Error as S;
        match self {
            Self::Database(_) | Self::Queue(_) => true,
            Self::Storage(S::Config { .. } | S::NotFound(_)) => false,
            Self::Storage(_) => true,
            Self::Layout(_) | Self::Superseded => false,
        }
    }
}

/// What an export wrote (its job's output).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    pub export_id: Uuid,
    pub media_files: u64,
    pub collections: u64,
    pub memories: u64,
    /// Media files left out, each with its reason (an original missing from the store).
    pub skipped: u64,
    pub size: u64,
}

/// The archive's key: system-made, from ids only.
pub fn key(user: Uuid, id: Uuid) -> Path {
    Path::from(format!("exports/{user}/{id}.zip"))
}

/// Records a request for an export of `user`'s library, or joins the unfinished one; returns
/// (export, job, whether it is new). The caller queues a new one's run
/// ([`crate::jobs::LibraryTask::Export`]) on the same transaction and commits.
pub async fn request(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
) -> Result<(Uuid, Uuid, bool), sqlx::Error> {
    db::exports::lock_requests(&mut *conn, user).await?;
    if let Some(id) = db::exports::unfinished(&mut *conn, user).await?
        && let Some(row) = db::exports::get(&mut *conn, user, id).await?
    {
        return Ok((row.id, row.job_id, false));
    }
    let id = Uuid::new_v4();
    let job = db::exports::create(conn, user, id, key(user, id).as_ref()).await?;
    Ok((id, job, true))
}

/// Runs export `id` to its end; `None` when it was not unfinished (done already, or taken over
/// by another run meanwhile).
#[tracing::instrument(skip(pool, storage),
                     fields(export.id = %id, user.id = tracing::field::Empty,
                            job.id = tracing::field::Empty))]
pub async fn run(pool: &PgPool, storage: &Storage, id: Uuid) -> Result<Option<Report>, Error> {
    let Some(claim) = in_tx!(pool, |c| db::exports::claim(c, id)) else {
        return Ok(None);
    };
    let span = tracing::Span::current();
    span.record("user.id", tracing::field::display(claim.user_id));
    span.record("job.id", tracing::field::display(claim.job_id));
    // Runs that an outage of the store or the database stopped are not counted: an export
    // waits out an outage of any length, as an import does.
    let runs = claim.attempt - claim.outage_runs;
    if runs > MAX_ATTEMPTS {
        // Its runs died or failed this often (a kill, a crash: a worker the queue gave its
        // task back from): one more would likely die too. An upload the last run left open
        // stays recorded, for [`expire`] to abort.
        let reason = format!("the export stopped {MAX_ATTEMPTS} times without finishing");
        tracing::warn!(attempt = claim.attempt, "{reason}");
        in_tx!(pool, |c| db::exports::fail(c, id, claim.attempt, &reason));
        return Ok(None);
    }
    let key = Path::from(claim.object_key.clone());
    let writer = Writer {
        pool,
        storage,
        id,
        user: claim.user_id,
        attempt: claim.attempt,
    };
    // Clearing what a dead run left is part of the run: an outage that stops it is recorded
    // as one, like an outage amid the writing.
    let written = match clear_leftovers(pool, storage, &claim, id, &key).await {
        Ok(()) => writer.write(&key).await,
        Err(e) => Err(e),
    };
    match written {
        Ok(report) => {
            let output = serde_json::to_value(&report).unwrap_or_default();
            let size = i64::try_from(report.size).unwrap_or(i64::MAX);
            let ended = in_tx!(pool, |c| db::exports::complete(
                c,
                id,
                claim.attempt,
                size,
                KEEP_DAYS,
                &output
            ));
            if !ended {
                // Taken over (the other run writes the same key) or deleted by an erasure
                // meanwhile: then nothing names this object any more.
                if !in_tx!(pool, |c| db::exports::exists(c, id)) {
                    storage.discard(&key).await?;
                }
                return Ok(None);
            }
            tracing::info!(
                bytes = report.size,
                files = report.media_files,
                "export written"
            );
            Ok(Some(report))
        }
        Err(Error::Superseded) => Ok(None),
        Err(e) => {
            let reason = e.reason();
            tracing::warn!(error = %e, attempt = claim.attempt, "export run failed");
            let outage = e.is_outage();
            let noted = async {
                let mut tx = pool.begin().await?;
                if !outage && runs >= MAX_ATTEMPTS {
                    db::exports::fail(&mut tx, id, claim.attempt, &reason).await?;
                } else {
                    db::exports::note_error(&mut *tx, id, claim.attempt, &reason, outage).await?;
                }
                tx.commit().await
            };
            if let Err(db) = noted.await {
                tracing::warn!(error = %db, "could not record the export's failure");
            }
            Err(e)
        }
    }
}

/// What a dead run left: its multipart upload (S3), its staging file (local).
async fn clear_leftovers(
    pool: &PgPool,
    storage: &Storage,
    claim: &db::exports::Claim,
    id: Uuid,
    key: &Path,
) -> Result<(), Error> {
    if let Some(open) = &claim.multipart_id {
        storage.abort_multipart(key, open).await?;
        in_tx!(pool, |c| db::exports::set_multipart(
            c,
            id,
            claim.attempt,
            None
        ));
    }
    if !storage.is_multipart() {
        storage.discard(key).await?;
    }
    Ok(())
}

/// One run's writing of the archive.
struct Writer<'a> {
    pool: &'a PgPool,
    storage: &'a Storage,
    id: Uuid,
    user: Uuid,
    attempt: i32,
}

/// The archive being written, with its progress.
struct Out {
    sink: Sink,
    zip: ZipStream,
    done: i32,
    total: i32,
    last_beat: Instant,
}

impl Writer<'_> {
    async fn write(&self, key: &Path) -> Result<Report, Error> {
        let (count, bytes) = in_tx!(self.pool, |c| db::exports::media_totals(c, self.user));
        // Sidecars and zip records: a few KB per file, on top of the originals.
        let estimate = u64::try_from(bytes).unwrap_or(0) + u64::try_from(count).unwrap_or(0) * 8192;
        // Room for what is uploaded while the archive is written: its part size allows 10,000
        // parts of this (S3's limit), so the estimate must not fall short.
        let estimate = estimate + estimate / 20 + (64 << 20);
        let (pool, id, attempt) = (self.pool, self.id, self.attempt);
        let sink = Sink::open(self.storage, key, estimate, |upload| async move {
            let recorded = in_tx!(pool, |c| db::exports::set_multipart(
                c,
                id,
                attempt,
                Some(&upload)
            ));
            if recorded {
                Ok(())
            } else {
                Err(Error::Superseded)
            }
        })
        .await?;
        let mut out = Out {
            sink,
            zip: ZipStream::new(chrono::Utc::now().naive_utc()),
            done: 0,
            total: i32::try_from(count).unwrap_or(i32::MAX),
            last_beat: Instant::now(),
        };
        match self.write_into(&mut out).await {
            Ok(mut report) => {
                let Out { mut sink, zip, .. } = out;
                // The archive's length is what was written: no HEAD of the object needed.
                let written = zip.offset();
                let end = zip.finish();
                report.size = written + end.len() as u64;
                sink.write(&end).await?;
                sink.finish().await?;
                Ok(report)
            }
            Err(e) => {
                if let Err(abort) = out.sink.abort().await {
                    tracing::warn!(error = %abort, "could not abort the export's upload; \
                                   the row keeps it for the next run or the reconciler");
                } else if self.storage.is_multipart() {
                    // Its own statement, so a failure here never hides the run's error.
                    let (pool, id, attempt) = (self.pool, self.id, self.attempt);
                    let cleared = async {
                        Ok::<_, sqlx::Error>(in_tx!(pool, |c| db::exports::set_multipart(
                            c, id, attempt, None
                        )))
                    };
                    if let Err(db) = cleared.await {
                        tracing::warn!(error = %db, "could not clear the aborted upload's record");
                    }
                }
                Err(e)
            }
        }
    }

    async fn write_into(&self, out: &mut Out) -> Result<Report, Error> {
        let mut report = Report {
            export_id: self.id,
            ..Report::default()
        };
        let mut skipped = Vec::new();
        let mut after = None;
        loop {
            let page = in_tx!(self.pool, |c| db::exports::media_page(
                c, self.user, after, PAGE
            ));
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for m in &page {
                // An embedded clip is inside its still's bytes; the still's sidecar names it.
                if m.motion_source.as_deref() != Some("embedded") {
                    match self.write_media(out, m).await? {
                        true => report.media_files += 1,
                        false => skipped.push(json!({"id": m.id, "filename": m.filename,
                            "reason": "the original is missing from the store"})),
                    }
                }
                out.done += 1;
                self.beat(out, false).await?;
            }
        }
        report.skipped = skipped.len() as u64;
        report.collections = self.write_collections(out).await?;
        report.memories = self.write_memories(out).await?;
        let manifest = json!({
            "format": FORMAT,
            "version": 1,
            "exported_at": chrono::Utc::now(),
            "media_files": report.media_files,
            "collections": report.collections,
            "memories": report.memories,
            "skipped": skipped,
        });
        write_whole(
            out,
            MANIFEST,
            &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )
        .await?;
        self.beat(out, true).await?;
        Ok(report)
    }

    /// Writes one media file's original and sidecar; false when its original is missing.
    async fn write_media(&self, out: &mut Out, m: &ExportMedia) -> Result<bool, Error> {
        let key = Path::from(m.file_path.clone());
        let (size, mut body) = match self.storage.stream(&key).await {
            Ok(s) => s,
            Err(crate::storage::Error::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let name = format!("media/{}.{}", m.id, extension(&m.filename, &m.mime_type));
        let (header, mut entry) = out.zip.begin(&name, size);
        out.sink.write(&header).await?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            entry.update(&chunk);
            out.sink.write(&chunk).await?;
            self.beat(out, false).await?;
        }
        let descriptor = out.zip.end(entry)?;
        out.sink.write(&descriptor).await?;
        let sidecar = serde_json::to_vec_pretty(&sidecar(m, &name)).unwrap_or_default();
        write_whole(out, &format!("media/{}.json", m.id), &sidecar).await?;
        Ok(true)
    }

    async fn write_collections(&self, out: &mut Out) -> Result<u64, Error> {
        let mut json = JsonArray::start(out, "collections.json").await?;
        let mut after = None;
        loop {
            let page = in_tx!(self.pool, |c| db::exports::collections_page(
                c, self.user, after, PAGE
            ));
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for c in &page {
                let item = json!({"id": c.id, "name": c.name, "description": c.description,
                    "cover": c.cover_image_id, "created_at": c.created_at, "media": c.media});
                json.push(out, &item).await?;
            }
            self.beat(out, false).await?;
        }
        json.end(out).await
    }

    async fn write_memories(&self, out: &mut Out) -> Result<u64, Error> {
        let mut json = JsonArray::start(out, "memories.json").await?;
        let mut after = None;
        loop {
            let page = in_tx!(self.pool, |c| db::exports::memories_page(
                c, self.user, after, PAGE
            ));
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for m in &page {
                let place = m.latitude.zip(m.longitude).map(|(lat, lon)| {
                    json!({"name": m.place_name, "address": m.place_address,
                           "latitude": lat, "longitude": lon})
                });
                let item = json!({"id": m.id, "title": m.title, "description": m.description,
                    "date": m.memory_date, "type": m.memory_type, "source": m.source_platform,
                    "source_id": m.source_id, "favorite": m.is_favorite, "place": place,
                    "media": m.media});
                json.push(out, &item).await?;
            }
            self.beat(out, false).await?;
        }
        json.end(out).await
    }

    /// Records progress when due (or now): the run's heartbeat. Stops the run when another
    /// has taken the export over.
    async fn beat(&self, out: &mut Out, now: bool) -> Result<(), Error> {
        if !now && out.last_beat.elapsed() < BEAT {
            return Ok(());
        }
        out.last_beat = Instant::now();
        let (done, total) = (out.done, out.total.max(out.done));
        if in_tx!(self.pool, |c| db::exports::progress(
            c,
            self.id,
            self.attempt,
            done,
            total
        )) {
            Ok(())
        } else {
            Err(Error::Superseded)
        }
    }
}

/// Writes a small entry whose bytes are all in hand.
async fn write_whole(out: &mut Out, name: &str, data: &[u8]) -> Result<(), Error> {
    let (header, mut entry) = out.zip.begin(name, data.len() as u64);
    out.sink.write(&header).await?;
    entry.update(data);
    out.sink.write(data).await?;
    let descriptor = out.zip.end(entry)?;
    out.sink.write(&descriptor).await?;
    Ok(())
}

/// A JSON array written item by item into one entry (a library's collections or memories may
/// be many; none is held whole).
struct JsonArray {
    entry: zipstream::Entry,
    count: u64,
}

impl JsonArray {
    async fn start(out: &mut Out, name: &str) -> Result<Self, Error> {
        let (header, mut entry) = out.zip.begin(name, 0);
        out.sink.write(&header).await?;
        entry.update(b"[");
        out.sink.write(b"[").await?;
        Ok(Self { entry, count: 0 })
    }

    async fn push(&mut self, out: &mut Out, item: &serde_json::Value) -> Result<(), Error> {
        let mut bytes = if self.count == 0 {
            b"\n".to_vec()
        } else {
            b",\n".to_vec()
        };
        bytes.extend(serde_json::to_vec(item).unwrap_or_default());
        self.entry.update(&bytes);
        out.sink.write(&bytes).await?;
        self.count += 1;
        Ok(())
    }

    async fn end(mut self, out: &mut Out) -> Result<u64, Error> {
        self.entry.update(b"\n]\n");
        out.sink.write(b"\n]\n").await?;
        let descriptor = out.zip.end(self.entry)?;
        out.sink.write(&descriptor).await?;
        Ok(self.count)
    }
}

/// The entry's extension: the client's, when it is a plain one, else the format's.
fn extension(filename: &str, mime: &str) -> String {
    let own = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| (1..=5).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        // `media/<id>.json` is the sidecar's name; an original is never named like it.
        .filter(|e| e != "json");
    own.unwrap_or_else(|| {
        let sub = mime.rsplit('/').next().unwrap_or_default();
        let plain =
            !sub.is_empty() && sub != "json" && sub.bytes().all(|b| b.is_ascii_alphanumeric());
        if plain {
            sub.to_owned()
        } else {
            "bin".to_owned()
        }
    })
}

/// Every fact about a media file, as its sidecar says it.
fn sidecar(m: &ExportMedia, file: &str) -> serde_json::Value {
    let taken_at = m.taken_at.map(|t| {
        let offset = m
            .taken_at_offset_minutes
            .and_then(|o| chrono::FixedOffset::east_opt(i32::from(o) * 60));
        offset.map_or_else(|| t.to_rfc3339(), |o| t.with_timezone(&o).to_rfc3339())
    });
    let location = m.latitude.zip(m.longitude).map(|(lat, lon)| {
        json!({"latitude": lat, "longitude": lon, "city": m.city, "state": m.state_province,
               "country": m.country, "country_code": m.country_code, "timezone": m.timezone})
    });
    let facts = m.import_facts.as_ref();
    let fact = |k: &str| facts.and_then(|f| f.get(k)).cloned();
    json!({
        "id": m.id,
        "file": file,
        "filename": m.filename,
        "mime_type": m.mime_type,
        "kind": m.kind,
        "size": m.file_size,
        "sha256": m.file_hash,
        "status": m.processing_status,
        "error": m.error_message,
        "width": m.width,
        "height": m.height,
        "duration": m.duration,
        "taken_at": taken_at,
        "taken_at_unix": m.taken_at.map(|t| t.timestamp()),
        "taken_at_offset_minutes": m.taken_at_offset_minutes,
        "taken_at_source": m.taken_at_source,
        "location": location,
        "camera": {"make": m.camera_make, "model": m.camera_model},
        "content_identifier": m.content_identifier,
        "motion_clip": m.clip_id.map(|c| json!({"id": c, "source": m.clip_source})),
        "motion_of": m.motion_of.map(|s| json!({"id": s, "source": m.motion_source})),
        "description": fact("description"),
        "favorite": fact("favorite").and_then(|v| v.as_bool()).unwrap_or(false),
        "archived": fact("archived").and_then(|v| v.as_bool()).unwrap_or(false),
        "imported_from": fact("source"),
        "collections": m.collections,
        "memories": m.memories,
        "uploaded_at": m.created_at,
    })
}

/// Queues again up to `limit` exports nobody advanced for `stale_secs` whose run died with no
/// live task left to run it (the queue gave up on it, or lost it), for a worker's `library`
/// pool to resume. Returns how many.
pub async fn resume_stalled(pool: &PgPool, stale_secs: f64, limit: i64) -> Result<u64, Error> {
    let stalled = in_tx!(pool, |c| db::exports::stalled(c, stale_secs, limit));
    let mut resumed = 0;
    for &(id, attempt, runs) in &stalled {
        // Runs that died (a crash, a kill) never reach `fail`: the count ends them too (not
        // those an outage stopped). An upload the last run left open stays recorded, for
        // [`expire`] to abort.
        if runs >= MAX_ATTEMPTS {
            let reason = format!("the export stopped {MAX_ATTEMPTS} times without finishing");
            in_tx!(pool, |c| db::exports::fail(c, id, attempt, &reason));
            continue;
        }
        let mut tx = pool.begin().await?;
        crate::jobs::enqueue_library(&mut tx, crate::jobs::LibraryTask::Export { export_id: id })
            .await
            .map_err(|e| Error::Queue(e.to_string()))?;
        tx.commit().await?;
        tracing::warn!(export.id = %id, attempt, "export queued again: its run died");
        resumed += 1;
    }
    Ok(resumed)
}

/// Deletes the archives past their expiry (a batch), keeping their rows as `expired`, and what
/// a failed export's last run could not abort.
pub async fn expire(pool: &PgPool, storage: &Storage, limit: i64) -> Result<u64, Error> {
    let due = in_tx!(pool, |c| db::exports::expired(c, limit));
    let mut done = 0;
    for (id, key, open) in &due {
        // One object the store refuses to delete does not hold up the others.
        if let Err(e) = delete_bytes(storage, key, open.as_deref()).await {
            tracing::warn!(export.id = %id, error = %e, "could not delete an export's bytes; \
                           the next pass tries again");
            continue;
        }
        in_tx!(pool, |c| db::exports::mark_expired(c, *id));
        done += 1;
    }
    Ok(done)
}

/// Deletes every archive of `user` and its row (an erasure): an open multipart upload is
/// aborted, a written object deleted. A run still writing one stops at its next beat.
pub async fn delete_all_of(pool: &PgPool, storage: &Storage, user: Uuid) -> Result<u64, Error> {
    let stored = in_tx!(pool, |c| db::exports::stored_of(c, user));
    for (id, key, open) in &stored {
        delete_bytes(storage, key, open.as_deref()).await?;
        in_tx!(pool, |c| db::exports::delete(c, *id));
    }
    Ok(stored.len() as u64)
}

/// Deletes what an export may have stored at `key`: the multipart upload `open` (aborted) and
/// the object or staging file.
async fn delete_bytes(
    storage: &Storage,
    key: &str,
    open: Option<&str>,
) -> Result<(), crate::storage::Error> {
    let key = Path::from(key);
    if let Some(open) = open {
        storage.abort_multipart(&key, open).await?;
    }
    storage.discard(&key).await
}

#[cfg(test)]
mod tests {
    use super::extension;

    #[test]
    fn an_original_is_never_named_like_a_sidecar() {
        assert_eq!(extension("IMG_1.HEIC", "image/heic"), "heic");
        assert_eq!(extension("notes.json", "image/jpeg"), "jpeg");
        assert_eq!(extension("x.json", "application/json"), "bin");
        assert_eq!(extension("no extension", "video/mp4"), "mp4");
        assert_eq!(extension("odd.ex-t", "image/svg+xml"), "bin");
    }
}
