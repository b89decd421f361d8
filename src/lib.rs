//! timeline: the media-ingestion platform behind a personal-timeline app: its HTTP API (with
//! tus resumable uploads and the operators' dashboard) and the `timeline` command line.
//!
//! What the API shares with the workers (schema and SQL, models, queue, storage, configuration,
//! reconciler) lives in `timeline-core`; it is re-exported here under the same paths, so that
//! `timeline::db` and `crate::db` name the one module. The worker pools live in
//! `timeline-workers`, which depends on the core and not on this crate.

pub mod cli;
pub mod http;
pub mod resumable;

pub use timeline_core::{
    auth, config, db, erasure, export, format, import, inflight, ingest, jobs, metrics, models,
    reconcile, replica, reprocess, shutdown, storage, telemetry, test_hooks, test_pause,
};
