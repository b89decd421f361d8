//! What the processing steps write: per-step records, hash/duplicate, EXIF facts, thumbnails,
//! and the media file's end state. Every write is an upsert or a guarded update keyed by the
//! media file, so a step that runs twice changes nothing the second time, and no status moves
//! backwards (`pending → processing → completed | failed | duplicate`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::jobs::{PIPELINE_VERSION, Step};
use crate::models::{ProcessingStatus, TakenAtSource};

/// What a step needs to know about its media file.
#[derive(Debug, Clone)]
pub struct MediaState {
    pub id: Uuid,
    pub user_id: Uuid,
    pub file_path: String,
    pub mime_type: String,
    pub processing_status: ProcessingStatus,
    pub duplicate_of: Option<Uuid>,
}

/// Loads a media file for a step (`None` if it was deleted meanwhile).
pub async fn load(conn: &mut PgConnection, id: Uuid) -> Result<Option<MediaState>, sqlx::Error> {
    sqlx::query_as!(
        MediaState,
        r#"SELECT id, user_id, file_path, mime_type,
                  processing_status AS "processing_status: ProcessingStatus", duplicate_of
           FROM media_files WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Whether `step` already succeeded for this file with the current pipeline version.
pub async fn step_done(conn: &mut PgConnection, id: Uuid, step: Step) -> Result<bool, sqlx::Error> {
    let done = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM media_processing_steps
                          WHERE media_file_id = $1 AND step = $2 AND status = 'succeeded'
                            AND pipeline_version >= $3) AS "done!""#,
        id,
        step.queue(),
        PIPELINE_VERSION
    )
    .fetch_one(conn)
    .await?;
    Ok(done)
}

/// `pending → processing` (and nothing else).
pub async fn mark_processing(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE media_files SET processing_status = 'processing' WHERE id = $1 AND processing_status = 'pending'",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a step's outcome (`Err` carries the readable reason) and its attempt number.
pub async fn record_step(
    conn: &mut PgConnection,
    media: &MediaState,
    step: Step,
    outcome: Result<(), &str>,
    attempt: i32,
) -> Result<(), sqlx::Error> {
    let (status, error) = match outcome {
        Ok(()) => ("succeeded", None),
        Err(e) => ("failed", Some(e)),
    };
    sqlx::query!(
        "INSERT INTO media_processing_steps (media_file_id, step, user_id, status, pipeline_version, attempts, error_message)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (media_file_id, step) DO UPDATE SET
             status = EXCLUDED.status, pipeline_version = EXCLUDED.pipeline_version,
             attempts = EXCLUDED.attempts, error_message = EXCLUDED.error_message, completed_at = now()",
        media.id,
        step.queue(),
        media.user_id,
        status,
        PIPELINE_VERSION,
        attempt,
        error
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE media_files SET attempts = greatest(attempts, $2) WHERE id = $1",
        media.id,
        attempt
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the file's hash. Fails with a unique violation on `idx_media_files_user_hash` when the
/// user already has an original with these bytes.
pub async fn set_hash(conn: &mut PgConnection, id: Uuid, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE media_files SET file_hash = $2 WHERE id = $1",
        id,
        hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a file as a duplicate of `original` (from any state but completed/failed).
pub async fn mark_duplicate(
    conn: &mut PgConnection,
    id: Uuid,
    original: Uuid,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE media_files SET processing_status = 'duplicate', duplicate_of = $2, file_hash = $3,
                error_message = NULL
         WHERE id = $1 AND processing_status IN ('pending', 'processing')",
        id,
        original,
        hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A place found in a photo's GPS data.
#[derive(Debug, Clone, Default)]
pub struct NewLocation {
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy: Option<f64>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub state_province: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
}

/// Finds or creates the user's location at exactly this position (one row per position).
pub async fn upsert_location(
    conn: &mut PgConnection,
    user_id: Uuid,
    l: &NewLocation,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO locations (user_id, latitude, longitude, accuracy, country, country_code, state_province, city, timezone)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (user_id, latitude, longitude) DO UPDATE SET
             accuracy = coalesce(locations.accuracy, EXCLUDED.accuracy),
             country = coalesce(locations.country, EXCLUDED.country),
             country_code = coalesce(locations.country_code, EXCLUDED.country_code),
             state_province = coalesce(locations.state_province, EXCLUDED.state_province),
             city = coalesce(locations.city, EXCLUDED.city),
             timezone = coalesce(locations.timezone, EXCLUDED.timezone)
         RETURNING id",
        user_id,
        l.latitude,
        l.longitude,
        l.accuracy,
        l.country,
        l.country_code,
        l.state_province,
        l.city,
        l.timezone
    )
    .fetch_one(conn)
    .await
}

/// What the EXIF step learned.
#[derive(Debug, Clone, Default)]
pub struct ExifUpdate {
    pub taken_at: Option<DateTime<Utc>>,
    pub taken_at_offset_minutes: Option<i16>,
    pub taken_at_source: Option<TakenAtSource>,
    pub orientation: Option<i16>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub location_id: Option<Uuid>,
    pub metadata: serde_json::Value,
}

/// Stores the EXIF facts (the whole set, so a rerun converges to the same row).
pub async fn apply_exif(
    conn: &mut PgConnection,
    id: Uuid,
    u: &ExifUpdate,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE media_files SET taken_at = $2, taken_at_offset_minutes = $3, taken_at_source = $4,
                orientation = $5, camera_make = $6, camera_model = $7, location_id = $8,
                -- Keep what the thumbnail step recorded; it may have finished first.
                metadata = CASE WHEN metadata ? 'thumbnails'
                                THEN $9 || jsonb_build_object('thumbnails', metadata -> 'thumbnails') ELSE $9 END
         WHERE id = $1",
        id,
        u.taken_at,
        u.taken_at_offset_minutes,
        u.taken_at_source.map(|s| s.as_str()),
        u.orientation,
        u.camera_make,
        u.camera_model,
        u.location_id,
        u.metadata
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores the displayed size, the thumbnails' keys and their sizes (`metadata.thumbnails`).
pub async fn apply_thumbnails(
    conn: &mut PgConnection,
    id: Uuid,
    (width, height): (i32, i32),
    (thumb_key, preview_key): (&str, &str),
    sizes: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE media_files SET width = $2, height = $3, thumbnail_path = $4, preview_path = $5,
                metadata = metadata || jsonb_build_object('thumbnails', $6::jsonb)
         WHERE id = $1",
        id,
        width,
        height,
        thumb_key,
        preview_key,
        sizes
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Decides the file's end state from its step records, under a row lock so two steps finishing
/// at once agree: a failed hash or thumbnail step fails the file (EXIF failures are not fatal);
/// all three recorded → completed. Returns the new end state, if the file just reached one.
pub async fn finalize(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ProcessingStatus>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT m.processing_status,
                  (SELECT error_message FROM media_processing_steps s
                   WHERE s.media_file_id = m.id AND s.step IN ('hash', 'thumbnail') AND s.status = 'failed'
                   ORDER BY s.step LIMIT 1) AS fatal,
                  (SELECT count(*) FROM media_processing_steps s
                   WHERE s.media_file_id = m.id AND (s.status = 'succeeded' OR s.step = 'exif')) AS "recorded!"
           FROM media_files m WHERE m.id = $1 FOR UPDATE OF m"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if matches!(
        row.processing_status.as_str(),
        "completed" | "failed" | "duplicate"
    ) {
        return Ok(None);
    }
    let end = match (row.fatal, row.recorded) {
        (Some(reason), _) => Some((ProcessingStatus::Failed, Some(reason))),
        (None, 3) => Some((ProcessingStatus::Completed, None)),
        _ => None,
    };
    let Some((status, error)) = end else {
        return Ok(None);
    };
    sqlx::query!(
        "UPDATE media_files SET processing_status = $2, error_message = $3 WHERE id = $1",
        id,
        status.as_str(),
        error
    )
    .execute(conn)
    .await?;
    Ok(Some(status))
}
