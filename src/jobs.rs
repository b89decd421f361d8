//! Queue job payloads and the functions that enqueue them, shared by the API and the workers
//! (so the API never compiles image code). Jobs are pushed with apalis-postgres's `push_tasks`
//! on the caller's transaction: a media row and its job commit or roll back together.

use apalis::prelude::TaskBuilder;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// Version of the processing pipeline, recorded with every step. Bump it when a step's output
/// changes, and "reprocess missing" redoes the steps recorded with an older version.
pub const PIPELINE_VERSION: i32 = 1;

/// Attempts per step before the media file is marked failed.
pub const MAX_ATTEMPTS: usize = 5;

/// The processing steps, one queue (and worker pool) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Hash,
    Exif,
    Thumbnail,
}

impl Step {
    /// Every step, in pipeline order.
    pub const ALL: [Step; 3] = [Step::Hash, Step::Exif, Step::Thumbnail];

    /// The queue (and `media_processing_steps.step`) name.
    pub fn queue(self) -> &'static str {
        match self {
            Step::Hash => "hash",
            Step::Exif => "exif",
            Step::Thumbnail => "thumbnail",
        }
    }

    /// Parses a queue name (for `timeline-worker --queues`).
    pub fn from_queue(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.queue() == name)
    }
}

/// The payload of every step: which media file, on behalf of which tracked job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaTask {
    pub media_file_id: Uuid,
    pub job_id: Uuid,
}

/// Errors while enqueueing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not encode job payload: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("could not enqueue: {0}")]
    Queue(#[from] apalis_postgres::Error),
}

/// Pushes one `step` task per media file, on the caller's connection or transaction.
pub async fn enqueue(conn: &mut PgConnection, step: Step, tasks: &[MediaTask]) -> Result<(), Error> {
    if tasks.is_empty() {
        return Ok(());
    }
    let mut batch = Vec::with_capacity(tasks.len());
    for t in tasks {
        batch.push(TaskBuilder::new(serde_json::to_vec(t)?).max_attempts(MAX_ATTEMPTS).build());
    }
    apalis_postgres::queries::push_tasks(conn, step.queue(), batch).await?;
    Ok(())
}
