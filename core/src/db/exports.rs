//! SQL of exports (see `crate::export`): the request and its job, a run's claim, progress and
//! end (fenced by the attempt it claimed), what the reconciler finds stuck or expired, and the
//! rows an archive is written from (media page by page, collections, memories).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// An export as `GET /v1/exports/{id}` shows it.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub status: String,
    pub object_key: String,
    pub files_total: i32,
    pub files_done: i32,
    pub size: Option<i64>,
    pub error_message: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Serializes `user`'s export requests until the caller's transaction ends, so that two at
/// once make one export (a transaction-scoped lock: fine behind a transaction pooler).
pub async fn lock_requests(db: impl PgExecutor<'_>, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('timeline.export:' || $1::uuid::text, 0))",
        user
    )
    .fetch_one(db)
    .await?;
    Ok(())
}

/// The user's unfinished export, if there is one (a new request joins it).
pub async fn unfinished(db: impl PgExecutor<'_>, user: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM exports WHERE user_id = $1 AND status IN ('pending', 'running')
         ORDER BY created_at LIMIT 1",
        user
    )
    .fetch_optional(db)
    .await
}

/// Records a new export of `user` with its job; the object's key is named before any byte of
/// it is written.
pub async fn create(
    conn: &mut PgConnection,
    user: Uuid,
    id: Uuid,
    key: &str,
) -> Result<Uuid, sqlx::Error> {
    let job = sqlx::query_scalar!(
        "INSERT INTO data_processing_jobs (user_id, job_type, input_data)
         VALUES ($1, 'export', jsonb_build_object('export_id', $2::uuid)) RETURNING id",
        user,
        id
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO exports (id, user_id, job_id, object_key) VALUES ($1, $2, $3, $4)",
        id,
        user,
        job,
        key
    )
    .execute(conn)
    .await?;
    Ok(job)
}

/// One of the user's exports.
pub async fn get(
    db: impl PgExecutor<'_>,
    user: Uuid,
    id: Uuid,
) -> Result<Option<ExportRow>, sqlx::Error> {
    sqlx::query_as!(
        ExportRow,
        "SELECT id, job_id, status, object_key, files_total, files_done, size, error_message,
                expires_at, created_at
         FROM exports WHERE id = $1 AND user_id = $2",
        id,
        user
    )
    .fetch_optional(db)
    .await
}

/// What a run claimed: whose export, where it goes, what an earlier run left open, and the
/// attempt that fences this run's writes.
#[derive(Debug, Clone)]
pub struct Claim {
    pub user_id: Uuid,
    pub job_id: Uuid,
    pub object_key: String,
    /// The multipart upload an earlier run left open (to abort before starting again).
    pub multipart_id: Option<String>,
    pub attempt: i32,
    /// Earlier runs that stopped on an outage (they do not count against the attempts).
    pub outage_runs: i32,
}

/// Claims an unfinished export for a new run (a resumed one takes it over from a dead run);
/// `None` when it is not unfinished. Marks its job running.
pub async fn claim(conn: &mut PgConnection, id: Uuid) -> Result<Option<Claim>, sqlx::Error> {
    let claim = sqlx::query_as!(
        Claim,
        "UPDATE exports SET status = 'running', attempt = attempt + 1, error_message = NULL
         WHERE id = $1 AND status IN ('pending', 'running')
         RETURNING user_id, job_id, object_key, multipart_id, attempt, outage_runs",
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(c) = &claim {
        sqlx::query!(
            "UPDATE data_processing_jobs
             SET status = 'running', started_at = coalesce(started_at, now())
             WHERE id = $1 AND status IN ('pending', 'running')",
            c.job_id
        )
        .execute(conn)
        .await?;
    }
    Ok(claim)
}

/// Records the multipart upload this run writes into (committed before its first part), or
/// none once it is completed or aborted. False when another run has taken the export over.
pub async fn set_multipart(
    db: impl PgExecutor<'_>,
    id: Uuid,
    attempt: i32,
    multipart: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE exports SET multipart_id = $3 WHERE id = $1 AND attempt = $2 AND status = 'running'",
        id,
        attempt,
        multipart
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records progress (also the run's heartbeat) and the job's share done. False when another
/// run has taken the export over, or it was deleted (an erasure): this run must stop.
pub async fn progress(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    done: i32,
    total: i32,
) -> Result<bool, sqlx::Error> {
    let job = sqlx::query_scalar!(
        "UPDATE exports SET files_done = $3, files_total = $4
         WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING job_id",
        id,
        attempt,
        done,
        total
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(job) = job else {
        return Ok(false);
    };
    sqlx::query!(
        "UPDATE data_processing_jobs SET progress = least(99, 100 * $2::int / greatest(1, $3::int))::smallint
         WHERE id = $1",
        job,
        done,
        total
    )
    .execute(conn)
    .await?;
    Ok(true)
}

/// Ends the run: the archive of `size` bytes is stored and kept for `days`. False when another
/// run has taken the export over (its object is then that run's).
pub async fn complete(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    size: i64,
    days: i32,
    output: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let job = sqlx::query_scalar!(
        "UPDATE exports
         SET status = 'completed', size = $3, multipart_id = NULL, completed_at = now(),
             expires_at = now() + make_interval(days => $4)
         WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING job_id",
        id,
        attempt,
        size,
        days
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(job) = job else {
        return Ok(false);
    };
    sqlx::query!(
        "UPDATE data_processing_jobs
         SET status = 'completed', progress = 100, completed_at = now(),
             started_at = coalesce(started_at, now()), output_data = $2
         WHERE id = $1",
        job,
        output
    )
    .execute(conn)
    .await?;
    Ok(true)
}

/// Ends the export as failed with `reason`, if run `attempt` still holds it. A multipart
/// upload the run could not abort stays recorded, for the reconciler ([`expired`]) to abort.
pub async fn fail(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let job = sqlx::query_scalar!(
        "UPDATE exports SET status = 'failed', error_message = $3
         WHERE id = $1 AND attempt = $2 AND status IN ('pending', 'running') RETURNING job_id",
        id,
        attempt,
        reason
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(job) = job {
        sqlx::query!(
            "UPDATE data_processing_jobs
             SET status = 'failed', error_message = $2, completed_at = now(),
                 started_at = coalesce(started_at, now())
             WHERE id = $1 AND status IN ('pending', 'running')",
            job,
            reason
        )
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Records why a run stopped, leaving the export to be resumed; `outage` when the store or the
/// database stopped it (the run then does not count against the export's attempts).
pub async fn note_error(
    db: impl PgExecutor<'_>,
    id: Uuid,
    attempt: i32,
    reason: &str,
    outage: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE exports SET error_message = $3, outage_runs = outage_runs + $4::int
         WHERE id = $1 AND attempt = $2",
        id,
        attempt,
        reason,
        i32::from(outage)
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Unfinished exports nobody has advanced for `stale_secs` (their run died) and that no live
/// `library` task will run (one waiting, or one the queue gives back once its dead worker is
/// noticed, is left to the queue), oldest first: (id, attempt, runs so far that did not stop
/// on an outage, which count against the attempts). The live library tasks
/// are few (one per export or erasure under way), found by `timeline_apalis_jobs_live`.
pub async fn stalled(
    db: impl PgExecutor<'_>,
    stale_secs: f64,
    limit: i64,
) -> Result<Vec<(Uuid, i32, i32)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT e.id, e.attempt, e.attempt - e.outage_runs AS "runs!" FROM exports e
         WHERE e.status IN ('pending', 'running')
           AND e.updated_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (
               SELECT 1 FROM apalis.jobs j
               WHERE j.job_type = 'library' AND j.status <> 'Done' AND j.status <> 'Killed'
                 AND (j.status <> 'Failed' OR j.attempts < j.max_attempts)
                 AND convert_from(j.job, 'UTF8')::jsonb ->> 'export_id' = e.id::text)
         ORDER BY e.updated_at LIMIT $2"#,
        stale_secs,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.attempt, r.runs))
        .collect())
}

/// Exports whose stored bytes are due for deletion: completed ones past their expiry, and
/// failed ones whose last run left a multipart upload it could not abort. (id, object key,
/// open multipart upload).
pub async fn expired(
    db: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<(Uuid, String, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, object_key, multipart_id FROM exports
         WHERE (status = 'completed' AND expires_at < now())
            OR (status = 'failed' AND multipart_id IS NOT NULL)
         ORDER BY updated_at LIMIT $1",
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.object_key, r.multipart_id))
        .collect())
}

/// Records that an export's stored bytes are deleted: a completed one is `expired` (the row
/// stays, for the record), a failed one no longer names an upload.
pub async fn mark_expired(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE exports
         SET status = CASE status WHEN 'completed' THEN 'expired' ELSE status END,
             size = CASE status WHEN 'completed' THEN NULL ELSE size END,
             multipart_id = NULL
         WHERE id = $1 AND status IN ('completed', 'failed')",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The user's exports that may own stored bytes: (id, object key, open multipart upload).
pub async fn stored_of(
    db: impl PgExecutor<'_>,
    user: Uuid,
) -> Result<Vec<(Uuid, String, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, object_key, multipart_id FROM exports
         WHERE user_id = $1 AND status IN ('pending', 'running', 'completed', 'failed')",
        user
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.object_key, r.multipart_id))
        .collect())
}

/// Whether the export's row is still there.
pub async fn exists(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM exports WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(db)
    .await
}

/// Deletes an export's row (an erasure, once its objects are gone).
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM exports WHERE id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

/// A media file as an archive holds it: its original's key and every fact about it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportMedia {
    pub id: Uuid,
    pub filename: String,
    pub mime_type: String,
    pub kind: String,
    pub file_path: String,
    pub file_size: i64,
    pub file_hash: Option<String>,
    pub processing_status: String,
    pub error_message: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub duration: Option<f64>,
    pub taken_at: Option<DateTime<Utc>>,
    pub taken_at_offset_minutes: Option<i16>,
    pub taken_at_source: Option<String>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub content_identifier: Option<String>,
    pub motion_of: Option<Uuid>,
    pub motion_source: Option<String>,
    pub import_facts: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub city: Option<String>,
    pub state_province: Option<String>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    pub timezone: Option<String>,
    /// The clip paired with this still (a Live Photo's MOV, a Motion Photo's embedded clip).
    pub clip_id: Option<Uuid>,
    pub clip_source: Option<String>,
    pub collections: Vec<Uuid>,
    pub memories: Vec<Uuid>,
}

/// The user's media files an archive holds (duplicates are records of bytes held by another
/// row), after `after` in id order.
pub async fn media_page(
    db: impl PgExecutor<'_>,
    user: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExportMedia>, sqlx::Error> {
    sqlx::query_as!(
        ExportMedia,
        r#"SELECT m.id, m.filename, m.mime_type, m.kind, m.file_path, m.file_size, m.file_hash,
                  m.processing_status, m.error_message, m.width, m.height, m.duration,
                  m.taken_at, m.taken_at_offset_minutes, m.taken_at_source,
                  m.camera_make, m.camera_model, m.content_identifier, m.motion_of,
                  m.motion_source, m.import_facts, m.created_at,
                  l.latitude AS "latitude?", l.longitude AS "longitude?", l.city AS "city?",
                  l.state_province AS "state_province?", l.country AS "country?",
                  l.country_code AS "country_code?", l.timezone AS "timezone?",
                  (SELECT c.id FROM media_files c WHERE c.motion_of = m.id) AS clip_id,
                  (SELECT c.motion_source FROM media_files c WHERE c.motion_of = m.id)
                      AS clip_source,
                  coalesce((SELECT array_agg(cm.collection_id ORDER BY cm.collection_id)
                            FROM collection_media_files cm WHERE cm.media_file_id = m.id),
                           '{}') AS "collections!",
                  coalesce((SELECT array_agg(mm.memory_id ORDER BY mm.memory_id)
                            FROM memory_media_files mm WHERE mm.media_file_id = m.id),
                           '{}') AS "memories!"
           FROM media_files m LEFT JOIN locations l ON l.id = m.location_id
           WHERE m.user_id = $1 AND m.duplicate_of IS NULL
             AND ($2::uuid IS NULL OR m.id > $2)
           ORDER BY m.id LIMIT $3"#,
        user,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// How many media files an archive of the user holds, and their bytes.
pub async fn media_totals(db: impl PgExecutor<'_>, user: Uuid) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) AS "n!", coalesce(sum(file_size), 0)::bigint AS "bytes!"
           FROM media_files WHERE user_id = $1 AND duplicate_of IS NULL"#,
        user
    )
    .fetch_one(db)
    .await?;
    Ok((row.n, row.bytes))
}

/// A collection as an archive holds it, with its media in order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportCollection {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub cover_image_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub media: Vec<Uuid>,
}

/// A page of the user's collections, after `after` in id order.
pub async fn collections_page(
    db: impl PgExecutor<'_>,
    user: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExportCollection>, sqlx::Error> {
    sqlx::query_as!(
        ExportCollection,
        r#"SELECT c.id, c.name, c.description, c.cover_image_id, c.created_at,
                  coalesce((SELECT array_agg(cm.media_file_id ORDER BY cm.position, cm.media_file_id)
                            FROM collection_media_files cm WHERE cm.collection_id = c.id),
                           '{}') AS "media!"
           FROM collections c
           WHERE c.user_id = $1 AND ($2::uuid IS NULL OR c.id > $2)
           ORDER BY c.id LIMIT $3"#,
        user,
        after,
        limit
    )
    .fetch_all(db)
    .await
}

/// A memory as an archive holds it, with its place and its media in order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportMemory {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub memory_date: DateTime<Utc>,
    pub memory_type: String,
    pub source_platform: String,
    pub source_id: Option<String>,
    pub is_favorite: bool,
    pub place_name: Option<String>,
    pub place_address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub media: Vec<Uuid>,
}

/// A page of the user's memories, after `after` in id order.
pub async fn memories_page(
    db: impl PgExecutor<'_>,
    user: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ExportMemory>, sqlx::Error> {
    sqlx::query_as!(
        ExportMemory,
        r#"SELECT m.id, m.title, m.description, m.memory_date, m.memory_type, m.source_platform,
                  m.source_id, m.is_favorite,
                  l.name AS "place_name?", l.address AS "place_address?",
                  l.latitude AS "latitude?", l.longitude AS "longitude?",
                  coalesce((SELECT array_agg(mm.media_file_id ORDER BY mm.position, mm.media_file_id)
                            FROM memory_media_files mm WHERE mm.memory_id = m.id),
                           '{}') AS "media!"
           FROM memories m LEFT JOIN locations l ON l.id = m.location_id
           WHERE m.user_id = $1 AND ($2::uuid IS NULL OR m.id > $2)
           ORDER BY m.id LIMIT $3"#,
        user,
        after,
        limit
    )
    .fetch_all(db)
    .await
}
