//! SQL of memories that imports make: a post with its text, date, place and media, found
//! again by its source id so that importing the same export twice makes one memory.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A memory as an import describes it.
#[derive(Debug, Clone)]
pub struct NewMemory<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub date: DateTime<Utc>,
    pub kind: &'a str,
    /// `memories.source_platform` (`facebook`, `google_photos`, …).
    pub source: &'a str,
    pub source_id: &'a str,
    pub location_id: Option<Uuid>,
}

/// The memory with this source id, made if missing; `true` when made now.
pub async fn ensure_imported(
    conn: &mut PgConnection,
    user_id: Uuid,
    m: &NewMemory<'_>,
) -> Result<(Uuid, bool), sqlx::Error> {
    let made = sqlx::query_scalar!(
        "INSERT INTO memories (user_id, title, description, memory_date, memory_type,
                               source_platform, source_id, location_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (user_id, source_platform, source_id) WHERE source_id IS NOT NULL
         DO NOTHING RETURNING id",
        user_id,
        m.title,
        m.description,
        m.date,
        m.kind,
        m.source,
        m.source_id,
        m.location_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = made {
        return Ok((id, true));
    }
    let id = sqlx::query_scalar!(
        "SELECT id FROM memories WHERE user_id = $1 AND source_platform = $2 AND source_id = $3",
        user_id,
        m.source,
        m.source_id
    )
    .fetch_one(conn)
    .await?;
    Ok((id, false))
}

/// Links a media file into a memory at `position` (once: linking it again changes nothing).
pub async fn add_media(
    conn: &mut PgConnection,
    user_id: Uuid,
    memory: Uuid,
    media: Uuid,
    position: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO memory_media_files (memory_id, media_file_id, user_id, position)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        memory,
        media,
        user_id,
        position
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The user's place at exactly this position, made if missing, with the name and address the
/// export gives. The exif step upserts the same row (one per user and position) when a photo
/// was taken there, filling in its city and zone.
pub async fn place(
    conn: &mut PgConnection,
    user_id: Uuid,
    (latitude, longitude): (f64, f64),
    name: Option<&str>,
    address: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO locations (user_id, latitude, longitude, name, address)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, latitude, longitude) DO UPDATE SET
             name = coalesce(locations.name, EXCLUDED.name),
             address = coalesce(locations.address, EXCLUDED.address)
         RETURNING id",
        user_id,
        latitude,
        longitude,
        name,
        address
    )
    .fetch_one(conn)
    .await
}
