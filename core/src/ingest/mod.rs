//! Submitting stored uploads for processing: the media rows, the tracked job, its media links
//! and the first queue tasks, all on the caller's transaction. Shared by `POST /v1/media` and
//! `timeline ingest`, so both take exactly the same path through the queues.

pub mod store;

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::uploads::NewMedia;
use crate::jobs::{self, Lane, MediaTask, Step};
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
    lane: Lane,
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
        .enumerate()
        .map(|(i, &id)| MediaTask::new(id, job.id, jobs::priority(lane, i)))
        .collect();
    jobs::enqueue(conn, Step::Hash, &tasks).await?;
    Ok(job)
}

/// Records `media` (already stored) as pending files of the open bulk job `job_id` (see
/// `db::jobs::create_open`) at positions `first_position..`, and enqueues their hash steps in
/// the bulk lane by those positions.
pub async fn submit_into(
    conn: &mut PgConnection,
    job_id: Uuid,
    user_id: Uuid,
    media: &[NewMedia],
    first_position: usize,
) -> Result<(), Error> {
    crate::db::uploads::insert_media(conn, media).await?;
    let ids: Vec<Uuid> = media.iter().map(|m| m.id).collect();
    let first = i32::try_from(first_position).unwrap_or(i32::MAX);
    crate::db::jobs::add_media(conn, job_id, user_id, &ids, first).await?;
    let tasks: Vec<MediaTask> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| MediaTask::new(id, job_id, jobs::priority(Lane::Bulk, first_position + i)))
        .collect();
    jobs::enqueue(conn, Step::Hash, &tasks).await?;
    Ok(())
}

/// Puts a failed file back through the steps that did not succeed (all of them if its hash is
/// missing), as a new `media_reprocess` job in `lane`. `None` if the file is not failed.
pub async fn retry(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
    lane: Lane,
) -> Result<Option<DataProcessingJob>, Error> {
    let Some(filename) = crate::db::uploads::reset_failed(conn, user_id, id).await? else {
        return Ok(None);
    };
    let input = json!({ "media": [{"id": id, "filename": filename}], "retry_of": id });
    let job = crate::db::jobs::create(conn, user_id, JobType::MediaReprocess, input, &[id]).await?;
    let missing = crate::db::uploads::missing_steps(conn, id).await?;
    let task = [MediaTask::new(id, job.id, jobs::priority(lane, 0))];
    // A missing hash reruns everything after it; otherwise only the steps that did not succeed.
    if missing.iter().any(|s| s == "hash") {
        jobs::enqueue(conn, Step::Hash, &task).await?;
    } else {
        for step in missing.iter().filter_map(|s| Step::from_queue(s)) {
            jobs::enqueue(conn, step, &task).await?;
        }
    }
    Ok(Some(job))
}
