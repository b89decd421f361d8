//! timeline-workers: the worker pools that process uploaded media, one per queue — `hash`,
//! `exif`, `thumbnail` for photos, `video` for videos and audio — one file per step, and the
//! `library` pool that runs exports, account erasures and imports of the API. The pure media code (bytes in, facts out) lives in
//! the `timeline-media` crate; this crate adds the database, the store and the queue.

pub mod ack;
pub mod backend;
pub mod bench;
pub mod context;
pub mod decoder;
pub mod error;
pub mod exif;
pub mod group_commit;
pub mod hash;
pub mod library;
pub mod metrics_endpoint;
pub mod motion_clip;
pub mod pools;
pub mod spool;
pub mod step;
pub mod thumbnail;
pub mod video;
pub mod wake;

use std::sync::Arc;

use clap::Parser;
use timeline_core::config::{DatabaseConfig, StorageConfig};
use timeline_core::jobs::Step;

/// Command-line flags of `timeline-worker`.
#[derive(Debug, Parser)]
#[command(name = "timeline-worker", version, about = "timeline worker pools")]
pub struct Args {
    #[command(flatten)]
    pub db: DatabaseConfig,
    #[command(flatten)]
    pub storage: StorageConfig,
    /// Queues to serve, comma-separated (default: all).
    #[arg(
        long,
        env = "TIMELINE_QUEUES",
        value_delimiter = ',',
        default_value = "hash,exif,thumbnail,video,library"
    )]
    pub queues: Vec<String>,
    /// Exports, account erasures and imports of the API run at once by the `library` pool (each streams a whole
    /// library through the store, mostly waiting on it).
    #[arg(long, env = "TIMELINE_LIBRARY_CONCURRENCY", default_value_t = 2)]
    pub library_concurrency: usize,
    /// Steps in flight per pool (default: the number of CPUs plus one).
    #[arg(long, env = "TIMELINE_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Slots per queue reserved for interactive tasks (uploads, a user's retry): an express
    /// pool beside each regular pool that takes nothing else, so an upload never waits for a
    /// bulk task to finish. 0 turns express pools off (uploads still go first in the regular
    /// pools' queue order).
    #[arg(long, env = "TIMELINE_INTERACTIVE_CONCURRENCY", default_value_t = 1)]
    pub interactive_concurrency: usize,
    /// Seconds one CPU stage of a step may take before the file is failed as pathological.
    #[arg(long, env = "TIMELINE_STEP_TIMEOUT_SECS", default_value_t = step::CPU_TIMEOUT.as_secs_f64())]
    pub step_timeout_secs: f64,
    /// Seconds one ffprobe/ffmpeg run may take before it is killed and its file failed.
    #[arg(long, env = "TIMELINE_FFMPEG_TIMEOUT_SECS", default_value_t = 300.0)]
    pub ffmpeg_timeout_secs: f64,
    /// Address-space limit of each ffprobe/ffmpeg process, in bytes.
    #[arg(long, env = "TIMELINE_FFMPEG_MAX_MEMORY_BYTES", default_value_t = 3 << 30)]
    pub ffmpeg_max_memory_bytes: u64,
    /// Largest image decoded, in pixels (default: `media.max_pixels`, else 100 000 000).
    #[arg(long, env = "TIMELINE_MAX_PIXELS")]
    pub max_pixels: Option<u64>,
    /// Farther than this from every known place, a GPS fix gets no place name (default:
    /// `geocoding.max_distance_km`, else 50).
    #[arg(long, env = "TIMELINE_GEOCODE_MAX_DISTANCE_KM")]
    pub geocode_max_distance_km: Option<f64>,
    /// Address-space limit of each image decoder child process, in bytes.
    #[arg(long, env = "TIMELINE_DECODER_MAX_MEMORY_BYTES", default_value_t = 4 << 30)]
    pub decoder_max_memory_bytes: u64,
    /// Largest image decoded (image decoders need the whole file in memory).
    #[arg(long, env = "TIMELINE_MAX_IMAGE_BYTES", default_value_t = 512 << 20)]
    pub max_image_bytes: u64,
    /// Reconciliation grace period in seconds (see `timeline_core::reconcile`); a pass runs every
    /// quarter of it (at least every minute, at most every 15 minutes).
    #[arg(long, env = "TIMELINE_RECONCILE_GRACE_SECS", default_value_t = timeline_core::reconcile::DEFAULT_GRACE_SECS)]
    pub reconcile_grace_secs: u64,
    /// Seconds before the first retry of a step that failed transiently (the database or the
    /// store away); each further attempt waits twice as long (±50 % jitter, at most 5 min).
    #[arg(long, env = "TIMELINE_RETRY_BASE_SECS", default_value_t = timeline_core::jobs::DEFAULT_RETRY_BASE.as_secs_f64())]
    pub retry_base_secs: f64,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (e.g. `127.0.0.1:9101`; default: off).
    #[arg(long, env = "TIMELINE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Where originals from a remote (S3) store are spooled for ffmpeg.
    #[arg(long, env = "TIMELINE_SPOOL_DIR")]
    pub spool_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `timeline-worker` runs besides its pools.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Drain no-op tasks through the real pools on a scratch queue and print the rate (one
    /// JSON line; see `bench`).
    Bench(bench::BenchArgs),
}

/// Errors that stop the worker process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Config(String),
    #[error("worker pools failed: {0}")]
    Pools(#[from] apalis::prelude::MonitorError),
    #[error("bench failed: {0}")]
    Bench(#[from] bench::Error),
}

/// Parses the flags and runs the pools until a shutdown signal.
pub async fn run() -> Result<(), Error> {
    let args = Args::parse();
    if let Some(Command::Bench(bench)) = &args.command {
        return run_bench(&args.db, bench).await;
    }
    let library = args
        .queues
        .iter()
        .any(|q| q.trim() == timeline_core::jobs::LIBRARY_QUEUE);
    let steps = args
        .queues
        .iter()
        .filter(|q| q.trim() != timeline_core::jobs::LIBRARY_QUEUE)
        .map(|q| {
            Step::from_queue(q.trim()).ok_or_else(|| {
                Error::Config(format!(
                    "unknown queue {q:?} (hash, exif, thumbnail, video, library)"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // One slot more than cores: a step spends part of its time reading the original, storing
    // renditions and committing, and the extra slot keeps the cores decoding meanwhile (100
    // photos on 2 cores: 14.1 → 14.7 images/s, idle CPU 1.8 → 1.1 s; scripts/bench-ingest.sh).
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()) + 1)
        .max(1);
    // The pool is capped by DATABASE_MAX_CONNECTIONS whatever the core count: the steps share
    // it (a step holds a connection only around its transactions; more steps than connections
    // wait for one). Without a pooler the process's one LISTEN holds one of them for good, and
    // the steps need at least 2 more. Sizing for N hosts: docs/SCALING.md.
    let needed = if args.db.pooled() { 2 } else { 3 };
    if args.db.database_max_connections < needed {
        return Err(Error::Config(format!(
            "--database-max-connections {} is too few: the worker listens on one connection \
             and its steps need at least 2 more (give at least {needed})",
            args.db.database_max_connections,
        )));
    }
    let (db, session) =
        timeline_core::db::pools_waiting(&args.db, std::time::Duration::from_secs(60)).await?;
    timeline_core::metrics::handle();
    let metrics = match &args.metrics_addr {
        Some(addr) => {
            let listener = metrics_endpoint::bind(addr)
                .await
                .map_err(|e| Error::Config(format!("--metrics-addr {addr}: {e}")))?;
            Some(tokio::spawn(metrics_endpoint::serve_on(
                listener,
                db.pool().clone(),
            )))
        }
        None => None,
    };
    let storage = args
        .storage
        .open()
        .map_err(|e| Error::Config(e.to_string()))?;
    // Build the geocoder's and time-zone finder's tables now, not inside the first step.
    tokio::task::spawn_blocking(timeline_media::geocode::warm_up)
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    let recorded = recorded_settings(db.pool()).await?;
    timeline_core::config::apply_max_attempts(&recorded);
    let mut limits = timeline_media::thumbnail::Limits::default();
    if let Some(px) = args.max_pixels.or(recorded.max_pixels) {
        limits.max_pixels = px;
    }
    let geocode_max_km = args
        .geocode_max_distance_km
        .or(recorded.geocoding_max_distance_km)
        .unwrap_or(timeline_media::geocode::MAX_DISTANCE_KM);
    tracing::info!(
        max_pixels = limits.max_pixels,
        geocode_max_km,
        max_attempts = timeline_core::jobs::max_attempts(),
        "settings"
    );
    let decoders = decoder::Decoders::new(limits, args.decoder_max_memory_bytes)
        .map_err(|e| Error::Config(format!("cannot find the worker executable: {e}")))?;
    // Held until the worker exits: its spool folder is its own (see `spool`).
    let spool = spool::claim(
        &args
            .spool_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("timeline-spool")),
    )
    .map_err(|e| Error::Config(format!("--spool-dir: {e}")))?;
    let ctx = Arc::new(context::Context {
        db,
        session,
        storage,
        limits,
        decoders: Arc::new(decoders),
        step_timeout: std::time::Duration::try_from_secs_f64(args.step_timeout_secs.max(0.001))
            .map_err(|e| Error::Config(format!("--step-timeout-secs: {e}")))?,
        av_limits: timeline_media::ffmpeg::Limits {
            timeout: std::time::Duration::try_from_secs_f64(args.ffmpeg_timeout_secs.max(0.001))
                .map_err(|e| Error::Config(format!("--ffmpeg-timeout-secs: {e}")))?,
            max_memory_bytes: args.ffmpeg_max_memory_bytes,
            ..timeline_media::ffmpeg::Limits::default()
        },
        max_image_bytes: args.max_image_bytes,
        geocode_max_km,
        retry_base: std::time::Duration::try_from_secs_f64(args.retry_base_secs.max(0.0))
            .map_err(|e| Error::Config(format!("--retry-base-secs: {e}")))?,
        spool_dir: spool.dir.clone(),
        acked: ack::Acked::default(),
    });
    let reconciler = tokio::spawn(reconcile_loop(
        ctx.clone(),
        std::time::Duration::from_secs(args.reconcile_grace_secs),
    ));
    let library = if library {
        args.library_concurrency.max(1)
    } else {
        0
    };
    let result = pools::run(
        ctx,
        &steps,
        concurrency,
        args.interactive_concurrency,
        library,
    )
    .await;
    reconciler.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    result?;
    tracing::info!("worker stopped");
    Ok(())
}

/// The settings recorded in the database. A database that is away at start-up (restarting, a
/// network cut) is waited for, as the pools wait for it later, rather than ending the process.
async fn recorded_settings(
    pool: &sqlx::PgPool,
) -> Result<timeline_core::db::settings::Recorded, sqlx::Error> {
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        let read = async {
            let mut tx = pool.begin().await?;
            timeline_core::db::settings::recorded(&mut *tx).await
        };
        match read.await {
            Ok(r) => return Ok(r),
            Err(e)
                if timeline_core::db::classify(&e) == timeline_core::db::ErrorClass::Transient =>
            {
                tracing::warn!(error = %e, "cannot read the settings yet; waiting for the database");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `timeline-worker bench`: prints its report as one JSON line on stdout.
async fn run_bench(db: &DatabaseConfig, args: &bench::BenchArgs) -> Result<(), Error> {
    let (pools, session) =
        timeline_core::db::pools_waiting(db, std::time::Duration::from_secs(60)).await?;
    let report = bench::run(pools, session, args).await?;
    let line = serde_json::to_string(&report).map_err(|e| Error::Config(e.to_string()))?;
    use std::io::Write as _;
    writeln!(std::io::stdout().lock(), "{line}").map_err(|e| Error::Config(e.to_string()))?;
    Ok(())
}

/// Runs a reconciliation pass every quarter of the grace period (clamped to 1–15 minutes);
/// only one process at a time does the work (advisory lock), the others skip. Housekeeping
/// runs in the same loop, so that this process never needs more than one session connection
/// beside its listener.
async fn reconcile_loop(ctx: Arc<context::Context>, grace: std::time::Duration) {
    let every = (grace / 4).clamp(
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(900),
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut kept: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        if kept.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY) {
            kept = Some(std::time::Instant::now());
            housekeeping(&ctx.session).await;
        }
        let pass = timeline_core::reconcile::run(ctx.db.pool(), &ctx.session, &ctx.storage, grace);
        if let Err(e) = pass.await {
            tracing::warn!(error = %e, "reconciliation pass failed; will try again");
        }
    }
}

/// How often each worker prunes finished queue rows and maintains audit partitions.
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Hourly maintenance (idempotent, so several workers doing it is harmless): apalis keeps
/// finished rows for ever, and audit partitions must exist before their month starts. On the
/// session pool: its statements run outside explicit transactions.
async fn housekeeping(session: &sqlx::PgPool) {
    let result = async {
        let retention = timeline_core::db::maintenance::Retention::configured(session).await?;
        timeline_core::db::maintenance::run(session, &retention).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "housekeeping failed; will try again next hour");
    }
}
