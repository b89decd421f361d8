//! Bytes in flight, as rows: upload sessions (an upload storing originals, committed before its
//! first byte) and pending objects (every key that may be in the store without a committed
//! media row naming it, committed before the object is written). The reconciler cleans from
//! these rows alone; see `migrations/…_upload_sessions.sql` for what each state means.

use sqlx::PgConnection;
use uuid::Uuid;

/// Opens a session (its own statement: committed before the caller stores a byte).
pub async fn open_session(
    conn: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    protocol: &str,
    upload_length: Option<i64>,
    ttl_secs: f64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO upload_sessions (id, user_id, protocol, upload_length, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        id,
        user_id,
        protocol,
        upload_length,
        ttl_secs
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The owner is still at work: `bytes_received` so far. False once the session is gone
/// (ended, or aborted by the reconciler).
pub async fn touch_session(
    conn: &mut PgConnection,
    id: Uuid,
    bytes_received: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE upload_sessions SET bytes_received = $2, last_progress_at = now()
         WHERE id = $1 AND state = 'open'",
        id,
        bytes_received
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends an open session inside the transaction that records its media rows (which now name its
/// objects): its row lock is taken first, so a concurrent abort waits for this transaction and
/// then finds nothing to abort. False when the session was aborted already: the caller must
/// not commit rows naming objects that may be gone.
pub async fn end_session(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let ended = sqlx::query!(
        "DELETE FROM upload_sessions WHERE id = $1 AND state = 'open' RETURNING id",
        id
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(ended.is_some())
}

/// Aborts an open session: its row goes and its pending objects become objects to delete (in
/// the same statement, by the foreign key). Waits for a transaction that is ending it; false
/// when there was nothing open to abort (it ended, so committed rows may name its objects).
pub async fn abort_session(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let aborted = sqlx::query!(
        "DELETE FROM upload_sessions WHERE id = $1 AND state = 'open' RETURNING id",
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(aborted.is_some())
}

/// Aborts up to `limit` open sessions past their deadline: expired, or (but for resumable
/// uploads, which wait for their client until they expire) with no progress for `stall_secs`.
/// A session being ended right now is locked and skipped.
pub async fn abort_stalled(
    conn: &mut PgConnection,
    stall_secs: f64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "DELETE FROM upload_sessions WHERE id IN (
             SELECT id FROM upload_sessions
             WHERE state = 'open'
               AND (expires_at < now()
                    OR (protocol <> 'tus' AND last_progress_at < now() - make_interval(secs => $1)))
             LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id",
        stall_secs,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Who may still write a pending object.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// An upload session.
    Session(Uuid),
    /// A worker step (its queue name) storing the object for the media file, in its queue
    /// task (`apalis.jobs.id`).
    Step(&'a str, Option<&'a str>),
    /// Nobody: the object is to be deleted.
    Nobody,
}

/// A key that may be in the store without a committed row naming it.
#[derive(Debug, Clone)]
pub struct PendingObject {
    pub object_key: String,
    pub user_id: Uuid,
    pub media_file_id: Uuid,
}

/// Names objects about to be written (or to be deleted), on the caller's connection; a key
/// named before takes the new owner.
pub async fn name_objects(
    conn: &mut PgConnection,
    user_id: Uuid,
    media_file_id: Uuid,
    keys: &[String],
    owner: Owner<'_>,
) -> Result<(), sqlx::Error> {
    let (session, step, task) = match owner {
        Owner::Session(id) => (Some(id), None, None),
        Owner::Step(step, task) => (None, Some(step), task),
        Owner::Nobody => (None, None, None),
    };
    sqlx::query!(
        "INSERT INTO pending_objects (object_key, user_id, media_file_id, session_id, step, task_id)
         SELECT k, $2, $3, $4, $5, $6 FROM unnest($1::text[]) AS k
         ON CONFLICT (object_key) DO UPDATE
         SET session_id = EXCLUDED.session_id, step = EXCLUDED.step, task_id = EXCLUDED.task_id,
             created_at = now()",
        keys,
        user_id,
        media_file_id,
        session,
        step,
        task
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Names objects to delete unless they are named already (whoever named them keeps them).
pub async fn name_new(
    conn: &mut PgConnection,
    user_id: Uuid,
    media_file_id: Uuid,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO pending_objects (object_key, user_id, media_file_id)
         SELECT k, $2, $3 FROM unnest($1::text[]) AS k
         ON CONFLICT (object_key) DO NOTHING",
        keys,
        user_id,
        media_file_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets pending objects that committed rows now name (in the transaction that names them).
pub async fn settle(conn: &mut PgConnection, keys: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM pending_objects WHERE object_key = ANY($1)",
        keys
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Up to `limit` pending objects that nobody will write any more: owned by nobody, or by a step
/// whose task can no longer run (it is not waiting, running, nor failed with attempts left).
/// Sessions' objects wait for their session.
pub async fn cleanable(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<PendingObject>, sqlx::Error> {
    let unowned = sqlx::query_as!(
        PendingObject,
        "SELECT object_key, user_id, media_file_id FROM pending_objects
         WHERE session_id IS NULL AND step IS NULL ORDER BY created_at LIMIT $1",
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    let steps: Vec<PendingObject> = sqlx::query_as(
        "SELECT p.object_key, p.user_id, p.media_file_id FROM pending_objects p
         WHERE p.step IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM apalis.jobs a
             WHERE a.id = p.task_id
               AND (a.status IN ('Pending', 'Queued', 'Running')
                    OR (a.status = 'Failed' AND a.attempts < a.max_attempts)))
         ORDER BY p.created_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(unowned.into_iter().chain(steps).collect())
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for PendingObject {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            object_key: row.try_get("object_key")?,
            user_id: row.try_get("user_id")?,
            media_file_id: row.try_get("media_file_id")?,
        })
    }
}

/// Claims a cleanable object inside the caller's transaction: deletes its row if nobody can
/// still write it, holding the row lock until commit (a step naming it again waits until the
/// object is gone). `None` when it is no longer cleanable.
pub async fn claim(conn: &mut PgConnection, key: &str) -> Result<Option<Claimed>, sqlx::Error> {
    let claimed: Option<Option<String>> = sqlx::query_scalar(
        "DELETE FROM pending_objects p
         WHERE p.object_key = $1
           AND p.session_id IS NULL
           AND (p.step IS NULL OR NOT EXISTS (
               SELECT 1 FROM apalis.jobs a
               WHERE a.id = p.task_id
                 AND (a.status IN ('Pending', 'Queued', 'Running')
                      OR (a.status = 'Failed' AND a.attempts < a.max_attempts))))
         RETURNING p.multipart_id",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(multipart_id) = claimed else {
        return Ok(None);
    };
    let named = match crate::storage::Storage::media_of(key) {
        Some(media) => is_named(conn, media, key).await?,
        None => false,
    };
    Ok(Some(Claimed {
        named,
        multipart_id,
    }))
}

/// A pending object claimed for cleaning.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// A committed media row names the key: the object stays.
    pub named: bool,
    /// An S3 multipart upload to the key that is still open: to abort.
    pub multipart_id: Option<String>,
}

/// Records the S3 multipart upload open for a pending object (aborted if it is cleaned).
pub async fn set_multipart(
    conn: &mut PgConnection,
    key: &str,
    multipart_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE pending_objects SET multipart_id = $2 WHERE object_key = $1",
        key,
        multipart_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the multipart upload of `key` once it is completed (the object is whole: cleaning it
/// later deletes it, there is no upload left to abort).
pub async fn clear_multipart(conn: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE pending_objects SET multipart_id = NULL WHERE object_key = $1",
        key
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the row of `media` (the file in the key, see `Storage::media_of`) names `key` as a
/// stored object of its own (a duplicate's original is dropped once it is marked, so its path
/// does not count).
pub async fn is_named(
    conn: &mut PgConnection,
    media: Uuid,
    key: &str,
) -> Result<bool, sqlx::Error> {
    let named = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM media_files
                          WHERE id = $1 AND duplicate_of IS NULL
                            AND $2 IN (file_path, thumbnail_path, preview_path)) AS "named!""#,
        media,
        key
    )
    .fetch_one(conn)
    .await?;
    Ok(named)
}

/// Of the listed `(key, media id)` pairs, the keys no row names: neither a media row (as for
/// [`is_named`]) nor a pending object (an upload or a step may be writing it right now).
pub async fn unnamed(
    conn: &mut PgConnection,
    keys: &[String],
    media: &[Uuid],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT t.k AS "k!" FROM unnest($1::text[], $2::uuid[]) AS t(k, m)
           WHERE NOT EXISTS (SELECT 1 FROM media_files f
                             WHERE f.id = t.m AND f.duplicate_of IS NULL
                               AND t.k IN (f.file_path, f.thumbnail_path, f.preview_path))
             AND NOT EXISTS (SELECT 1 FROM pending_objects p WHERE p.object_key = t.k)"#,
        keys,
        media
    )
    .fetch_all(conn)
    .await
}

/// Takes the store audit's session lock on `conn`, if no other audit holds it: two audits at
/// once would page from the same position and overwrite each other's progress.
pub async fn try_lock_audit(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock(hashtext('timeline_store_audit')) AS "locked!""#
    )
    .fetch_one(conn)
    .await
}

/// Lets go of the lock [`try_lock_audit`] took on `conn`.
pub async fn unlock_audit(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT pg_advisory_unlock(hashtext('timeline_store_audit')) AS "unlocked!""#
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// Where the operator's store audit stands: the last key it finished, objects seen and deleted.
pub async fn audit_position(
    conn: &mut PgConnection,
) -> Result<Option<(Option<String>, i64, i64)>, sqlx::Error> {
    let row = sqlx::query!("SELECT after_key, objects_seen, deleted FROM store_audit")
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| (r.after_key, r.objects_seen, r.deleted)))
}

/// Records the audit's progress after a page (`after_key` `None`: the audit finished and the
/// next one starts from the beginning).
pub async fn audit_advance(
    conn: &mut PgConnection,
    after_key: Option<&str>,
    seen: i64,
    deleted: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO store_audit (id, after_key, objects_seen, deleted) VALUES (true, $1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET after_key = $1, objects_seen = $2, deleted = $3,
             updated_at = now(),
             started_at = CASE WHEN store_audit.after_key IS NULL THEN now()
                               ELSE store_audit.started_at END",
        after_key,
        seen,
        deleted
    )
    .execute(conn)
    .await?;
    Ok(())
}
