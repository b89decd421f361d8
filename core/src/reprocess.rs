//! `timeline reprocess --missing [--step S] | --all` (and the dashboard's button): puts ended
//! files back through the steps that have no record at the current pipeline version (or all of
//! them), as one tracked `media_reprocess` job per user, in the bulk lane (fresh uploads go
//! first). Safe to run twice: files already in a running job are skipped, and once the steps
//! have run at this version a `--missing` pass finds nothing.
//!
//! A completed file stays `completed` while it is refreshed (its owner keeps seeing it; the
//! new thumbnails replace the old when ready); a failed one is put back to `pending`, as an
//! owner's retry would.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db;
use crate::jobs::{self, Lane, MediaTask, PIPELINE_VERSION, Step};
use crate::models::JobType;

/// What to redo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Steps without a record at the current pipeline version (only this step, if given).
    Missing(Option<Step>),
    /// Every step of every ended file.
    All,
}

/// What a pass queued.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The jobs created (one per user with work).
    pub jobs: Vec<Uuid>,
    pub files: u64,
    /// Steps queued, by step.
    pub steps: HashMap<String, u64>,
}

/// Errors of a pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] jobs::Error),
}

/// Files examined and queued per transaction.
const BATCH: i64 = 500;

/// Queues what `scope` asks for; returns what it queued.
pub async fn run(pool: &PgPool, scope: Scope) -> Result<Report, Error> {
    let (step, all) = match scope {
        Scope::Missing(s) => (s.map(Step::queue), false),
        Scope::All => (None, true),
    };
    let mut report = Report::default();
    // Per user: the open job and the next position in it.
    let mut open: HashMap<Uuid, (Uuid, usize)> = HashMap::new();
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        db::reprocess::lock(&mut tx).await?;
        let batch =
            db::reprocess::candidates(&mut tx, after, BATCH, (step, all), PIPELINE_VERSION).await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        for c in &batch {
            let (job_id, position) = match open.get(&c.user_id) {
                Some(&j) => j,
                None => {
                    let input = serde_json::json!({
                        "reprocess": if all { "all" } else { "missing" }, "step": step,
                        "pipeline_version": PIPELINE_VERSION,
                    });
                    let id =
                        db::jobs::create_open(&mut tx, c.user_id, JobType::MediaReprocess, input)
                            .await?;
                    report.jobs.push(id);
                    (id, 0)
                }
            };
            let first = i32::try_from(position).unwrap_or(i32::MAX);
            if c.processing_status == "failed"
                && db::uploads::reset_failed(&mut tx, c.user_id, c.id)
                    .await?
                    .is_none()
            {
                continue;
            }
            db::jobs::add_media(&mut tx, job_id, c.user_id, &[c.id], first).await?;
            let task = MediaTask {
                refresh: c.processing_status == "completed",
                ..MediaTask::new(c.id, job_id, jobs::priority(Lane::Bulk, position))
            };
            // A redone hash reruns the steps after it (the hash step queues them); `--all`
            // keeps the hash (the stored bytes cannot have changed) and redoes the rest.
            let steps: Vec<Step> = if all {
                c.steps
                    .iter()
                    .filter_map(|s| Step::from_queue(s))
                    .filter(|s| *s != Step::Hash)
                    .collect()
            } else if c.steps.iter().any(|s| s == "hash") {
                vec![Step::Hash]
            } else {
                c.steps.iter().filter_map(|s| Step::from_queue(s)).collect()
            };
            for s in steps {
                jobs::enqueue(&mut tx, s, &[task]).await?;
                *report.steps.entry(s.queue().to_owned()).or_default() += 1;
            }
            report.files += 1;
            open.insert(c.user_id, (job_id, position + 1));
        }
        tx.commit().await?;
    }
    let mut tx = pool.begin().await?;
    for (job_id, _) in open.values() {
        db::jobs::seal(&mut tx, *job_id).await?;
    }
    tx.commit().await?;
    tracing::info!(
        files = report.files,
        jobs = report.jobs.len(),
        ?scope,
        "reprocessing queued"
    );
    Ok(report)
}
