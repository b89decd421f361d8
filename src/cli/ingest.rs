//! `timeline ingest DIR --email E`: imports a folder through the same queues as the API, shows
//! the job's progress, waits for the end and prints a summary.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use super::{Error, write_line};
use crate::config::{DatabaseConfig, StorageConfig, UploadLimits};
use crate::db;
use crate::db::uploads::NewMedia;
use crate::format::SNIFF_LEN;
use crate::inflight::{Protocol, UploadSession};
use crate::ingest::store::{
    Body, CHUNK, FIRST_CHUNK, JobKind, Refusal, STORE_CONCURRENCY, Stored, WHOLE_PUT_BYTES,
    check_size, record_chunk, store_body,
};
use crate::models::system::DataProcessingJob;
use crate::models::{JobStatus, JobType};
use crate::storage::Storage;

/// Flags of `timeline ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Folder to import (recursively; hidden files skipped, and named as skipped).
    pub dir: PathBuf,
    /// The user who owns the photos.
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub storage: StorageConfig,
    /// Print one line per photo at the end (status, taken_at, place, thumbnail sizes).
    #[arg(long)]
    pub list: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// Largest file imported, in bytes (larger files are reported and skipped; default:
    /// `upload.max_file_bytes`, else 10 GiB).
    #[arg(long, env = "TIMELINE_MAX_FILE_BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Accepted types, comma-separated MIME types (default: `upload.allowed_types`, else all).
    #[arg(long, env = "TIMELINE_ALLOWED_TYPES", value_delimiter = ',')]
    pub allowed_types: Option<Vec<String>>,
}

/// Every regular file under `dir`, sorted, skipping hidden entries, and the entries that could
/// not be taken, each with why. Symbolic links are followed wherever they point (a camera
/// roll assembled from links is still a camera roll); a directory reached twice, through a
/// link loop or two links, is walked once.
fn files_under(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<Refusal>)> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    seen.insert(std::fs::canonicalize(dir)?);
    let mut stack = vec![dir.to_path_buf()];
    let name = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            // The top folder unreadable is an error; a folder inside it is one skipped entry.
            Err(e) if d == dir => return Err(e),
            Err(e) => {
                skipped.push((name(&d), format!("unreadable folder: {e}")));
                continue;
            }
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            // Named in the summary like any other skip (API.md: each file skipped, and why); a
            // hidden folder once, not each file in it.
            if entry.file_name().to_string_lossy().starts_with('.') {
                skipped.push((name(&path), "hidden (its name starts with a dot)".into()));
                continue;
            }
            let link = entry.file_type()?.is_symlink();
            // `metadata` follows links; a broken one fails here.
            let kind = match std::fs::metadata(&path) {
                Ok(meta) => meta.file_type(),
                Err(e) if link => {
                    skipped.push((name(&path), format!("unreadable: broken link ({e})")));
                    continue;
                }
                Err(e) => {
                    skipped.push((name(&path), format!("unreadable: {e}")));
                    continue;
                }
            };
            if kind.is_dir() {
                match std::fs::canonicalize(&path) {
                    Ok(real) => {
                        if seen.insert(real) {
                            stack.push(path);
                        } else {
                            skipped.push((
                                name(&path),
                                "a folder already imported (a link loop or a second link)".into(),
                            ));
                        }
                    }
                    Err(e) => skipped.push((name(&path), format!("unreadable: {e}"))),
                }
            } else if kind.is_file() {
                out.push(path);
            } else {
                skipped.push((name(&path), "not a regular file".into()));
            }
        }
    }
    out.sort();
    skipped.sort();
    Ok((out, skipped))
}

pub(super) async fn run(cfg: &DatabaseConfig, args: IngestArgs) -> Result<(), Error> {
    let (pool, limits, user, storage) = open(
        cfg,
        &args.email,
        (args.max_file_bytes, args.allowed_types.clone()),
        &args.storage,
    )
    .await?;
    let (files, skipped) = files_under(&args.dir)?;
    // The clock covers everything: reading, storing, rows and queue, processing.
    let started = Instant::now();
    let refused_count = AtomicUsize::new(0);
    let (job_tx, job_rx) = tokio::sync::mpsc::unbounded_channel();
    let producer = submit_all(
        &pool,
        &storage,
        (user, &limits),
        &files,
        job_tx,
        &refused_count,
    );
    let waiter = wait(
        &pool,
        user,
        job_rx,
        files.len(),
        &refused_count,
        Duration::from_secs(args.timeout_secs),
    );
    let (mut refused, jobs) = tokio::try_join!(producer, waiter)?;
    refused.extend(skipped);
    if jobs.is_empty() {
        refused.sort();
        write_refused(&refused)?;
        return Err(Error::Invalid(format!(
            "no photo, video or audio file in {} ({} files refused)",
            args.dir.display(),
            refused.len()
        )));
    }
    let secs = started.elapsed().as_secs_f64();
    summarize(&pool, &jobs, &refused, secs, args.list).await
}

/// What an operator's import starts from: the database, the limits in force (an operator's
/// import is not held to the account's upload quota), the user (refused while being erased)
/// and the store.
pub(super) async fn open(
    cfg: &DatabaseConfig,
    email: &str,
    (max_file_bytes, allowed_types): (Option<u64>, Option<Vec<String>>),
    storage: &StorageConfig,
) -> Result<(sqlx::PgPool, UploadLimits, Uuid, Storage), Error> {
    let pool = db::connect_direct(cfg).await?;
    let recorded = db::settings::recorded(&pool).await?;
    crate::config::apply_max_attempts(&recorded);
    let limits = crate::config::UploadLimitArgs {
        max_file_bytes,
        max_request_bytes: None,
        max_parts: 0,
        allowed_types,
        user_quota_bytes: None,
        max_archive_bytes: crate::config::DEFAULT_MAX_ARCHIVE_BYTES,
    }
    .resolve(&recorded)
    .map_err(Error::Invalid)?;
    let user = db::users::find_id_by_email(&pool, email)
        .await?
        .ok_or_else(|| Error::Invalid(format!("no user with email {email}")))?;
    if db::uploads::admission(&pool, user).await?.erasing {
        return Err(Error::Invalid(format!(
            "the account {email} is being erased; it takes no imports"
        )));
    }
    let storage = storage.open().map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((pool, limits, user, storage))
}

/// Stores and submits the files chunk by chunk, announcing each job on `jobs`; returns the
/// refused files. Dropping `jobs` at the end tells the waiter that no more will come.
async fn submit_all(
    pool: &sqlx::PgPool,
    storage: &Storage,
    (user, limits): (Uuid, &UploadLimits),
    files: &[PathBuf],
    jobs: tokio::sync::mpsc::UnboundedSender<Uuid>,
    refused_count: &AtomicUsize,
) -> Result<Vec<(String, String)>, Error> {
    let mut refused = Vec::new();
    // One open job for the whole import, made when the first file is stored, filled chunk by
    // chunk and sealed at the end (a crashed import's job is sealed by the reconciler).
    let mut job: Option<Uuid> = None;
    let mut position = 0usize;
    let (first_files, rest) = files.split_at(files.len().min(FIRST_CHUNK));
    for chunk in std::iter::once(first_files)
        .filter(|c| !c.is_empty())
        .chain(rest.chunks(CHUNK))
    {
        // Every object is named by the chunk's session before it is stored.
        let session = UploadSession::open(pool.clone(), user, Protocol::Ingest).await?;
        let (media, mut nope) = store_files(storage, &session, user, limits, chunk).await?;
        refused_count.fetch_add(nope.len(), Ordering::Relaxed);
        refused.append(&mut nope);
        if media.is_empty() {
            session.abandon(storage).await;
            continue;
        }
        let first = job;
        let kind = JobKind {
            job_type: JobType::MediaIngest,
            input: serde_json::json!({ "source": "timeline ingest", "files_found": files.len() }),
        };
        if let Err(e) = record_chunk(
            pool,
            &session,
            (user, &mut job),
            &kind,
            (&media, &[]),
            position,
        )
        .await
        {
            session.abandon(storage).await;
            return Err(e.into());
        }
        if let (None, Some(job_id)) = (first, job) {
            // Announced once it exists. The waiter only ends once every announced job has;
            // it cannot be gone here.
            let _ = jobs.send(job_id);
        }
        position += media.len();
    }
    if let Some(id) = job {
        let mut conn = pool.acquire().await?;
        db::jobs::seal(&mut conn, id).await?;
    }
    Ok(refused)
}

/// Stores each recognised file (a few at a time, in order); returns the stored ones and the
/// refused (name, reason). A file that cannot be read is refused and the import goes on.
async fn store_files(
    storage: &Storage,
    session: &UploadSession,
    user: Uuid,
    limits: &UploadLimits,
    files: &[PathBuf],
) -> Result<(Vec<NewMedia>, Vec<(String, String)>), Error> {
    let stored: Vec<Stored> = futures::stream::iter(files)
        .map(|path| store_one(storage, session, user, limits, path))
        .buffered(STORE_CONCURRENCY)
        .collect()
        .await;
    let mut media = Vec::new();
    let mut refused = Vec::new();
    for outcome in stored {
        match outcome {
            Ok(m) => media.push(m),
            Err(r) => refused.push(r),
        }
    }
    Ok((media, refused))
}

/// Sniffs and streams one file into the store (never holding it whole): the new media row,
/// or why it was refused. Whatever went wrong, nothing is left in the store.
async fn store_one(
    storage: &Storage,
    session: &UploadSession,
    user: Uuid,
    limits: &UploadLimits,
    path: &Path,
) -> Stored {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let refuse = |why: String| (name.clone(), why);
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| refuse(format!("cannot read: {e}")))?
        .len();
    check_size(&name, size, limits)?;
    let body = if size <= WHOLE_PUT_BYTES {
        // A photo: one read and one put (at most STORE_CONCURRENCY of these in memory).
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| refuse(format!("cannot read: {e}")))?;
        Body::Whole(bytes::Bytes::from(bytes))
    } else {
        // A video: streamed in chunks, memory bounded whatever the size.
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| refuse(format!("cannot read: {e}")))?;
        let mut head = vec![0u8; SNIFF_LEN];
        let got = read_head(&mut file, &mut head)
            .await
            .map_err(|e| refuse(format!("cannot read: {e}")))?;
        head.truncate(got);
        Body::Streamed {
            head: bytes::Bytes::from(head),
            rest: Box::pin(file_chunks(file).map_err(crate::storage::Error::from)),
        }
    };
    store_body(storage, session, (user, limits), name, body).await
}

/// Fills `buf` from the start of the file as far as it goes; returns how much was read.
async fn read_head(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut got = 0;
    while got < buf.len() {
        let n = file.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// The rest of a file as a stream of 8 MiB chunks.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin {
    use tokio::io::AsyncReadExt;
    const CHUNK: usize = 8 << 20;
    Box::pin(futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0;
        while got < CHUNK {
            let n = file.read(&mut buf[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            return Ok(None);
        }
        buf.truncate(got);
        Ok(Some((bytes::Bytes::from(buf), file)))
    }))
}

/// Polls the announced jobs, drawing their combined progress, until the producer is done and
/// every job has ended (or `timeout` passes). Returns the final jobs in submission order.
pub(super) async fn wait(
    pool: &sqlx::PgPool,
    user: Uuid,
    mut announced: tokio::sync::mpsc::UnboundedReceiver<Uuid>,
    total: usize,
    refused: &AtomicUsize,
    timeout: Duration,
) -> Result<Vec<DataProcessingJob>, Error> {
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut warned = false;
    let mut checked = started;
    // Without a terminal (CI, logs, the demo) the bar is hidden: print a line per change.
    let plain = !std::io::stderr().is_terminal();
    let mut last_line = String::new();
    let mut ids = Vec::new();
    let mut producing = true;
    loop {
        loop {
            match announced.try_recv() {
                Ok(id) => ids.push(id),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    producing = false;
                    break;
                }
            }
        }
        let mut conn = pool.acquire().await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in &ids {
            let job = db::jobs::get(&mut conn, user, *id)
                .await?
                .ok_or_else(|| Error::Invalid(format!("job {id} vanished")))?;
            jobs.push(job);
        }
        let ended = |j: &DataProcessingJob| {
            matches!(
                j.status,
                JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
            )
        };
        let refused_now = u64::try_from(refused.load(Ordering::Relaxed)).unwrap_or(0);
        let done = jobs
            .iter()
            .map(|j| counters(j, &["completed", "failed", "duplicate"]))
            .sum::<u64>()
            + refused_now;
        // A Motion Photo's clip joins its still's job as one more file: the jobs' own totals
        // count it, so the whole is never less than what has ended.
        let jobs_total = jobs.iter().map(|j| counters(j, &["total"])).sum::<u64>() + refused_now;
        let whole = jobs_total
            .max(u64::try_from(total).unwrap_or(u64::MAX))
            .max(done);
        bar.set_length(whole);
        bar.set_position(done);
        let pct = done * 100 / whole.max(1);
        bar.set_message(format!("({} jobs)", jobs.len()));
        let line = format!("ingest: {pct}% ({done}/{whole} files, {} jobs)", jobs.len());
        if plain && line != last_line {
            let _ = writeln!(std::io::stderr(), "{line}");
            last_line = line;
        }
        if !producing && jobs.iter().all(ended) {
            bar.finish();
            return Ok(jobs);
        }
        if !warned
            && started.elapsed() > Duration::from_secs(10)
            && checked.elapsed() >= WORKER_CHECK_EVERY
        {
            checked = Instant::now();
            if db::report::live_workers(&mut *conn).await? == 0 {
                bar.println("no timeline-worker is running: start one (`timeline-worker`) and the import will proceed");
                warned = true;
            }
        }
        if started.elapsed() > timeout {
            bar.abandon();
            return Err(Error::Invalid(format!(
                "import not finished after {}s ({done}/{total} files)",
                timeout.as_secs()
            )));
        }
        drop(conn);
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
}

/// How often the import's progress is read: each read is a database transaction, and at
/// 100 ms they were two of the twelve per photo of a 100-photo import
/// (`scripts/bench-history.sh`); four updates a second still move the bar smoothly.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How often, once the import has run 10 s, whether any worker is alive is asked (to say so
/// when none is): a question per progress read would double their cost.
const WORKER_CHECK_EVERY: Duration = Duration::from_secs(5);

/// The sum of a job's `output_data` counters named `keys`.
fn counters(job: &DataProcessingJob, keys: &[&str]) -> u64 {
    keys.iter()
        .filter_map(|k| job.output_data.get(*k).and_then(serde_json::Value::as_u64))
        .sum()
}

pub(super) async fn summarize(
    pool: &sqlx::PgPool,
    jobs: &[DataProcessingJob],
    refused: &[(String, String)],
    secs: f64,
    list: bool,
) -> Result<(), Error> {
    let mut rows = Vec::new();
    for job in jobs {
        rows.extend(db::report::job_media(pool, job.id).await?);
    }
    if list {
        for r in &rows {
            write_line(&super::report::photo_line(r))?;
        }
    }
    let count = |k: &str| jobs.iter().map(|j| counters(j, &[k])).sum::<u64>();
    let first = jobs.first().map(|j| j.id.to_string()).unwrap_or_default();
    write_line(&format!(
        "{} files in {:.1}s ({:.1} files/s, {} jobs from {first}): {} completed, {} failed, {} duplicate, {} refused",
        rows.len(),
        secs,
        rows.len() as f64 / secs.max(1e-9),
        jobs.len(),
        count("completed"),
        count("failed"),
        count("duplicate"),
        refused.len()
    ))?;
    for r in rows.iter().filter(|r| r.processing_status == "failed") {
        write_line(&format!(
            "  failed   {}: {}",
            r.filename,
            r.error_message.as_deref().unwrap_or("")
        ))?;
    }
    write_refused(refused)
}

/// One line per file refused or skipped, with why.
fn write_refused(refused: &[Refusal]) -> Result<(), Error> {
    for (name, why) in refused {
        write_line(&format!("  refused  {name}: {why}"))?;
    }
    Ok(())
}
