//! Media-file queries: the timeline page, lookup by hash and the radius search.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::models::ProcessingStatus;

/// A keyset position in a user's timeline: the last row's (timeline_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub timeline_at: DateTime<Utc>,
    pub id: Uuid,
}

/// The user's original media file with these bytes, if any (`idx_media_files_user_hash`).
pub async fn find_by_hash(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    file_hash: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM media_files WHERE user_id = $1 AND file_hash = $2 AND duplicate_of IS NULL",
        user_id,
        file_hash
    )
    .fetch_optional(db)
    .await
}

/// A media file near a point, with its distance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NearbyRow {
    pub id: Uuid,
    pub location_id: Uuid,
    pub distance_m: f64,
}

/// The user's media within `radius_m` metres of (lat, lon), nearest first. The GiST index
/// `idx_locations_user_earth` finds the places in the bounding cube; the exact great-circle
/// distance then trims the cube's corners.
pub async fn within_radius(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    lat: f64,
    lon: f64,
    radius_m: f64,
    limit: i64,
) -> Result<Vec<NearbyRow>, sqlx::Error> {
    sqlx::query_as!(
        NearbyRow,
        r#"SELECT m.id, l.id AS location_id,
                  earth_distance(ll_to_earth($2, $3), ll_to_earth(l.latitude, l.longitude)) AS "distance_m!"
           FROM locations l
           JOIN media_files m ON m.location_id = l.id
           WHERE l.user_id = $1
             AND earth_box(ll_to_earth($2, $3), $4) @> ll_to_earth(l.latitude, l.longitude)
             AND earth_distance(ll_to_earth($2, $3), ll_to_earth(l.latitude, l.longitude)) <= $4
           ORDER BY 3, m.id
           LIMIT $5"#,
        user_id,
        lat,
        lon,
        radius_m,
        limit
    )
    .fetch_all(db)
    .await
}

/// Everything `GET /v1/media/{id}` shows, location joined in.
#[derive(Debug, Clone)]
pub struct MediaDetail {
    pub id: Uuid,
    pub filename: String,
    pub mime_type: String,
    pub file_size: i64,
    pub file_hash: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub orientation: Option<i16>,
    pub taken_at: Option<DateTime<Utc>>,
    pub taken_at_offset_minutes: Option<i16>,
    pub taken_at_source: Option<String>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub processing_status: ProcessingStatus,
    pub error_message: Option<String>,
    pub duplicate_of: Option<Uuid>,
    pub attempts: i32,
    pub has_thumbnails: bool,
    pub metadata: serde_json::Value,
    pub timeline_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub location_id: Option<Uuid>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy: Option<f64>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub state_province: Option<String>,
    pub city: Option<String>,
    pub timezone: Option<String>,
    pub kind: String,
    pub duration: Option<f64>,
    /// On a motion clip: its still.
    pub motion_of: Option<Uuid>,
    /// On a still: its motion clip and the clip's duration.
    pub motion_id: Option<Uuid>,
    pub motion_duration: Option<f64>,
}

/// One of the user's media files with its location (and, for a still, its motion clip).
pub async fn detail(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<MediaDetail>, sqlx::Error> {
    sqlx::query_as!(
        MediaDetail,
        r#"SELECT m.id, m.filename, m.mime_type, m.file_size, m.file_hash, m.width, m.height, m.orientation,
                  m.taken_at, m.taken_at_offset_minutes, m.taken_at_source, m.camera_make, m.camera_model,
                  m.processing_status AS "processing_status: ProcessingStatus", m.error_message, m.duplicate_of,
                  m.attempts, (m.thumbnail_path IS NOT NULL) AS "has_thumbnails!", m.metadata,
                  m.timeline_at AS "timeline_at!", m.created_at,
                  l.id AS "location_id?", l.latitude AS "latitude?", l.longitude AS "longitude?",
                  l.accuracy, l.country, l.country_code, l.state_province, l.city, l.timezone,
                  m.kind AS "kind!", m.duration, m.motion_of,
                  -- A clip whose bytes the user already had is a duplicate: name the original.
                  coalesce(co.id, c.id) AS "motion_id?", coalesce(co.duration, c.duration) AS motion_duration
           FROM media_files m LEFT JOIN locations l ON l.id = m.location_id
           LEFT JOIN media_files c ON c.motion_of = m.id
           LEFT JOIN media_files co ON co.id = c.duplicate_of
           WHERE m.id = $1 AND m.user_id = $2"#,
        id,
        user_id
    )
    .fetch_optional(db)
    .await
}

/// A page of the user's media (newest first), optionally only those in `status`. Motion clips
/// are listed through their stills.
pub async fn list(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    status: Option<ProcessingStatus>,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<MediaDetail>, sqlx::Error> {
    let (at, after) = cursor.map_or((None, None), |c| (Some(c.timeline_at), Some(c.id)));
    sqlx::query_as!(
        MediaDetail,
        r#"SELECT m.id, m.filename, m.mime_type, m.file_size, m.file_hash, m.width, m.height, m.orientation,
                  m.taken_at, m.taken_at_offset_minutes, m.taken_at_source, m.camera_make, m.camera_model,
                  m.processing_status AS "processing_status: ProcessingStatus", m.error_message, m.duplicate_of,
                  m.attempts, (m.thumbnail_path IS NOT NULL) AS "has_thumbnails!", '{}'::jsonb AS "metadata!",
                  m.timeline_at AS "timeline_at!", m.created_at,
                  l.id AS "location_id?", l.latitude AS "latitude?", l.longitude AS "longitude?",
                  l.accuracy, l.country, l.country_code, l.state_province, l.city, l.timezone,
                  m.kind AS "kind!", m.duration, m.motion_of,
                  -- A clip whose bytes the user already had is a duplicate: name the original.
                  coalesce(co.id, c.id) AS "motion_id?", coalesce(co.duration, c.duration) AS motion_duration
           FROM media_files m LEFT JOIN locations l ON l.id = m.location_id
           LEFT JOIN media_files c ON c.motion_of = m.id
           LEFT JOIN media_files co ON co.id = c.duplicate_of
           WHERE m.user_id = $1
             -- A motion clip is shown through its still, not as an item of its own; but a
             -- failed clip is listed among the failures, where it can be retried.
             AND (m.motion_of IS NULL OR $2::text = 'failed')
             AND ($2::text IS NULL OR m.processing_status = $2)
             AND ($3::timestamptz IS NULL OR (m.timeline_at, m.id) < ($3, $4::uuid))
           ORDER BY m.timeline_at DESC, m.id DESC
           LIMIT $5"#,
        user_id,
        status.map(|s| s.as_str()),
        at,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// The stored key of a rendition, if it exists yet. A duplicate's own copy is deleted once it
/// is found out (its bytes are its original's), so its original and renditions are those of
/// the file it duplicates.
pub async fn object_key(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    id: Uuid,
    rendition: crate::storage::Rendition,
) -> Result<Option<(Option<String>, String)>, sqlx::Error> {
    use crate::storage::Rendition;
    let row = sqlx::query!(
        r#"SELECT coalesce(o.file_path, m.file_path) AS "file_path!",
                  coalesce(o.thumbnail_path, m.thumbnail_path) AS thumbnail_path,
                  coalesce(o.preview_path, m.preview_path) AS preview_path,
                  coalesce(o.mime_type, m.mime_type) AS "mime_type!"
           FROM media_files m
           LEFT JOIN media_files o ON o.id = m.duplicate_of AND o.user_id = m.user_id
           WHERE m.id = $1 AND m.user_id = $2"#,
        id,
        user_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| match rendition {
        Rendition::Original => (Some(r.file_path), r.mime_type),
        Rendition::Thumb => (r.thumbnail_path, String::new()),
        Rendition::Preview => (r.preview_path, String::new()),
    }))
}

/// The owner of a media file (for operators, who act across users).
pub async fn owner(db: impl sqlx::PgExecutor<'_>, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("SELECT user_id FROM media_files WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// Of `hashes` (SHA-256, lowercase hex), those the user already has, with the media file that
/// holds each (duplicates point at it, so only originals are listed). A file recorded but not
/// yet through its hash step counts by the hash taken as its bytes arrived (unless it failed
/// before that step: those bytes may be sent again); of several, a hashed one first, else the
/// oldest.
pub async fn existing_hashes(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    hashes: &[String],
) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT ON (hash) hash AS "file_hash!", id AS "id!" FROM (
               SELECT file_hash AS hash, id, 0 AS rank, created_at FROM media_files
               WHERE user_id = $1 AND file_hash = ANY($2) AND duplicate_of IS NULL
               UNION ALL
               SELECT upload_sha256, id, 1, created_at FROM media_files
               WHERE user_id = $1 AND file_hash IS NULL AND upload_sha256 IS NOT NULL
                 AND upload_sha256 = ANY($2) AND processing_status <> 'failed') known
           ORDER BY hash, rank, created_at, id"#,
        user_id,
        hashes
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.file_hash, r.id)).collect())
}
