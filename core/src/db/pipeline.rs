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
    pub filename: String,
    pub file_path: String,
    pub mime_type: String,
    pub processing_status: ProcessingStatus,
    pub duplicate_of: Option<Uuid>,
    /// The SHA-256 the upload computed as the bytes arrived, if it did.
    pub upload_sha256: Option<String>,
    /// The file came with an import's sidecar facts ([`import_facts`]).
    pub sidecar: bool,
}

/// Loads a media file for a step (`None` if it was deleted meanwhile).
pub async fn load(conn: &mut PgConnection, id: Uuid) -> Result<Option<MediaState>, sqlx::Error> {
    sqlx::query_as!(
        MediaState,
        r#"SELECT id, user_id, filename, file_path, mime_type,
                  processing_status AS "processing_status: ProcessingStatus", duplicate_of,
                  upload_sha256, import_facts IS NOT NULL AS "sidecar!"
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

/// Notes on a completed file why its reprocessing failed (`Some`), or clears that note once
/// a reprocessing succeeds (`None`). The file keeps its status and its renditions; the note
/// is what `GET /v1/media/{id}` and the reprocessing job's `errors` show.
pub async fn note_reprocessing(
    conn: &mut PgConnection,
    media_file_id: Uuid,
    failure: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE media_files SET error_message = $2
         WHERE id = $1 AND processing_status = 'completed'
           AND error_message IS DISTINCT FROM $2",
        media_file_id,
        failure
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
    // The file's row first: two steps of one file ending at once then queue on it, instead of
    // each holding the key-share lock its step row's foreign key takes while the other waits
    // to update the file (a deadlock, and a step's last attempt lost with it).
    sqlx::query!(
        "UPDATE media_files SET attempts = greatest(attempts, $2) WHERE id = $1",
        media.id,
        attempt
    )
    .execute(&mut *conn)
    .await?;
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
    /// Apple's ContentIdentifier of a Live Photo still.
    pub content_identifier: Option<String>,
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
                content_identifier = $10,
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
        u.metadata,
        u.content_identifier
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What the video step learned about a video or audio file.
#[derive(Debug, Clone, Default)]
pub struct VideoUpdate {
    /// Corrected MIME type (an `.mp4` holding only audio becomes `audio/mp4`).
    pub mime_type: Option<String>,
    pub duration_seconds: Option<f64>,
    /// Display size (after the rotation matrix); `None` for audio.
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub taken_at: Option<DateTime<Utc>>,
    pub taken_at_offset_minutes: Option<i16>,
    pub taken_at_source: Option<TakenAtSource>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub location_id: Option<Uuid>,
    pub content_identifier: Option<String>,
    pub metadata: serde_json::Value,
}

/// Stores a video's facts, its poster renditions (when it has any) and their sizes, in one
/// statement (the whole set, so a rerun converges to the same row).
pub async fn apply_video(
    conn: &mut PgConnection,
    id: Uuid,
    u: &VideoUpdate,
    thumbnails: Option<((&str, &str), serde_json::Value)>,
) -> Result<(), sqlx::Error> {
    let (keys, sizes) = thumbnails.unzip();
    let (thumb_key, preview_key) = keys.unzip();
    sqlx::query!(
        "UPDATE media_files SET mime_type = coalesce($2, mime_type), duration = $3, width = $4, height = $5,
                taken_at = $6, taken_at_offset_minutes = $7, taken_at_source = $8,
                camera_make = $9, camera_model = $10, location_id = $11, content_identifier = $12,
                thumbnail_path = $13, preview_path = $14,
                metadata = CASE WHEN $15::jsonb IS NULL THEN $16
                                ELSE $16 || jsonb_build_object('thumbnails', $15::jsonb) END
         WHERE id = $1",
        id,
        u.mime_type,
        u.duration_seconds,
        u.width,
        u.height,
        u.taken_at,
        u.taken_at_offset_minutes,
        u.taken_at_source.map(|s| s.as_str()),
        u.camera_make,
        u.camera_model,
        u.location_id,
        u.content_identifier,
        thumb_key,
        preview_key,
        sizes,
        u.metadata
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Pairs the halves of a Live Photo that share `content_identifier`, whichever arrived first:
/// the earliest still without a clip gets the earliest unpaired clip. Serialised per
/// (user, identifier) by a transaction-scoped advisory lock, so two halves finishing at once
/// cannot both miss each other. Idempotent. Returns the (still, clip) pair linked now, if any.
pub async fn link_live_photo(
    conn: &mut PgConnection,
    user_id: Uuid,
    content_identifier: &str,
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7))",
        user_id.to_string(),
        content_identifier
    )
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query!(
        r#"WITH still AS (
               SELECT s.id FROM media_files s
               WHERE s.user_id = $1 AND s.content_identifier = $2 AND s.kind = 'image'
                 AND s.duplicate_of IS NULL
                 AND NOT EXISTS (SELECT 1 FROM media_files c WHERE c.motion_of = s.id)
               ORDER BY s.created_at, s.id LIMIT 1
           ), clip AS (
               SELECT c.id FROM media_files c
               WHERE c.user_id = $1 AND c.content_identifier = $2 AND c.kind = 'video'
                 AND c.duplicate_of IS NULL AND c.motion_of IS NULL
               ORDER BY c.created_at, c.id LIMIT 1
           )
           UPDATE media_files m SET motion_of = still.id, motion_source = 'live_photo'
           FROM still, clip WHERE m.id = clip.id
           RETURNING still.id AS "still!", m.id AS "clip!""#,
        user_id,
        content_identifier
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.still, r.clip)))
}

/// A clip found inside a Motion Photo, already written to the store.
#[derive(Debug, Clone)]
pub struct EmbeddedClip {
    pub id: Uuid,
    pub still_id: Uuid,
    pub user_id: Uuid,
    pub filename: String,
    pub file_path: String,
    pub file_size: i64,
    pub mime_type: &'static str,
}

/// Records a Motion Photo's embedded clip as its own media file, linked to its still and to
/// the still's jobs (so their progress waits for it). Idempotent: the clip's id is derived from
/// the still's, and a still has at most one clip. Returns whether the row is new.
pub async fn insert_embedded_clip(
    conn: &mut PgConnection,
    c: &EmbeddedClip,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        "INSERT INTO media_files (id, user_id, filename, file_path, file_size, mime_type, motion_of, motion_source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'embedded')
         ON CONFLICT DO NOTHING",
        c.id,
        c.user_id,
        c.filename,
        c.file_path,
        c.file_size,
        c.mime_type,
        c.still_id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    if inserted {
        // The clip joins its still's running jobs (one more file to wait for); it is placed
        // right after its still (same position: a clip belongs to the still it came from).
        sqlx::query!(
            "WITH linked AS (
                 INSERT INTO data_processing_job_media (job_id, media_file_id, user_id, position)
                 SELECT jm.job_id, $1, jm.user_id, jm.position
                 FROM data_processing_job_media jm
                 JOIN data_processing_jobs j ON j.id = jm.job_id AND j.status IN ('pending', 'running')
                 WHERE jm.media_file_id = $2
                 ON CONFLICT DO NOTHING
                 RETURNING job_id
             )
             UPDATE data_processing_jobs j SET total_count = j.total_count + 1,
                    output_data = j.output_data || jsonb_build_object('total', j.total_count + 1)
             FROM linked WHERE j.id = linked.job_id",
            c.id,
            c.still_id
        )
        .execute(conn)
        .await?;
    }
    Ok(inserted)
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
/// at once agree: a failed hash, thumbnail or video step fails the file (EXIF failures are not
/// fatal); every step of the file's kind recorded (images: hash, exif, thumbnail; videos and
/// audio: hash, video) → completed. Returns the new end state, if the file just reached one.
pub async fn finalize(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ProcessingStatus>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT m.processing_status,
                  (SELECT error_message FROM media_processing_steps s
                   WHERE s.media_file_id = m.id AND s.step IN ('hash', 'thumbnail', 'video') AND s.status = 'failed'
                   ORDER BY s.step LIMIT 1) AS fatal,
                  (SELECT count(*) FROM media_processing_steps s
                   WHERE s.media_file_id = m.id AND (s.status = 'succeeded' OR s.step = 'exif')) AS "recorded!",
                  CASE m.kind WHEN 'image' THEN 3 ELSE 2 END AS "expected!"
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
        (None, n) if n >= i64::from(row.expected) => Some((ProcessingStatus::Completed, None)),
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

/// What an import's sidecar said about the media file, if it came from one.
pub async fn import_facts(
    db: impl sqlx::PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<crate::import::ImportFacts>, sqlx::Error> {
    let raw = sqlx::query_scalar!("SELECT import_facts FROM media_files WHERE id = $1", id)
        .fetch_optional(db)
        .await?
        .flatten();
    // Written by the importer from this same type; anything else is ignored, never fatal.
    Ok(raw.and_then(|v| serde_json::from_value(v).ok()))
}
