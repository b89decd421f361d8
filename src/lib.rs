//! timeline: the media-ingestion platform behind a personal-timeline app.
//!
//! This library owns the schema (migrations), the typed models, all SQL (`db`), configuration,
//! API tokens and the `timeline` command line. The worker pools live in the `timeline-workers`
//! crate and reuse `db` and `models` from here.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod inflight;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod reconcile;
pub mod reprocess;
pub mod resumable;
pub mod storage;
pub mod telemetry;
pub mod test_hooks;

/// What a file is (magic bytes → format → MIME → kind): the media crate's one table.
pub use timeline_media::format;
