//! Integration tests against a real PostgreSQL: each `#[sqlx::test]` gets a fresh database
//! (from `DATABASE_URL`'s server), migrated by the same code as `timeline migrate`.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise; helpers are shared across modules"
)]

mod audit;
mod cli;
mod common;
mod constraints;
mod migrations;
mod queries;
mod queue;
mod rls;
mod schema;
mod seed;
