//! timeline-core: what the API and the workers share, and neither owns: the schema and all SQL
//! (`db`, with the migrations at the workspace root), the typed models, the queue and its jobs,
//! object storage, configuration, API tokens, uploads in flight and the reconciler that finishes
//! or cleans what a crash left half-done. It links no HTTP server: the API (`timeline`) and the
//! workers (`timeline-workers`) each depend on it, and neither on the other.

/// Runs one statement in a transaction of its own: behind a transaction pooler a statement
/// outside one may reach a server connection that never prepared it.
macro_rules! in_tx {
    ($pool:expr, |$c:ident| $body:expr) => {{
        let mut tx = $pool.begin().await?;
        let $c = &mut *tx;
        let out = $body.await?;
        tx.commit().await?;
        out
    }};
}

pub mod auth;
pub mod config;
pub mod db;
pub mod erasure;
pub mod export;
pub mod import;
pub mod inflight;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod reconcile;
pub mod replica;
pub mod reprocess;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod test_hooks;

/// What a file is (magic bytes → format → MIME → kind): the media crate's one table.
pub use timeline_media::format;
