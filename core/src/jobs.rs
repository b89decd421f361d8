//! Queue job payloads and the functions that enqueue them, shared by the API and the workers
//! (so the API never compiles image code). Jobs are pushed with apalis-postgres's `push_tasks`
//! on the caller's transaction: a media row and its job commit or roll back together.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use timeline_media::{ImageFormat, Kind};
use uuid::Uuid;

/// Version of the processing pipeline, recorded with every step. Bump it when a step's output
/// changes, and "reprocess missing" redoes the steps recorded with an older version.
pub const PIPELINE_VERSION: i32 = 1;

/// Default attempts per step before the media file is marked failed (`jobs.max_attempts`).
pub const MAX_ATTEMPTS: usize = 5;

static CONFIGURED_MAX_ATTEMPTS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(MAX_ATTEMPTS);

/// Attempts per step in force in this process (set at start-up from the configuration).
pub fn max_attempts() -> usize {
    CONFIGURED_MAX_ATTEMPTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets [`max_attempts`] (see `config::apply_max_attempts`).
pub fn set_max_attempts(n: u32) {
    let n = usize::try_from(n.max(1)).unwrap_or(MAX_ATTEMPTS);
    CONFIGURED_MAX_ATTEMPTS.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// Delay before retry number `attempt + 1` of a step that failed transiently: exponential
/// (2 s, 4 s, 8 s, … capped at 5 min) with ±50 % jitter so a burst of failures (a database
/// restart) does not come back as a burst. Persisted in the queue by `db::queue::delay_retry`.
pub fn retry_delay(attempt: usize) -> Duration {
    retry_delay_from(attempt, DEFAULT_RETRY_BASE)
}

/// The first retry's delay before jitter (`--retry-base-secs` scales the whole series).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(2);

/// [`retry_delay`] from another base delay: `base × 2^(attempt-1)`, jittered, capped at 5 min.
pub fn retry_delay_from(attempt: usize, base: Duration) -> Duration {
    use rand::RngExt;
    let jitter: f64 = rand::rng().random_range(0.5..1.5);
    retry_delay_with(attempt, jitter).mul_f64(base.as_secs_f64() / DEFAULT_RETRY_BASE.as_secs_f64())
}

/// [`retry_delay`] with a given jitter factor (tests pin it).
pub fn retry_delay_with(attempt: usize, jitter: f64) -> Duration {
    const BASE: f64 = 2.0;
    const CAP: f64 = 300.0;
    let exp = i32::try_from(attempt.saturating_sub(1).min(16)).unwrap_or(16);
    Duration::from_secs_f64((BASE * 2f64.powi(exp)).min(CAP) * jitter.clamp(0.0, 2.0))
}

/// The processing steps, one queue (and worker pool) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Hash,
    Exif,
    Thumbnail,
    /// Videos and audio: container probe, metadata, poster frame or waveform. Its own queue,
    /// so minutes of video work never hold up photo thumbnails.
    Video,
}

impl Step {
    /// Every step, in pipeline order.
    pub const ALL: [Step; 4] = [Step::Hash, Step::Exif, Step::Thumbnail, Step::Video];

    /// The steps a file of `kind` goes through (the first is always `Hash`).
    pub fn for_kind(kind: Kind) -> &'static [Step] {
        match kind {
            Kind::Image => &[Step::Hash, Step::Exif, Step::Thumbnail],
            Kind::Video | Kind::Audio => &[Step::Hash, Step::Video],
        }
    }

    /// The steps that follow `Hash` for a file of `kind`.
    pub fn after_hash(kind: Kind) -> &'static [Step] {
        &Self::for_kind(kind)[1..]
    }

    /// The queue (and `media_processing_steps.step`) name.
    pub fn queue(self) -> &'static str {
        match self {
            Step::Hash => "hash",
            Step::Exif => "exif",
            Step::Thumbnail => "thumbnail",
            Step::Video => "video",
        }
    }

    /// The worker type of this step's express pool: a pool that fetches only interactive
    /// tasks of [`Self::queue`], so an upload never waits for a bulk task to free a slot
    /// (see `db::migrate::lane_fetch`).
    pub fn express_pool(self) -> String {
        format!("{}{EXPRESS_SUFFIX}", self.queue())
    }

    /// Parses a queue name (for `timeline-worker --queues`).
    pub fn from_queue(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.queue() == name)
    }
}

/// The payload of every step: which media file, on behalf of which tracked job, in which lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaTask {
    pub media_file_id: Uuid,
    pub job_id: Uuid,
    /// The queue priority (see [`priority`]); a file's later steps keep its first step's.
    #[serde(default)]
    pub priority: u32,
    /// When this step was queued (ms since the epoch), for the queue-wait histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueued_at_ms: Option<i64>,
    /// Reprocessing of a file that already completed: the step runs although the file has
    /// ended, and the file stays `completed` (see `timeline::reprocess`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh: bool,
    /// What the step that queued this one knew of the file (see [`Known`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<Known>,
}

impl MediaTask {
    pub fn new(media_file_id: Uuid, job_id: Uuid, priority: u32) -> Self {
        Self {
            media_file_id,
            job_id,
            priority,
            enqueued_at_ms: None,
            refresh: false,
            known: None,
        }
    }
}

/// What the hash step read of a file in the transaction that queues the file's next steps,
/// carried in their tasks: the EXIF and thumbnail steps then skip a first transaction of their
/// own (they load and check the file in their final one instead; see
/// `timeline_worker::step::File`), and the thumbnail's keys are named by that same
/// transaction. Every other queuer (uploads, reprocessing, a Motion Photo's clip) leaves it
/// out, and the step reads, checks and marks the file itself first. None of it can change
/// once the file exists: its owner, its type and its import sidecar are written with its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub user_id: Uuid,
    /// The file's image format, carried as its MIME type; `None` for other kinds (and for a
    /// type this build does not know, which then takes the step's own first read).
    #[serde(default, with = "image_mime", skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageFormat>,
    /// The file came with an import's sidecar facts, which the EXIF step reads itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sidecar: bool,
}

impl Known {
    pub fn new(user_id: Uuid, mime_type: &str, sidecar: bool) -> Self {
        Self {
            user_id,
            image: ImageFormat::from_mime(mime_type),
            sidecar,
        }
    }
}

/// An image format in a task payload, by its canonical MIME type.
mod image_mime {
    use serde::{Deserialize, Deserializer, Serializer};
    use timeline_media::ImageFormat;

    pub fn serialize<S: Serializer>(f: &Option<ImageFormat>, s: S) -> Result<S::Ok, S::Error> {
        match f {
            Some(f) => s.serialize_some(f.mime()),
            None => s.serialize_none(),
        }
    }

    /// An unknown type reads as `None` rather than failing the task.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ImageFormat>, D::Error> {
        let mime = Option::<String>::deserialize(d)?;
        Ok(mime.as_deref().and_then(ImageFormat::from_mime))
    }
}

/// Which lane work is queued in. apalis-postgres fetches by `priority DESC, run_at ASC`, so
/// the lanes are priority bands of one queue per step: every pool takes interactive tasks
/// first, and each worker also runs a small express pool per step that takes only interactive
/// tasks, so an upload starts at once even while every regular slot holds a long bulk task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A user waiting on the other end (`POST /v1/media`, a user's retry): ahead of all bulk work.
    Interactive,
    /// Imports, reprocessing, reconciliation.
    Bulk,
}

/// Suffix of an express pool's worker type: `get_jobs(worker, "hash:interactive", n)` fetches
/// only the `hash` tasks at [`INTERACTIVE_PRIORITY`] or above.
pub const EXPRESS_SUFFIX: &str = ":interactive";

/// The channel on which each interactive task announces itself (payload: its queue), to wake
/// the express pools without waking them for every bulk insert.
pub const INTERACTIVE_CHANNEL: &str = "timeline_interactive_tasks";

/// Priority of every interactive task.
pub const INTERACTIVE_PRIORITY: u32 = 1 << 30;
/// Seconds a bulk task waits before it goes ahead of interactive work (for up to half of a
/// regular pool's batch); `jobs.bulk_ageing_secs` in `system_configuration` overrides it, read
/// by the fetch itself (`db::migrate::lane_fetch`), so a change applies at once.
pub const DEFAULT_AGEING_SECS: u32 = 600;

/// Priority of the first file of a bulk job; file `n` gets `BULK_TOP - n`.
pub const BULK_TOP: u32 = 1 << 29;

/// The queue priority of the `position`-th file (from 0) of a job in `lane`.
///
/// Bulk files count down from [`BULK_TOP`] by their position in their job, so concurrent bulk
/// jobs take turns by how much of each is done ("least attained service"): a 50,000-file
/// import that is 10,000 files in has priorities below 10,000 positions down, and an import
/// started now by someone else runs its first 10,000 files ahead of it, then the two
/// alternate file by file. Neither starves; a small job is never stuck behind a big one.
/// `TIMELINE_PRIORITY_LANES=off` queues everything at 0 (strictly oldest first).
pub fn priority(lane: Lane, position: usize) -> u32 {
    if !lanes_enabled() {
        return 0;
    }
    match lane {
        Lane::Interactive => INTERACTIVE_PRIORITY,
        Lane::Bulk => {
            let pos = u32::try_from(position).unwrap_or(u32::MAX);
            BULK_TOP.saturating_sub(pos).max(1)
        }
    }
}

impl Lane {
    /// The lane a task of `priority` was queued in.
    pub fn of(priority: u32) -> Self {
        if priority >= INTERACTIVE_PRIORITY {
            Lane::Interactive
        } else {
            Lane::Bulk
        }
    }
}

/// The lane name of a priority (the `priority` label of the queue metrics).
pub fn lane_name(priority: u32) -> &'static str {
    match Lane::of(priority) {
        Lane::Interactive => "interactive",
        Lane::Bulk => "bulk",
    }
}

/// Whether priority lanes are on (`TIMELINE_PRIORITY_LANES`, default on; `off`/`false`/`0`
/// turn them off, for comparison runs). Read once per process.
pub fn lanes_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var("TIMELINE_PRIORITY_LANES").as_deref(),
            Ok("off" | "false" | "0")
        )
    })
}

/// Errors while enqueueing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not encode job payload: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("could not enqueue: {0}")]
    Queue(#[from] apalis_postgres::Error),
}

/// Pushes one `step` task per media file, on the caller's connection or transaction; returns
/// their queue ids (`apalis.jobs.id`, ULIDs as apalis makes them), in order, so that the same
/// transaction can name objects for them.
pub async fn enqueue(
    conn: &mut PgConnection,
    step: Step,
    tasks: &[MediaTask],
) -> Result<Vec<String>, Error> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut batch = Vec::with_capacity(tasks.len());
    let mut ids = Vec::with_capacity(tasks.len());
    for t in tasks {
        let t = MediaTask {
            enqueued_at_ms: Some(now),
            ..*t
        };
        let id = ulid::Ulid::generate().to_string();
        batch.push(
            TaskBuilder::new(serde_json::to_vec(&t)?)
                .task_id(TaskId::from_string(id.clone()))
                .max_attempts(max_attempts())
                .priority(t.priority as usize)
                .build(),
        );
        ids.push(id);
    }
    apalis_postgres::queries::push_tasks(conn, step.queue(), batch).await?;
    Ok(ids)
}

/// The queue of library-wide work: exports, account erasures and imports of the API. Served by every worker
/// (`--queues` lists it), a few at a time: each runs for minutes to hours on one user's
/// whole library and mostly waits on the store.
pub const LIBRARY_QUEUE: &str = "library";

/// A task of [`LIBRARY_QUEUE`]. Each names its row, which holds its state: a task run twice,
/// or after the reconciler resumed the same work, finds the work claimed or done: an export's
/// runs are fenced by its attempt, an import's claim waits for the other run to fall silent,
/// and an erasure's steps may each run twice (one task is queued per erasure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LibraryTask {
    Export { export_id: Uuid },
    Erasure { job_id: Uuid },
    Import { job_id: Uuid },
}

/// Attempts apalis gives a library task that fails (an import retried after an outage). Runs
/// that died with their worker are given back by the queue whatever this says: the work
/// counts those in its row and fails there with its reason (exports after 5 runs, imports
/// after 5 runs in a row without progress).
const LIBRARY_ATTEMPTS: usize = 10;

/// Queues `task` on the caller's transaction: it commits with the row it names.
pub async fn enqueue_library(conn: &mut PgConnection, task: LibraryTask) -> Result<(), Error> {
    let task = TaskBuilder::new(serde_json::to_vec(&task)?)
        .max_attempts(LIBRARY_ATTEMPTS)
        .build();
    apalis_postgres::queries::push_tasks(conn, LIBRARY_QUEUE, vec![task]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_exponentially_and_is_capped() {
        let d = |a| retry_delay_with(a, 1.0).as_secs_f64();
        assert_eq!(d(1), 2.0);
        assert_eq!(d(2), 4.0);
        assert_eq!(d(3), 8.0);
        assert_eq!(d(20), 300.0);
        assert_eq!(retry_delay_with(2, 0.5).as_secs_f64(), 2.0);
    }

    #[test]
    fn retry_delay_jitters_within_half_either_side() {
        for _ in 0..100 {
            let d = retry_delay(3).as_secs_f64();
            assert!((4.0..12.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn bulk_priorities_count_down_below_every_interactive_one() {
        assert_eq!(priority(Lane::Interactive, 7), INTERACTIVE_PRIORITY);
        assert_eq!(priority(Lane::Bulk, 0), BULK_TOP);
        assert_eq!(priority(Lane::Bulk, 10), BULK_TOP - 10);
        assert_eq!(priority(Lane::Bulk, usize::MAX), 1);
        assert!(priority(Lane::Bulk, 0) < priority(Lane::Interactive, 0));
        assert_eq!(lane_name(priority(Lane::Interactive, 0)), "interactive");
        assert_eq!(lane_name(priority(Lane::Bulk, 3)), "bulk");
        assert_eq!(Lane::of(priority(Lane::Interactive, 0)), Lane::Interactive);
        assert_eq!(Lane::of(priority(Lane::Bulk, 0)), Lane::Bulk);
        // apalis keeps priorities as PostgreSQL integers.
        assert!(i32::try_from(INTERACTIVE_PRIORITY).is_ok());
    }

    #[test]
    fn old_payloads_without_a_priority_still_decode() {
        let t: MediaTask = serde_json::from_str(
            r#"{"media_file_id":"7d1c5a52-6f0e-4c3a-9d5e-2f61d6a0c001","job_id":"7d1c5a52-6f0e-4c3a-9d5e-2f61d6a0c002"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.priority, 0);
        assert_eq!(t.enqueued_at_ms, None);
    }

    #[test]
    fn steps_round_trip_through_queue_names() {
        for s in Step::ALL {
            assert_eq!(Step::from_queue(s.queue()), Some(s));
            assert_eq!(Step::from_queue(&s.express_pool()), None);
        }
        assert_eq!(Step::Thumbnail.express_pool(), "thumbnail:interactive");
        assert_eq!(Step::from_queue("bogus"), None);
    }

    #[test]
    fn every_kind_starts_with_hash() {
        for kind in [Kind::Image, Kind::Video, Kind::Audio] {
            assert_eq!(Step::for_kind(kind)[0], Step::Hash);
            assert!(!Step::after_hash(kind).contains(&Step::Hash));
        }
        assert_eq!(Step::after_hash(Kind::Video), &[Step::Video]);
    }
}
