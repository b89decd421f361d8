//! Submitting stored uploads for processing: the media rows, the tracked job, its media links
//! and the first queue tasks, all on the caller's transaction. Shared by `POST /v1/media` and
//! `timeline ingest`, so both take exactly the same path through the queues.

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::uploads::NewMedia;
use crate::jobs::{self, MediaTask, Step};
use crate::models::JobType;
use crate::models::system::DataProcessingJob;

/// Errors while submitting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Queue(#[from] jobs::Error),
}

/// Records `media` (already stored) as pending, creates their `media_ingest` job and enqueues
/// their hash steps. Commit the transaction and all of it exists; roll back and none of it does.
pub async fn submit(
    conn: &mut PgConnection,
    user_id: Uuid,
    media: &[NewMedia],
) -> Result<DataProcessingJob, Error> {
    crate::db::uploads::insert_media(conn, media).await?;
    let ids: Vec<Uuid> = media.iter().map(|m| m.id).collect();
    let listed: Vec<_> = media
        .iter()
        .map(|m| json!({ "id": m.id, "filename": m.filename }))
        .collect();
    let input = json!({ "media": listed });
    let job = crate::db::jobs::create(conn, user_id, JobType::MediaIngest, input, &ids).await?;
    let tasks: Vec<MediaTask> = ids
        .iter()
        .map(|&media_file_id| MediaTask {
            media_file_id,
            job_id: job.id,
        })
        .collect();
    jobs::enqueue(conn, Step::Hash, &tasks).await?;
    Ok(job)
}
