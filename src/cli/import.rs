//! `timeline import PATH... --email E [--from auto|takeout|facebook|icloud|timeline]`: imports
//! a service's export, or a timeline export (zip parts and extracted folders, together) with
//! what its sidecars say: dates and places, album membership, descriptions, and posts as
//! memories. The files go through the same queues as `timeline ingest`, on one tracked
//! `import` job; the summary names every entry left out and why. The importer itself is
//! `crate::import::job`'s.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use super::Error;
use crate::config::{DatabaseConfig, StorageConfig};
use crate::import::archive::Export;
use crate::import::job::{
    Format, Importer, Prepared, blocking, make_memories, prepare, source_name,
};

/// Flags of `timeline import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Zip files (every part of one export) and extracted folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The user who owns the library.
    #[arg(long)]
    pub email: String,
    /// The export's format.
    #[arg(long = "from", value_enum, default_value = "auto")]
    pub format: Format,
    #[command(flatten)]
    pub storage: StorageConfig,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
    /// Largest file imported, in bytes (default: `upload.max_file_bytes`, else 10 GiB).
    #[arg(long, env = "TIMELINE_MAX_FILE_BYTES")]
    pub max_file_bytes: Option<u64>,
}

pub(super) async fn run(cfg: &DatabaseConfig, args: ImportArgs) -> Result<(), Error> {
    let (pool, limits, user, storage) =
        super::ingest::open(cfg, &args.email, (args.max_file_bytes, None), &args.storage).await?;
    let started = Instant::now();
    let paths = args.paths.clone();
    let (export, unreadable) = blocking(move || Export::open(&paths)).await?;
    let export = Arc::new(export);
    let Prepared {
        format,
        plan,
        albums,
        mut refused,
    } = prepare(&pool, user, &export, args.format, unreadable).await?;
    let refused_count = AtomicUsize::new(refused.len());
    let (job_tx, job_rx) = tokio::sync::mpsc::unbounded_channel();
    let importer = Importer {
        pool: &pool,
        storage: &storage,
        user,
        limits: &limits,
        export: &export,
        albums: &albums,
        from: source_name(format),
        job: None,
    };
    let producer = async {
        let submitted = importer.submit_all(&plan.media, job_tx, &refused_count);
        submitted.await.map_err(Error::from)
    };
    let waiter = super::ingest::wait(
        &pool,
        user,
        job_rx,
        plan.media.len() + refused.len(),
        &refused_count,
        Duration::from_secs(args.timeout_secs),
    );
    let ((mut more, ids), jobs) = tokio::try_join!(producer, waiter)?;
    refused.append(&mut more);
    let memories = make_memories(&pool, user, format, &plan.memories, &ids).await?;
    refused.extend(memories.refused);
    let secs = started.elapsed().as_secs_f64();
    super::ingest::summarize(&pool, &jobs, &refused, secs, false).await?;
    for name in &plan.without_sidecar {
        super::write_line(&format!(
            "  no sidecar {name}: imported from the file alone"
        ))?;
    }
    if !plan.memories.is_empty() {
        super::write_line(&format!(
            "memories: {} made, {} already there",
            memories.made, memories.existing
        ))?;
    }
    Ok(())
}
