//! End-to-end tests of the ingestion pipeline: real PostgreSQL (a fresh database per test),
//! the real HTTP API, real `timeline-worker` processes and a real object store on disk.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise; helpers are shared across modules"
)]

mod ack;
mod big_video;
mod common;
mod corpus;
mod dashboard;
mod db_errors;
mod db_pool;
mod db_restart;
mod erasure;
mod exports;
mod fairness;
mod fetch_demand;
mod hostile;
mod http_hygiene;
mod imports;
mod imports_api;
mod imports_services;
mod inflight;
mod ingest;
mod ingest_cli;
mod isolation;
mod operators;
mod pass_cost;
mod pooler;
mod proxy;
mod reconcile;
mod recovery;
mod replica;
mod s3_faults;
mod settings;
mod slow_clients;
mod transactional;
mod tus;
mod vanished;
mod video;
