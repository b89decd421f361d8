//! What every step needs: the database pool, the object store, the decoder limits and the
//! limits of the ffmpeg child processes.

use sqlx::PgPool;
use timeline_core::db::tx::TxPool;
use timeline_core::storage::Storage;
use timeline_media::thumbnail::Limits;

/// Shared by all pools of a worker process.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where every step's transactions and the queue's fetches and acknowledgements begin:
    /// behind a transaction pooler, connections that go back without sqlx's release ping
    /// (`timeline_core::db::tx`); `db.pool()` for what runs outside an explicit transaction.
    pub db: TxPool,
    /// What needs a session: the wake-up listener and the reconciler's leader lock (see
    /// `timeline_core::db::session_pool`).
    pub session: PgPool,
    pub storage: Storage,
    pub limits: Limits,
    /// The image decoder child processes (see `crate::decoder`).
    pub decoders: std::sync::Arc<crate::decoder::Decoders>,
    /// Deadline of one CPU stage; past it the file fails and the pool moves on.
    pub step_timeout: std::time::Duration,
    /// Deadline, memory and threads of each ffprobe/ffmpeg run.
    pub av_limits: timeline_media::ffmpeg::Limits,
    /// Largest image original decoded in memory (decoders need the whole file); larger images
    /// fail with a reason instead of taking the worker's memory.
    pub max_image_bytes: u64,
    /// Farther than this (km) from every known place, a fix gets no place name.
    pub geocode_max_km: f64,
    /// First retry delay of a transiently failed step (doubling per attempt).
    pub retry_base: std::time::Duration,
    /// Where originals from a remote store are spooled for ffmpeg (removed after each step).
    pub spool_dir: std::path::PathBuf,
    /// Tasks whose steps acknowledged them in their own final transaction (see `crate::ack`).
    pub acked: crate::ack::Acked,
}
