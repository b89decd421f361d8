//! `timeline ingest DIR --email E`: imports a folder through the same queues as the API, shows
//! the job's progress, waits for the end and prints a summary.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use super::{Error, write_line};
use crate::config::{DatabaseConfig, StorageConfig};
use crate::db;
use crate::db::uploads::NewMedia;
use crate::media_type::MediaType;
use crate::models::JobStatus;
use crate::storage::{Rendition, Storage};

/// Flags of `timeline ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Folder to import (recursively; hidden files skipped).
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
}

/// Every regular file under `dir`, sorted, skipping hidden entries.
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(super) async fn run(cfg: &DatabaseConfig, args: IngestArgs) -> Result<(), Error> {
    let pool = db::connect(cfg).await?;
    let user = db::users::find_id_by_email(&pool, &args.email)
        .await?
        .ok_or_else(|| Error::Invalid(format!("no user with email {}", args.email)))?;
    let storage = args
        .storage
        .open()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let files = files_under(&args.dir)?;
    let (media, refused) = store_files(&storage, user, &files).await?;
    if media.is_empty() {
        return Err(Error::Invalid(format!(
            "no image in {} ({} files refused)",
            args.dir.display(),
            refused.len()
        )));
    }
    let mut tx = pool.begin().await?;
    let job = crate::ingest::submit(&mut tx, user, &media)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    tx.commit().await?;
    let started = Instant::now();
    let job = wait(
        &pool,
        user,
        job.id,
        media.len(),
        Duration::from_secs(args.timeout_secs),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    summarize(&pool, &job, &refused, secs, args.list).await
}

/// Stores each recognised image; returns the stored ones and the refused (name, reason).
async fn store_files(
    storage: &Storage,
    user: Uuid,
    files: &[PathBuf],
) -> Result<(Vec<NewMedia>, Vec<(String, String)>), Error> {
    let mut media = Vec::new();
    let mut refused = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = tokio::fs::read(path).await?;
        let Some(kind) = MediaType::sniff(&bytes) else {
            refused.push((name, "not an image this system can handle".to_owned()));
            continue;
        };
        let id = Uuid::new_v4();
        let key = Storage::key(user, id, Rendition::Original);
        let size = bytes.len();
        storage
            .put(&key, bytes.into())
            .await
            .map_err(|e| Error::Invalid(e.to_string()))?;
        media.push(NewMedia {
            id,
            user_id: user,
            filename: name,
            file_path: key.to_string(),
            file_size: i64::try_from(size).unwrap_or(i64::MAX),
            mime_type: kind.mime(),
        });
    }
    Ok((media, refused))
}

/// Polls the job, drawing its progress, until it ends or `timeout` passes.
async fn wait(
    pool: &sqlx::PgPool,
    user: Uuid,
    job_id: Uuid,
    total: usize,
    timeout: Duration,
) -> Result<crate::models::system::DataProcessingJob, Error> {
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut warned = false;
    loop {
        let mut conn = pool.acquire().await?;
        let job = db::jobs::get(&mut conn, user, job_id)
            .await?
            .ok_or_else(|| Error::Invalid("job vanished".into()))?;
        bar.set_position(u64::try_from(job.progress).unwrap_or(0));
        let done = ["completed", "failed", "duplicate"]
            .iter()
            .filter_map(|k| job.output_data.get(*k).and_then(serde_json::Value::as_u64))
            .sum::<u64>();
        bar.set_message(format!("{done}/{total} files"));
        if matches!(
            job.status,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        ) {
            bar.finish();
            return Ok(job);
        }
        if !warned
            && started.elapsed() > Duration::from_secs(10)
            && db::report::live_workers(&mut *conn).await? == 0
        {
            bar.println("no timeline-worker is running: start one (`timeline-worker`) and this job will proceed");
            warned = true;
        }
        if started.elapsed() > timeout {
            bar.abandon();
            return Err(Error::Invalid(format!(
                "job {job_id} still {} after {}s",
                job.status,
                timeout.as_secs()
            )));
        }
        drop(conn);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn summarize(
    pool: &sqlx::PgPool,
    job: &crate::models::system::DataProcessingJob,
    refused: &[(String, String)],
    secs: f64,
    list: bool,
) -> Result<(), Error> {
    let rows = db::report::job_media(pool, job.id).await?;
    if list {
        for r in &rows {
            write_line(&super::report::photo_line(r))?;
        }
    }
    let count = |k: &str| {
        job.output_data
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    write_line(&format!(
        "job {}: {} files in {:.1}s ({:.1} images/s): {} completed, {} failed, {} duplicate, {} refused",
        job.id,
        rows.len(),
        secs,
        rows.len() as f64 / secs.max(1e-9),
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
    for (name, why) in refused {
        write_line(&format!("  refused  {name}: {why}"))?;
    }
    Ok(())
}
