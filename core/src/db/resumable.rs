//! Resumable uploads (tus) as rows of `upload_sessions` (protocol `tus`): creation, the lease
//! that lets one request at a time append, the durable progress after each stored piece, and
//! completion. What the columns mean: `migrations/…_upload_sessions.sql`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A resumable upload as stored.
#[derive(Debug, Clone)]
pub struct Resumable {
    pub id: Uuid,
    pub user_id: Uuid,
    pub state: String,
    pub bytes_received: i64,
    pub upload_length: i64,
    pub expires_at: DateTime<Utc>,
    pub media_file_id: Uuid,
    pub filename: String,
    pub head: Vec<u8>,
    pub mime_type: Option<String>,
    pub hash_state: Option<Vec<u8>>,
    pub part_size: i64,
    pub multipart_id: Option<String>,
    /// The ETags of the stored parts, in order.
    pub parts: Vec<String>,
    pub tail_key: Option<String>,
    pub job_id: Option<Uuid>,
    /// An archive for `POST /v1/imports` (it does not become a media file).
    pub archive: bool,
}

/// What a new resumable upload starts with.
#[derive(Debug, Clone)]
pub struct NewResumable<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub upload_length: i64,
    pub media_file_id: Uuid,
    pub filename: &'a str,
    pub part_size: i64,
    pub ttl_secs: f64,
    pub archive: bool,
}

/// Durable progress: everything up to `bytes_received` is stored and hashed.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub bytes_received: i64,
    pub head: &'a [u8],
    pub mime_type: Option<&'a str>,
    pub hash_state: &'a [u8],
    pub multipart_id: Option<&'a str>,
    pub parts: &'a [String],
    pub tail_key: Option<&'a str>,
    pub ttl_secs: f64,
}

struct Row {
    id: Uuid,
    user_id: Uuid,
    state: String,
    bytes_received: i64,
    upload_length: Option<i64>,
    expires_at: DateTime<Utc>,
    media_file_id: Option<Uuid>,
    filename: Option<String>,
    head: Option<Vec<u8>>,
    mime_type: Option<String>,
    hash_state: Option<Vec<u8>>,
    part_size: Option<i64>,
    multipart_id: Option<String>,
    parts: serde_json::Value,
    tail_key: Option<String>,
    job_id: Option<Uuid>,
    purpose: String,
}

impl Row {
    fn into_resumable(self) -> Option<Resumable> {
        Some(Resumable {
            id: self.id,
            user_id: self.user_id,
            state: self.state,
            bytes_received: self.bytes_received,
            upload_length: self.upload_length?,
            expires_at: self.expires_at,
            media_file_id: self.media_file_id?,
            filename: self.filename.unwrap_or_default(),
            head: self.head.unwrap_or_default(),
            mime_type: self.mime_type,
            hash_state: self.hash_state,
            part_size: self.part_size?,
            multipart_id: self.multipart_id,
            parts: serde_json::from_value(self.parts).ok()?,
            tail_key: self.tail_key,
            job_id: self.job_id,
            archive: self.purpose == "archive",
        })
    }
}

/// Creates an upload (committed before any byte is stored).
pub async fn create(conn: &mut PgConnection, new: &NewResumable<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO upload_sessions (id, user_id, protocol, upload_length, media_file_id,
                                      filename, part_size, expires_at, purpose)
         VALUES ($1, $2, 'tus', $3, $4, $5, $6, now() + make_interval(secs => $7),
                 CASE WHEN $8 THEN 'archive' ELSE 'media' END)",
        new.id,
        new.user_id,
        new.upload_length,
        new.media_file_id,
        new.filename,
        new.part_size,
        new.ttl_secs,
        new.archive
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The user's upload, unless it expired (an expired one is as unknown as another user's).
pub async fn get(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<Resumable>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        "SELECT id, user_id, state, bytes_received, upload_length, expires_at, media_file_id,
                filename, head, mime_type, hash_state, part_size, multipart_id, parts, tail_key,
                job_id, purpose
         FROM upload_sessions
         WHERE id = $1 AND user_id = $2 AND protocol = 'tus' AND expires_at > now()",
        id,
        user_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(Row::into_resumable))
}

/// Takes the upload's lease for `owner` (for `secs`), if nobody else holds a live one.
pub async fn lease(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    owner: Uuid,
    secs: f64,
) -> Result<Option<Resumable>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        "UPDATE upload_sessions
         SET lease_owner = $3, lease_until = now() + make_interval(secs => $4)
         WHERE id = $1 AND user_id = $2 AND protocol = 'tus' AND state = 'open'
           AND expires_at > now()
           AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $3)
         RETURNING id, user_id, state, bytes_received, upload_length, expires_at, media_file_id,
                   filename, head, mime_type, hash_state, part_size, multipart_id, parts,
                   tail_key, job_id, purpose",
        id,
        user_id,
        owner,
        secs
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(Row::into_resumable))
}

/// Renews `owner`'s lease and records that the upload is alive; false once it is lost.
pub async fn renew(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
    secs: f64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE upload_sessions
         SET lease_until = now() + make_interval(secs => $3), last_progress_at = now()
         WHERE id = $1 AND lease_owner = $2 AND state = 'open'",
        id,
        owner,
        secs
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease back.
pub async fn release(conn: &mut PgConnection, id: Uuid, owner: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE upload_sessions SET lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $2",
        id,
        owner
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records durable progress under `owner`'s lease (and pushes the expiry back); false when
/// the lease was lost (the caller must not report this progress).
pub async fn advance(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
    p: &Progress<'_>,
) -> Result<bool, sqlx::Error> {
    let parts = serde_json::json!(p.parts);
    let done = sqlx::query!(
        "UPDATE upload_sessions
         SET bytes_received = $3, head = $4, mime_type = $5, hash_state = $6, multipart_id = $7,
             parts = $8, tail_key = $9, last_progress_at = now(),
             expires_at = greatest(expires_at, now() + make_interval(secs => $10))
         WHERE id = $1 AND lease_owner = $2 AND state = 'open'",
        id,
        owner,
        p.bytes_received,
        p.head,
        p.mime_type,
        p.hash_state,
        p.multipart_id,
        parts,
        p.tail_key,
        p.ttl_secs
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the upload completed (with the job that processes its media file) in the
/// transaction that records the media file; its remaining pending objects (tails, staging)
/// become objects to delete, and their keys are returned. `None` when it was not open.
pub async fn complete(
    conn: &mut PgConnection,
    id: Uuid,
    job_id: Option<Uuid>,
    keep: Option<&str>,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE upload_sessions
         SET state = 'completed', job_id = $2, bytes_received = upload_length,
             lease_owner = NULL, lease_until = NULL, tail_key = NULL
         WHERE id = $1 AND state = 'open' RETURNING id",
        id,
        job_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if done.is_none() {
        return Ok(None);
    }
    let left = sqlx::query_scalar!(
        "UPDATE pending_objects SET session_id = NULL
         WHERE session_id = $1 AND object_key IS DISTINCT FROM $2 RETURNING object_key",
        id,
        keep
    )
    .fetch_all(conn)
    .await?;
    Ok(Some(left))
}

/// Of `ids`, the user's completed archive uploads (unexpired), with their object keys.
pub async fn archives(
    conn: &mut PgConnection,
    user_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT s.id, s.state, p.object_key FROM upload_sessions s
         JOIN pending_objects p ON p.session_id = s.id AND p.object_key LIKE 'imports/%'
         WHERE s.id = ANY($1) AND s.user_id = $2 AND s.protocol = 'tus' AND s.purpose = 'archive'
           AND s.expires_at > now()
         FOR UPDATE OF s",
        ids,
        user_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.state, r.object_key))
        .collect())
}

/// Keeps the archives of uploads `ids` at least `days` more (an import reads them): their
/// uploads, whose expiry deletes them, expire no sooner.
pub async fn keep_archives(
    conn: &mut PgConnection,
    user_id: Uuid,
    ids: &[Uuid],
    days: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE upload_sessions
         SET expires_at = greatest(expires_at, now() + make_interval(days => $3))
         WHERE id = ANY($1) AND user_id = $2 AND purpose = 'archive'",
        ids,
        user_id,
        days
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The keys an upload's session names (before it is aborted).
pub async fn keys_of(conn: &mut PgConnection, id: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT object_key FROM pending_objects WHERE session_id = $1",
        id
    )
    .fetch_all(conn)
    .await
}

/// Forgets up to `limit` completed uploads past their expiry (their objects belong to media
/// rows now); returns how many.
pub async fn prune_completed(conn: &mut PgConnection, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM upload_sessions WHERE id IN (
             SELECT id FROM upload_sessions WHERE state = 'completed' AND expires_at < now()
             LIMIT $1)",
        limit
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Records the S3 multipart upload the upload writes into.
pub async fn set_multipart(
    conn: &mut PgConnection,
    id: Uuid,
    multipart_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE upload_sessions SET multipart_id = $2 WHERE id = $1",
        id,
        multipart_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the open upload's row in the caller's transaction; true while `owner` holds its lease.
pub async fn hold(conn: &mut PgConnection, id: Uuid, owner: Uuid) -> Result<bool, sqlx::Error> {
    let held = sqlx::query_scalar!(
        r#"SELECT coalesce(lease_owner = $2, false) AS "held!" FROM upload_sessions
           WHERE id = $1 AND state = 'open' FOR UPDATE"#,
        id,
        owner
    )
    .fetch_optional(conn)
    .await?;
    Ok(held == Some(true))
}

/// Forgets a completed upload's record.
pub async fn forget(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM upload_sessions WHERE id = $1 AND state = 'completed'",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}
