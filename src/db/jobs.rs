//! `data_processing_jobs`: creating a tracked job, reading it, and moving its progress.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::models::system::DataProcessingJob;
use crate::models::{JobStatus, JobType};

/// Creates a job over `media_ids` (in order) and links them to it.
pub async fn create(
    conn: &mut PgConnection,
    user_id: Uuid,
    job_type: JobType,
    input_data: serde_json::Value,
    media_ids: &[Uuid],
) -> Result<DataProcessingJob, sqlx::Error> {
    let job = sqlx::query_as!(
        DataProcessingJob,
        r#"INSERT INTO data_processing_jobs (user_id, job_type, input_data)
           VALUES ($1, $2, $3)
           RETURNING id, user_id, job_type AS "job_type: JobType", status AS "status: JobStatus",
                     progress, input_data, output_data, error_message, started_at, completed_at,
                     created_at, updated_at"#,
        user_id,
        job_type.as_str(),
        input_data
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO data_processing_job_media (job_id, media_file_id, user_id, position)
         SELECT $1, m, $2, (o - 1)::int FROM unnest($3::uuid[]) WITH ORDINALITY AS t(m, o)",
        job.id,
        user_id,
        media_ids
    )
    .execute(&mut *conn)
    .await?;
    Ok(job)
}

/// A user's job, if it is theirs.
pub async fn get(
    conn: &mut PgConnection,
    user_id: Uuid,
    job_id: Uuid,
) -> Result<Option<DataProcessingJob>, sqlx::Error> {
    sqlx::query_as!(
        DataProcessingJob,
        r#"SELECT id, user_id, job_type AS "job_type: JobType", status AS "status: JobStatus",
                  progress, input_data, output_data, error_message, started_at, completed_at,
                  created_at, updated_at
           FROM data_processing_jobs WHERE id = $1 AND user_id = $2"#,
        job_id,
        user_id
    )
    .fetch_optional(conn)
    .await
}

/// Marks a job running when its first step starts (pending → running only).
pub async fn mark_running(conn: &mut PgConnection, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE data_processing_jobs SET status = 'running', started_at = coalesce(started_at, now())
         WHERE id = $1 AND status = 'pending'",
        job_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Recomputes the progress of every job containing `media_file_id`, after that file reached an
/// end state. The job row is locked first, in its own statement, so the counting statement
/// runs on a snapshot taken after any concurrent finisher committed: the last file to finish
/// always sees all the others, and the job always completes. Progress never goes down.
pub async fn refresh_progress(
    conn: &mut PgConnection,
    media_file_id: Uuid,
) -> Result<(), sqlx::Error> {
    let job_ids = sqlx::query_scalar!(
        "SELECT j.id FROM data_processing_jobs j
         JOIN data_processing_job_media jm ON jm.job_id = j.id
         WHERE jm.media_file_id = $1 AND j.status IN ('pending', 'running')
         ORDER BY j.id FOR UPDATE OF j",
        media_file_id
    )
    .fetch_all(&mut *conn)
    .await?;
    for job_id in job_ids {
        update_counts(conn, job_id).await?;
    }
    Ok(())
}

async fn update_counts(conn: &mut PgConnection, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"WITH c AS (
               SELECT count(*) AS total,
                      count(*) FILTER (WHERE m.processing_status = 'completed') AS completed,
                      count(*) FILTER (WHERE m.processing_status = 'failed') AS failed,
                      count(*) FILTER (WHERE m.processing_status = 'duplicate') AS duplicate,
                      coalesce(jsonb_agg(jsonb_build_object('media_id', m.id, 'filename', m.filename,
                                                            'error', m.error_message) ORDER BY jm.position)
                               FILTER (WHERE m.processing_status = 'failed'), '[]') AS errors
               FROM data_processing_job_media jm JOIN media_files m ON m.id = jm.media_file_id
               WHERE jm.job_id = $1
           )
           UPDATE data_processing_jobs j SET
               progress = greatest(j.progress, CASE WHEN c.total = 0 THEN 100
                          ELSE floor(100.0 * (c.completed + c.failed + c.duplicate) / c.total) END)::smallint,
               status = CASE WHEN c.completed + c.failed + c.duplicate = c.total THEN 'completed' ELSE 'running' END,
               started_at = coalesce(j.started_at, now()),
               completed_at = CASE WHEN c.completed + c.failed + c.duplicate = c.total THEN now() END,
               output_data = jsonb_build_object('completed', c.completed, 'failed', c.failed,
                                                'duplicate', c.duplicate, 'total', c.total, 'errors', c.errors)
           FROM c WHERE j.id = $1"#,
        job_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
