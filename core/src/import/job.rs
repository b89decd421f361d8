//! Running an import: an export's archives (zip parts in the store or on disk, extracted
//! folders) planned by their format, each planned file stored and recorded chunk by chunk on
//! the import's job with what the export says of it, then its albums and memories. Used by
//! `timeline import` and by the workers' `library` pool for `POST /v1/imports` (see
//! [`api`](super::api)).
//!
//! An entry's name is matched as a string and never becomes a path; a zip is read through its
//! central directory (or, when that is lost, its local headers up to the damage) and each entry
//! streamed (a photo whole, a video in chunks), so neither memory nor disk holds an archive.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use uuid::Uuid;

use super::archive::{Export, ReadAt};
use super::ranged::StoreObject;
use super::{
    EntryMeta, Plan, Planned, PlannedMemory, Skipped, facebook, icloud, takeout, timeline,
};
use crate::config::UploadLimits;
use crate::db;
use crate::inflight::{Protocol, UploadSession};
use crate::ingest::store::{
    Body, CHUNK, Error, Extra, FIRST_CHUNK, JobKind, NOT_RECORDED, NOT_STORED, Refusal,
    STORE_CONCURRENCY, Stored, WHOLE_PUT_BYTES, check_size, record_chunk, store_body,
};
use crate::models::JobType;
use crate::storage::Storage;

/// Largest per-file sidecar read (Takeout's are a few KB).
const MAX_JSON_BYTES: u64 = 1 << 20;
/// Largest index read whole: Facebook's posts and albums, iCloud's Photo Details, a timeline
/// export's collections and memories list a whole library (a few hundred bytes per item).
const MAX_INDEX_BYTES: u64 = 64 << 20;
/// Chunks of a streamed entry.
const STREAM_CHUNK: usize = 8 << 20;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tell from the entries.
    Auto,
    /// Google Takeout (Google Photos).
    Takeout,
    /// Facebook "Download your information" (JSON).
    Facebook,
    /// iCloud Photos (privacy.apple.com).
    Icloud,
    /// A timeline export.
    Timeline,
}

/// The format named, or told from the entries (`auto`).
fn resolve(export: &Export, format: Format) -> Result<Format, Error> {
    match format {
        Format::Auto => detect(export).ok_or_else(|| {
            Error::Invalid(
                "cannot tell the export's format from its entries; name it with --from".into(),
            )
        }),
        f => Ok(f),
    }
}

/// The format's plan of the export (its small JSON and CSV entries read, capped).
async fn plan_of(export: &Arc<Export>, format: Format) -> Result<Plan, Error> {
    let (planner, cap): (Planner, u64) = match format {
        Format::Takeout => (|e, read| takeout::plan(e, read), MAX_JSON_BYTES),
        Format::Facebook => (|e, read| facebook::plan(e, read), MAX_INDEX_BYTES),
        Format::Icloud => (|e, read| icloud::plan(e, read), MAX_INDEX_BYTES),
        Format::Timeline | Format::Auto => (|e, read| timeline::plan(e, read), MAX_INDEX_BYTES),
    };
    let export = export.clone();
    blocking(move || {
        planner(&export.entries, &mut |i| {
            // A timeline export's per-file sidecars are small, whatever its lists' cap.
            let sidecar = matches!(format, Format::Timeline | Format::Auto)
                && export
                    .entries
                    .get(i)
                    .is_some_and(|e| e.name.contains("media/"));
            export.read_whole(i, if sidecar { MAX_JSON_BYTES } else { cap })
        })
    })
    .await
}

/// An import of `POST /v1/imports`: archives uploaded into the store (`keys`), read in place by
/// ranged reads, on the open job `job` that the request made. The entries left out, with their
/// reasons, go into the job's output (`skipped`), then the job is sealed: it completes once its
/// files have. Running it again (a resumed job) stores nothing twice.
pub async fn run_archives(
    pool: &sqlx::PgPool,
    storage: &Storage,
    limits: &UploadLimits,
    (user, job): (Uuid, Uuid),
    keys: &[String],
    format: Format,
) -> Result<(), Error> {
    let rt = tokio::runtime::Handle::current();
    let mut sources: Vec<(String, Arc<dyn ReadAt>, u64)> = Vec::new();
    let mut objects = Vec::new();
    for (n, key) in keys.iter().enumerate() {
        let path = object_store::path::Path::from(key.as_str());
        let shown = format!("archive {}", n + 1);
        let Some(len) = storage.size_of(&path).await.map_err(storage_error)? else {
            return Err(Error::Invalid(format!("{shown} is no longer in the store")));
        };
        let object = StoreObject::new(storage.clone(), path, len, rt.clone());
        objects.push(object.clone());
        sources.push((shown, object, len));
    }
    let (export, unreadable) = blocking(move || Export::open_sources(sources)).await?;
    let export = Arc::new(export);
    let Prepared {
        format,
        plan,
        albums,
        mut refused,
    } = prepare(pool, user, &export, format, unreadable).await?;
    let refused_count = AtomicUsize::new(refused.len());
    let (job_tx, _) = tokio::sync::mpsc::unbounded_channel();
    let importer = Importer {
        pool,
        storage,
        user,
        limits,
        export: &export,
        albums: &albums,
        from: source_name(format),
        job: Some(job),
    };
    let (mut more, ids) = importer
        .submit_all(&plan.media, job_tx, &refused_count)
        .await?;
    refused.append(&mut more);
    let memories = make_memories(pool, user, format, &plan.memories, &ids).await?;
    refused.extend(memories.refused);
    // What the store or the database made us leave out is not the archive's fault: the job is
    // left open, to be run again (what was stored is only linked then), not sealed without it.
    let troubled = refused
        .iter()
        .find(|(_, why)| why.starts_with(NOT_RECORDED) || why.starts_with(NOT_STORED));
    if let Some((name, why)) = troubled {
        return Err(Error::Interrupted(format!("{name}: {why}")));
    }
    if objects.iter().any(|o| o.failed()) {
        return Err(Error::Interrupted(
            "a ranged read of an archive failed; the import runs again".into(),
        ));
    }
    let summary = serde_json::json!({
        "from": source_name(format),
        "skipped": refused.iter().map(|(name, reason)| serde_json::json!({"name": name, "reason": reason}))
            .collect::<Vec<_>>(),
        "without_sidecar": plan.without_sidecar,
        "memories_made": memories.made,
        "memories_existing": memories.existing,
    });
    let mut tx = pool.begin().await?;
    db::jobs::record_import(&mut tx, job, &summary).await?;
    db::jobs::seal(&mut tx, job).await?;
    tx.commit().await?;
    Ok(())
}

/// An opened export made ready to store: its format, its plan, its albums' collections, and
/// the entries already left out (unreadable ones, and those the plan skipped).
#[derive(Debug)]
pub struct Prepared {
    pub format: Format,
    pub plan: Plan,
    pub albums: HashMap<String, Uuid>,
    pub refused: Vec<Refusal>,
}

/// Tells the export's format (`auto`), plans it and makes its albums: what `timeline import`
/// and an import of the API do alike before they store a file.
pub async fn prepare(
    pool: &sqlx::PgPool,
    user: Uuid,
    export: &Arc<Export>,
    format: Format,
    unreadable: Vec<Skipped>,
) -> Result<Prepared, Error> {
    let format = resolve(export, format)?;
    let plan = plan_of(export, format).await?;
    let albums = make_albums(pool, user, &plan.albums).await?;
    let refused = unreadable
        .into_iter()
        .chain(plan.skipped.iter().cloned())
        .map(|s| (s.name, s.reason))
        .collect();
    Ok(Prepared {
        format,
        plan,
        albums,
        refused,
    })
}

/// A missing archive is for good; any other trouble of the store (an outage, a timeout) is
/// worth running the import again for.
fn storage_error(e: crate::storage::Error) -> Error {
    match e {
        crate::storage::Error::NotFound(_) => Error::Invalid(e.reason()),
        e => Error::Interrupted(e.to_string()),
    }
}

/// Reads an entry's bytes (capped) for a planner.
type ReadEntry<'a> = &'a mut dyn FnMut(usize) -> Result<Vec<u8>, String>;
/// A format's planner: entries and their reader in, the plan out.
type Planner = fn(&[EntryMeta], ReadEntry<'_>) -> Plan;

/// The service's name, as `memories.source_platform` and `import_facts.source` spell it.
pub fn source_name(format: Format) -> &'static str {
    match format {
        Format::Takeout => "google_photos",
        Format::Facebook => "facebook",
        Format::Icloud => "apple_photos",
        Format::Auto | Format::Timeline => "timeline",
    }
}

/// What making the memories did.
#[derive(Debug)]
pub struct Memories {
    pub made: usize,
    pub existing: usize,
    pub refused: Vec<Refusal>,
}

/// Makes the posts' memories with their places and the media that were stored (`ids`: planned
/// index → media file), in one transaction; a memory already imported is found by its source
/// id and gains only missing links.
pub async fn make_memories(
    pool: &sqlx::PgPool,
    user: Uuid,
    format: Format,
    planned: &[PlannedMemory],
    ids: &HashMap<usize, Uuid>,
) -> Result<Memories, Error> {
    let mut out = Memories {
        made: 0,
        existing: 0,
        refused: Vec::new(),
    };
    if planned.is_empty() {
        return Ok(out);
    }
    // The schema refuses a memory dated later than now (plus clock skew).
    let latest = chrono::Utc::now() + chrono::Duration::minutes(5);
    let mut tx = pool.begin().await?;
    for m in planned {
        let Some(date) = chrono::DateTime::from_timestamp(m.date, 0).filter(|d| *d <= latest)
        else {
            out.refused.push((
                m.source_id.clone(),
                format!("a post dated {} (in the future)", m.date),
            ));
            continue;
        };
        let location_id = match &m.place {
            Some(p) => Some(
                db::memories::place(
                    &mut tx,
                    user,
                    (p.latitude, p.longitude),
                    p.name.as_deref().map(|n| cut(n, 500)).as_deref(),
                    p.address.as_deref().map(|a| cut(a, 1000)).as_deref(),
                )
                .await?,
            ),
            None => None,
        };
        let description = m.description.as_deref().map(|d| cut(d, 50_000));
        // The schema wants a title of 1 to 500 characters and a source id of at most 500.
        let mut title = cut(&m.title, 500);
        if title.trim().is_empty() {
            title = "Untitled".into();
        }
        let memory = db::memories::NewMemory {
            title: &title,
            description: description.as_deref(),
            date,
            kind: m.kind,
            source: source_name(format),
            source_id: &cut(&m.source_id, 500),
            location_id,
        };
        let (id, made) = db::memories::ensure_imported(&mut tx, user, &memory).await?;
        if made {
            out.made += 1;
        } else {
            out.existing += 1;
        }
        // Positions as the export gave them, even where a media file was not stored.
        let linked = m.media.iter().enumerate();
        for (position, media) in linked.filter_map(|(p, k)| ids.get(k).map(|id| (p, id))) {
            let position = i32::try_from(position).unwrap_or(i32::MAX);
            db::memories::add_media(&mut tx, user, id, *media, position).await?;
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// `s` cut to `n` characters (the schema's limits), without NUL characters: an export's text
/// may hold `\u0000`, which PostgreSQL's text and jsonb refuse (one would fail its whole
/// transaction).
fn cut(s: &str, n: usize) -> String {
    s.chars().filter(|c| *c != '\0').take(n).collect()
}

/// Runs blocking archive work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Invalid(format!("the import's reader stopped: {e}")))
}

/// The export's format, from its entries' names.
fn detect(export: &Export) -> Option<Format> {
    let any = |f: &dyn Fn(&str) -> bool| export.entries.iter().any(|e| f(&e.name));
    if any(&|n| n.rsplit('/').next() == Some(crate::export::MANIFEST)) {
        Some(Format::Timeline)
    } else if any(&|n| {
        n.contains(".supplemental-metadata")
            || n.split('/')
                .any(|c| c == "Google Photos" || c == "Google Fotos")
    }) {
        Some(Format::Takeout)
    } else if any(&|n| {
        n.split('/').any(|c| c == "your_facebook_activity")
            || n.rsplit('/')
                .next()
                .is_some_and(|f| f.starts_with("your_posts"))
    }) {
        Some(Format::Facebook)
    } else if any(&|n| {
        n.rsplit('/')
            .next()
            .is_some_and(|f| f.starts_with("Photo Details") && f.ends_with(".csv"))
    }) {
        Some(Format::Icloud)
    } else {
        None
    }
}

/// The albums' collections, made if missing (found by name when imported again).
async fn make_albums(
    pool: &sqlx::PgPool,
    user: Uuid,
    albums: &[(String, Option<String>)],
) -> Result<HashMap<String, Uuid>, Error> {
    let mut ids = HashMap::new();
    let mut tx = pool.begin().await?;
    for (name, description) in albums {
        // The schema's limits: names up to 200 characters, descriptions up to 5,000.
        let name_cut = cut(name, 200);
        let description = description.as_deref().map(|d| cut(d, 5000));
        let id = db::collections::ensure(&mut tx, user, &name_cut, description.as_deref()).await?;
        ids.insert(name.clone(), id);
    }
    tx.commit().await?;
    Ok(ids)
}

/// The files kept to record, their extras, and the known ones (new id → the library's).
type KnownSplit = (
    Vec<crate::db::uploads::NewMedia>,
    Vec<Extra>,
    HashMap<Uuid, Uuid>,
);

/// What every stored file shares.
#[allow(missing_debug_implementations)] // holds the export's readers
pub struct Importer<'a> {
    pub pool: &'a sqlx::PgPool,
    pub storage: &'a Storage,
    pub user: Uuid,
    pub limits: &'a UploadLimits,
    pub export: &'a Arc<Export>,
    pub albums: &'a HashMap<String, Uuid>,
    /// The service's name, in the job's input.
    pub from: &'static str,
    /// The job the files go on, made by the caller and sealed by it (`POST /v1/imports`);
    /// `None`: made with the first chunk, and sealed at the end (`timeline import`).
    pub job: Option<Uuid>,
}

impl Importer<'_> {
    /// Stores and records the planned files chunk by chunk on one `import` job (announced on
    /// `jobs`); returns the refused entries and the media file of each planned index stored
    /// (or already in the library).
    pub async fn submit_all(
        &self,
        planned: &[Planned],
        jobs: tokio::sync::mpsc::UnboundedSender<Uuid>,
        refused_count: &AtomicUsize,
    ) -> Result<(Vec<Refusal>, HashMap<usize, Uuid>), Error> {
        let mut refused = Vec::new();
        let mut ids = HashMap::new();
        let mut base = 0usize;
        let mut job: Option<Uuid> = self.job;
        let mut position = 0usize;
        let kind = JobKind {
            job_type: JobType::Import,
            input: serde_json::json!({ "source": "timeline import", "from": self.from,
                                       "files_found": planned.len() }),
        };
        let (first, rest) = planned.split_at(planned.len().min(FIRST_CHUNK));
        for chunk in std::iter::once(first)
            .filter(|c| !c.is_empty())
            .chain(rest.chunks(CHUNK))
        {
            let session =
                UploadSession::open(self.pool.clone(), self.user, Protocol::Ingest).await?;
            let session_ref = &session;
            // By index, not by reference: a closure over `&Planned` is not general enough for
            // the future to be `Send` (the API runs an import on a spawned task).
            let stored: Vec<(Stored, &Planned)> = futures::stream::iter(0..chunk.len())
                .map(|k| {
                    let p = &chunk[k];
                    async move { (self.store(session_ref, p).await, p) }
                })
                .buffered(STORE_CONCURRENCY)
                .collect()
                .await;
            let mut media = Vec::new();
            let mut extras = Vec::new();
            let mut chunk_ids = Vec::new();
            for (k, (outcome, p)) in stored.into_iter().enumerate() {
                match outcome {
                    Ok(m) => {
                        chunk_ids.push((base + k, m.id));
                        extras.push(self.extra(m.id, p));
                        media.push(m);
                    }
                    Err(r) => {
                        refused_count.fetch_add(1, Ordering::Relaxed);
                        refused.push(r);
                    }
                }
            }
            base += chunk.len();
            let (media, extras, known) = self.split_known(media, extras).await?;
            refused_count.fetch_add(known.len(), Ordering::Relaxed);
            // A file the library already held stands for its new copy.
            ids.extend(
                chunk_ids
                    .into_iter()
                    .map(|(k, id)| (k, known.get(&id).copied().unwrap_or(id))),
            );
            if media.is_empty() {
                session.abandon(self.storage).await;
                continue;
            }
            let before = job;
            let recorded = record_chunk(
                self.pool,
                &session,
                (self.user, &mut job),
                &kind,
                (&media, &extras),
                position,
            )
            .await;
            if let Err(e) = recorded {
                session.abandon(self.storage).await;
                return Err(e);
            }
            if let (None, Some(id)) = (before, job) {
                let _ = jobs.send(id);
            }
            position += media.len();
        }
        if let (None, Some(id)) = (self.job, job) {
            let mut tx = self.pool.begin().await?;
            db::jobs::seal(&mut tx, id).await?;
            tx.commit().await?;
        }
        Ok((refused, ids))
    }

    fn extra(&self, media: Uuid, p: &Planned) -> Extra {
        let facts = p.facts.clone().map(|mut f| {
            f.description = f.description.map(|d| cut(&d, 50_000));
            f.source = cut(&f.source, 100);
            f
        });
        Extra {
            media,
            facts,
            collections: p
                .albums
                .iter()
                .filter_map(|a| self.albums.get(a).copied())
                .collect(),
        }
    }

    /// Splits off the files the library already holds (the same bytes, imported before or
    /// uploaded): they are linked to their albums, their new copy is deleted, and they are
    /// not recorded again. Returns the rest and the known ones (new id → the library's).
    async fn split_known(
        &self,
        media: Vec<crate::db::uploads::NewMedia>,
        extras: Vec<Extra>,
    ) -> Result<KnownSplit, Error> {
        let hashes: Vec<String> = media.iter().filter_map(|m| m.sha256.clone()).collect();
        // In a transaction: behind a transaction pooler a statement outside one may reach a
        // server connection that never prepared it.
        let mut tx = self.pool.begin().await?;
        let known: HashMap<String, Uuid> = db::media::existing_hashes(&mut tx, self.user, &hashes)
            .await?
            .into_iter()
            .collect();
        tx.commit().await?;
        if known.is_empty() {
            return Ok((media, extras, HashMap::new()));
        }
        let mut replaced = HashMap::new();
        let (mut keep, mut keep_extras, mut copies) = (Vec::new(), Vec::new(), Vec::new());
        let mut tx = self.pool.begin().await?;
        for (m, extra) in media.into_iter().zip(extras) {
            match m.sha256.as_ref().and_then(|h| known.get(h)) {
                Some(&existing) => {
                    replaced.insert(m.id, existing);
                    for &c in &extra.collections {
                        db::collections::add_media(&mut *tx, self.user, c, existing, 0).await?;
                    }
                    copies.push(m.file_path);
                }
                None => {
                    keep.push(m);
                    keep_extras.push(extra);
                }
            }
        }
        tx.commit().await?;
        for key in copies {
            // Named by the session, never by a row: deleted now, or by the reconciler.
            let _ = self
                .storage
                .discard(&object_store::path::Path::from(key))
                .await;
        }
        Ok((keep, keep_extras, replaced))
    }

    /// Stores one planned entry.
    async fn store(&self, session: &UploadSession, p: &Planned) -> Stored {
        let entry = &self.export.entries[p.entry];
        let refuse = |why: String| (entry.name.clone(), why);
        check_size(&entry.name, entry.size, self.limits)?;
        let export = self.export.clone();
        let i = p.entry;
        let body = if entry.size <= WHOLE_PUT_BYTES {
            let cap = WHOLE_PUT_BYTES;
            let bytes = blocking(move || export.read_whole(i, cap))
                .await
                .map_err(|e| refuse(e.to_string()))?
                .map_err(refuse)?;
            Body::Whole(bytes::Bytes::from(bytes))
        } else {
            let (mut chunks, broken) = stream_entry(export, i);
            let head = match chunks.next().await {
                Some(Ok(b)) => b,
                Some(Err(e)) => return Err(refuse(format!("unreadable: {e}"))),
                None => return Err(refuse("empty".into())),
            };
            let stored = store_body(
                self.storage,
                session,
                (self.user, self.limits),
                cut(&p.filename, 1024),
                Body::Streamed { head, rest: chunks },
            )
            .await;
            // A read of the entry that broke (a bad deflate stream, a CRC) is the entry's
            // fault, not the store's: named as unreadable, it is skipped rather than run
            // again for ever. (A ranged read of the archive that failed is the store's: the
            // archive's object says so, and the import runs again.)
            let why = broken.lock().ok().and_then(|b| b.clone());
            return match (stored, why) {
                (Err(_), Some(why)) => Err(refuse(why)),
                (stored, _) => stored,
            };
        };
        store_body(
            self.storage,
            session,
            (self.user, self.limits),
            cut(&p.filename, 1024),
            body,
        )
        .await
    }
}

/// Why a streamed entry's read broke, once it has.
type Broken = Arc<std::sync::Mutex<Option<String>>>;

/// Entry `i` as a stream of chunks, read by a blocking thread (a few chunks ahead at most),
/// and where the reason goes if its read breaks.
fn stream_entry(
    export: Arc<Export>,
    i: usize,
) -> (
    futures::stream::BoxStream<'static, Result<bytes::Bytes, crate::storage::Error>>,
    Broken,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, String>>(2);
    let broken = Broken::default();
    let noted = broken.clone();
    tokio::task::spawn_blocking(move || {
        let done = export.with_reader(i, |r| {
            loop {
                let mut buf = vec![0u8; STREAM_CHUNK];
                let mut got = 0;
                while got < buf.len() {
                    match r.read(&mut buf[got..]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) => return Err(format!("unreadable: {e}")),
                    }
                }
                if got == 0 {
                    return Ok(());
                }
                buf.truncate(got);
                if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                    return Ok(());
                }
            }
        });
        if let Err(e) | Ok(Err(e)) = done {
            if let Ok(mut b) = noted.lock() {
                *b = Some(e.clone());
            }
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| {
            (
                item.map_err(|e| crate::storage::Error::Io(std::io::Error::other(e))),
                rx,
            )
        })
    })
    .boxed();
    (stream, broken)
}
