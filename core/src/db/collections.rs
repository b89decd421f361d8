//! SQL of collections (albums): a user's list with counts and covers, a collection's media,
//! and the links imports make.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::media::{Cursor, MediaDetail};
use crate::models::ProcessingStatus;

/// A collection as `GET /v1/collections` lists it.
#[derive(Debug, Clone)]
pub struct CollectionRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub media_count: i64,
    /// The chosen cover, else the collection's newest media file.
    pub cover_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A page of the user's collections, newest first; `after` is the last row of the previous page
/// (its `created_at` and id).
pub async fn list(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<CollectionRow>, sqlx::Error> {
    let (at, id) = after.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    sqlx::query_as!(
        CollectionRow,
        r#"SELECT c.id, c.name, c.description,
                  (SELECT count(*) FROM collection_media_files cm WHERE cm.collection_id = c.id)
                      AS "media_count!",
                  coalesce(c.cover_image_id,
                           (SELECT m.id FROM collection_media_files cm
                            JOIN media_files m ON m.id = cm.media_file_id
                            WHERE cm.collection_id = c.id
                            ORDER BY m.timeline_at DESC, m.id DESC LIMIT 1)) AS cover_id,
                  c.created_at
           FROM collections c
           WHERE c.user_id = $1
             AND ($2::timestamptz IS NULL OR (c.created_at, c.id) < ($2, $3::uuid))
           ORDER BY c.created_at DESC, c.id DESC
           LIMIT $4"#,
        user_id,
        at,
        id,
        limit
    )
    .fetch_all(db)
    .await
}

/// Whether the user has this collection.
pub async fn exists(db: impl PgExecutor<'_>, user_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM collections WHERE id = $1 AND user_id = $2) AS "exists!""#,
        id,
        user_id
    )
    .fetch_one(db)
    .await
}

/// A page of a collection's media, newest first, as `GET /v1/media` shows them.
pub async fn media(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    collection: Uuid,
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
                  coalesce(co.id, c.id) AS "motion_id?", coalesce(co.duration, c.duration) AS motion_duration
           FROM collection_media_files cm
           JOIN media_files m ON m.id = cm.media_file_id
           LEFT JOIN locations l ON l.id = m.location_id
           LEFT JOIN media_files c ON c.motion_of = m.id
           LEFT JOIN media_files co ON co.id = c.duplicate_of
           WHERE cm.collection_id = $2 AND cm.user_id = $1
             AND ($3::timestamptz IS NULL OR (m.timeline_at, m.id) < ($3, $4::uuid))
           ORDER BY m.timeline_at DESC, m.id DESC
           LIMIT $5"#,
        user_id,
        collection,
        at,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// The user's collection named `name`, made if missing (imports: one per album, found again
/// by name when the same export is imported twice).
pub async fn ensure(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    name: &str,
    description: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    if let Some(id) = sqlx::query_scalar!(
        "SELECT id FROM collections WHERE user_id = $1 AND name = $2 ORDER BY created_at LIMIT 1",
        user_id,
        name
    )
    .fetch_optional(&mut *conn)
    .await?
    {
        return Ok(id);
    }
    sqlx::query_scalar!(
        "INSERT INTO collections (user_id, name, description) VALUES ($1, $2, $3) RETURNING id",
        user_id,
        name,
        description
    )
    .fetch_one(conn)
    .await
}

/// Links a media file into a collection (once: linking it again changes nothing).
pub async fn add_media(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    collection: Uuid,
    media: Uuid,
    position: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO collection_media_files (collection_id, media_file_id, user_id, position)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        collection,
        media,
        user_id,
        position
    )
    .execute(db)
    .await?;
    Ok(())
}
