//! The API's writes to media files: new uploads, retry of a failed file, deletion.

use sqlx::PgConnection;

use super::tx::Begin;
use uuid::Uuid;

/// A stored upload about to be recorded.
#[derive(Debug, Clone)]
pub struct NewMedia {
    pub id: Uuid,
    pub user_id: Uuid,
    pub filename: String,
    pub file_path: String,
    pub file_size: i64,
    pub mime_type: &'static str,
    /// The SHA-256 of the bytes as the upload received them (lowercase hex).
    pub sha256: Option<String>,
}

/// Inserts the `pending` media rows of one upload.
pub async fn insert_media(conn: &mut PgConnection, media: &[NewMedia]) -> Result<(), sqlx::Error> {
    for m in media {
        sqlx::query!(
            "INSERT INTO media_files (id, user_id, filename, file_path, file_size, mime_type,
                                      upload_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            m.id,
            m.user_id,
            m.filename,
            m.file_path,
            m.file_size,
            m.mime_type,
            m.sha256
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Puts a failed media file back to `pending` and forgets its failed step records, so the
/// pipeline redoes exactly what did not succeed. Returns the filename, or `None` if the file is
/// not the user's or not failed.
pub async fn reset_failed(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let name = sqlx::query_scalar!(
        "UPDATE media_files SET processing_status = 'pending', error_message = NULL, attempts = 0
         WHERE id = $1 AND user_id = $2 AND processing_status = 'failed' RETURNING filename",
        id,
        user_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if name.is_some() {
        sqlx::query!(
            "DELETE FROM media_processing_steps WHERE media_file_id = $1 AND status = 'failed'",
            id
        )
        .execute(conn)
        .await?;
    }
    Ok(name)
}

/// Which steps of its kind have not succeeded (with the current pipeline version) for a media
/// file.
pub async fn missing_steps(conn: &mut PgConnection, id: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT s AS "step!" FROM media_files m,
                  unnest(CASE m.kind WHEN 'image' THEN ARRAY['hash', 'exif', 'thumbnail']
                                     ELSE ARRAY['hash', 'video'] END) AS s
           WHERE m.id = $1
             AND NOT EXISTS (SELECT 1 FROM media_processing_steps p
                             WHERE p.media_file_id = $1 AND p.step = s AND p.status = 'succeeded'
                               AND p.pipeline_version >= $2)"#,
        id,
        crate::jobs::PIPELINE_VERSION
    )
    .fetch_all(conn)
    .await
}

/// What [`delete`] removed.
#[derive(Debug, Default)]
pub struct Deleted {
    /// Every media row removed (the files named, their duplicates and motion clips).
    pub ids: Vec<Uuid>,
    /// The locations they named: for [`delete_unused_places`], once this commits.
    pub places: Vec<Uuid>,
}

/// Deletes a user's media file rows. Their duplicates and motion clips go with them (foreign
/// key cascade), so their objects must be deleted too; the locations they named are returned,
/// to be deleted after the commit where nothing else names them.
pub async fn delete(
    conn: &mut PgConnection,
    user_id: Uuid,
    ids: &[Uuid],
) -> Result<Deleted, sqlx::Error> {
    let rows = sqlx::query!(
        "WITH RECURSIVE gone AS (
             SELECT id FROM media_files WHERE id = ANY($1) AND user_id = $2
             UNION SELECT m.id FROM media_files m JOIN gone g
                   ON m.duplicate_of = g.id OR m.motion_of = g.id
         )
         DELETE FROM media_files WHERE id IN (SELECT id FROM gone) RETURNING id, location_id",
        ids,
        user_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut places: Vec<Uuid> = rows.iter().filter_map(|r| r.location_id).collect();
    places.sort_unstable();
    places.dedup();
    Ok(Deleted {
        ids: rows.into_iter().map(|r| r.id).collect(),
        places,
    })
}

/// Deletes those of the user's `places` that nothing names any more (no media file, memory or
/// location history): a deleted photo leaves no trace of where it was taken. Run in its own
/// transaction after the media rows' delete has committed, holding no other lock: the places
/// are locked first (in id order, waiting), then checked by the next statement, whose
/// snapshot is taken once they are held. A step naming the same place either committed before
/// (seen: the place stays) or waits and then makes the place again; of two deletes of photos
/// at the same place, the second to lock it sees the first's commit and deletes it.
pub async fn delete_unused_places(
    conn: &mut PgConnection,
    user_id: Uuid,
    places: &[Uuid],
) -> Result<u64, sqlx::Error> {
    if places.is_empty() {
        return Ok(0);
    }
    let locked = sqlx::query_scalar!(
        "SELECT id FROM locations WHERE id = ANY($1) AND user_id = $2 ORDER BY id FOR UPDATE",
        places,
        user_id
    )
    .fetch_all(&mut *conn)
    .await?;
    if locked.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        "DELETE FROM locations l
         WHERE l.id = ANY($1) AND l.user_id = $2
           AND NOT EXISTS (SELECT 1 FROM media_files m
                           WHERE m.location_id = l.id AND m.user_id = $2)
           AND NOT EXISTS (SELECT 1 FROM memories r
                           WHERE r.location_id = l.id AND r.user_id = $2)
           AND NOT EXISTS (SELECT 1 FROM location_history h
                           WHERE h.location_id = l.id AND h.user_id = $2)",
        &locked,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// For a file being reprocessed by `job_id`: how many of its kind's steps the job still waits
/// for, and how many fatal steps (not EXIF) failed. A step is awaited when it has no record at
/// the current pipeline version, or, for a job that redoes every step (`--all`), when its
/// record (the hash's aside, which `--all` keeps) predates the job: the file ends for the job
/// only once each of its redone steps has run, not when the first one does.
pub async fn refresh_state(
    conn: &mut PgConnection,
    id: Uuid,
    job_id: Uuid,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE p.step IS NULL
                      OR (j.input_data->>'reprocess' = 'all' AND s <> 'hash'
                          AND p.completed_at < j.created_at)) AS "unrecorded!",
                  count(*) FILTER (WHERE p.status = 'failed' AND p.step <> 'exif') AS "fatal!"
           FROM media_files m
           CROSS JOIN unnest(CASE m.kind WHEN 'image' THEN ARRAY['hash', 'exif', 'thumbnail']
                                         ELSE ARRAY['hash', 'video'] END) AS s
           LEFT JOIN data_processing_jobs j ON j.id = $3
           LEFT JOIN media_processing_steps p
                  ON p.media_file_id = m.id AND p.step = s AND p.pipeline_version >= $2
           WHERE m.id = $1"#,
        id,
        crate::jobs::PIPELINE_VERSION,
        job_id
    )
    .fetch_one(conn)
    .await?;
    Ok((row.unrecorded, row.fatal))
}

/// Bytes of originals `user` holds (kept by a trigger; see the `user_storage` migration).
pub async fn storage_used(db: impl sqlx::PgExecutor<'_>, user: Uuid) -> Result<u64, sqlx::Error> {
    let used = sqlx::query_scalar!(
        r#"SELECT coalesce((SELECT used_bytes FROM user_storage WHERE user_id = $1), 0) AS "used!""#,
        user
    )
    .fetch_one(db)
    .await?;
    // The column is CHECKed non-negative.
    Ok(u64::try_from(used).unwrap_or(0))
}

/// Records what an import's sidecar says about a media file (in the transaction that records
/// the row, before any step can read it).
pub async fn set_import_facts(
    conn: &mut PgConnection,
    id: Uuid,
    facts: &crate::import::ImportFacts,
) -> Result<(), sqlx::Error> {
    let value = serde_json::to_value(facts).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query!(
        "UPDATE media_files SET import_facts = $2 WHERE id = $1",
        id,
        value
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether an account may start an upload now: it is not being erased, and what it takes in
/// the store (for the quota): its originals, the bytes its uploads in flight declared (or have
/// sent, where the length is not known), and the import archives it keeps. One read, before
/// any byte is stored.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub erasing: bool,
    pub used: u64,
}

/// [`Admission`] of `user`, in a transaction of its own (behind a transaction pooler a
/// statement outside one may reach a server connection that never prepared it).
pub async fn admission(pool: &impl Begin, user: Uuid) -> Result<Admission, sqlx::Error> {
    let mut tx = pool.begin_tx().await?;
    let row = sqlx::query!(
        r#"SELECT (u.erasure_requested_at IS NOT NULL) AS "erasing!",
                  coalesce((SELECT used_bytes FROM user_storage s WHERE s.user_id = u.id), 0)
                  + coalesce((SELECT sum(coalesce(us.upload_length, us.bytes_received))
                              FROM upload_sessions us
                              WHERE us.user_id = u.id
                                AND (us.state = 'open'
                                     OR (us.purpose = 'archive' AND us.expires_at > now()))),
                             0)::bigint AS "used!"
           FROM users u WHERE u.id = $1"#,
        user
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map_or(
        Admission {
            erasing: false,
            used: 0,
        },
        |r| Admission {
            erasing: r.erasing,
            used: u64::try_from(r.used).unwrap_or(0),
        },
    ))
}
