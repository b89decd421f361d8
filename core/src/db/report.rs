//! Read-outs for operators: the per-photo table of an ingest and whether workers are alive.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// One photo of a job, as `timeline ingest --list` and the demo print it.
#[derive(Debug, Clone)]
pub struct JobMediaRow {
    pub filename: String,
    pub processing_status: String,
    pub error_message: Option<String>,
    pub taken_at: Option<DateTime<Utc>>,
    pub taken_at_offset_minutes: Option<i16>,
    pub taken_at_source: Option<String>,
    pub kind: String,
    /// Seconds, for videos and audio.
    pub duration: Option<f64>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnails: Option<serde_json::Value>,
}

/// The media files of a job in upload order.
pub async fn job_media(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> Result<Vec<JobMediaRow>, sqlx::Error> {
    sqlx::query_as!(
        JobMediaRow,
        r#"SELECT m.filename, m.processing_status, m.error_message, m.taken_at, m.taken_at_offset_minutes,
                  m.taken_at_source, m.kind AS "kind!", m.duration,
                  l.city AS "city?", l.country AS "country?", m.width, m.height, m.metadata -> 'thumbnails' AS thumbnails
           FROM data_processing_job_media jm
           JOIN media_files m ON m.id = jm.media_file_id
           LEFT JOIN locations l ON l.id = m.location_id
           WHERE jm.job_id = $1 ORDER BY jm.position"#,
        job_id
    )
    .fetch_all(db)
    .await
}

/// Workers that sent a heartbeat in the last 30 seconds.
pub async fn live_workers(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM apalis.workers WHERE last_seen > now() - interval '30 seconds'"#
    )
    .fetch_one(db)
    .await?;
    Ok(n)
}
