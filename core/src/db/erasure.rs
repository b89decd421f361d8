//! SQL of account erasure (see `crate::erasure`): the request, the job's claim and progress,
//! the batches of rows it deletes, and the last transaction that deletes the user.

use sqlx::PgConnection;
use uuid::Uuid;

/// Records that `user` is to be erased and returns the erasure job and whether it is new,
/// creating it unless one is already unfinished (a second request joins the first). The user row stays locked until the
/// caller commits, so two requests at once make one job.
pub async fn request(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<(Uuid, bool)>, sqlx::Error> {
    let found = sqlx::query_scalar!(
        "UPDATE users SET erasure_requested_at = coalesce(erasure_requested_at, now())
         WHERE id = $1 RETURNING id",
        user
    )
    .fetch_optional(&mut *conn)
    .await?;
    if found.is_none() {
        return Ok(None);
    }
    let open = sqlx::query_scalar!(
        "SELECT id FROM data_processing_jobs
         WHERE user_id = $1 AND job_type = 'account_deletion' AND status IN ('pending', 'running')
         ORDER BY created_at LIMIT 1",
        user
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = open {
        return Ok(Some((id, false)));
    }
    sqlx::query_scalar!(
        "INSERT INTO data_processing_jobs (user_id, job_type) VALUES ($1, 'account_deletion')
         RETURNING id",
        user
    )
    .fetch_one(conn)
    .await
    .map(|id| Some((id, true)))
}

/// Marks the erasure job running (again: a resumed one) and returns whose account it erases;
/// `None` when it is not an unfinished erasure.
pub async fn claim(db: impl sqlx::PgExecutor<'_>, job: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE data_processing_jobs
         SET status = 'running', started_at = coalesce(started_at, now())
         WHERE id = $1 AND job_type = 'account_deletion' AND status IN ('pending', 'running')
         RETURNING user_id",
        job
    )
    .fetch_optional(db)
    .await
}

/// Unfinished erasures nobody has advanced for `stale_secs` (their runner died) and that no
/// live `library` task will run (as for exports: `db::exports::stalled`), oldest first.
pub async fn stalled(
    db: impl sqlx::PgExecutor<'_>,
    stale_secs: f64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT d.id FROM data_processing_jobs d
         WHERE d.job_type = 'account_deletion' AND d.status IN ('pending', 'running')
           AND d.updated_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (
               SELECT 1 FROM apalis.jobs j
               WHERE j.job_type = 'library' AND j.status <> 'Done' AND j.status <> 'Killed'
                 AND (j.status <> 'Failed' OR j.attempts < j.max_attempts)
                 AND convert_from(j.job, 'UTF8')::jsonb ->> 'job_id' = d.id::text)
         ORDER BY d.updated_at LIMIT $2",
        stale_secs,
        limit
    )
    .fetch_all(db)
    .await
}

/// The user's open upload sessions (each to be aborted).
pub async fn open_sessions(
    db: impl sqlx::PgExecutor<'_>,
    user: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM upload_sessions WHERE user_id = $1 AND state = 'open'",
        user
    )
    .fetch_all(db)
    .await
}

/// Lets go of the objects the user's completed uploads still keep (archives for imports): they
/// become objects nobody writes, deleted with the rest. Returns how many.
pub async fn release_completed_uploads(
    db: impl sqlx::PgExecutor<'_>,
    user: Uuid,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE pending_objects SET session_id = NULL
         WHERE session_id IN (SELECT id FROM upload_sessions
                              WHERE user_id = $1 AND state = 'completed')",
        user
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Up to `limit` of the user's media files (the next batch to delete).
pub async fn media_batch(
    db: impl sqlx::PgExecutor<'_>,
    user: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM media_files WHERE user_id = $1 LIMIT $2",
        user,
        limit
    )
    .fetch_all(db)
    .await
}

/// Keys of the user's pending objects that nobody writes any more (an aborted session's, a
/// deleted file's), up to `limit`.
pub async fn unowned_objects(
    db: impl sqlx::PgExecutor<'_>,
    user: Uuid,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT object_key FROM pending_objects
         WHERE user_id = $1 AND session_id IS NULL AND step IS NULL
         ORDER BY created_at LIMIT $2",
        user,
        limit
    )
    .fetch_all(db)
    .await
}

/// Adds to the job's counts and sets its progress (the share of media files deleted so far).
pub async fn advance(
    db: impl sqlx::PgExecutor<'_>,
    job: Uuid,
    media_files: i64,
    objects: i64,
    sessions: i64,
    remaining: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH counts AS (
             SELECT coalesce((output_data->>'media_files')::bigint, 0) + $2 AS media,
                    coalesce((output_data->>'object_keys_deleted')::bigint, 0) + $3 AS objects,
                    coalesce((output_data->>'upload_sessions_aborted')::bigint, 0) + $4 AS sessions
             FROM data_processing_jobs WHERE id = $1
         )
         UPDATE data_processing_jobs j
         SET output_data = j.output_data || jsonb_build_object(
                 'media_files', c.media, 'object_keys_deleted', c.objects,
                 'upload_sessions_aborted', c.sessions),
             progress = least(99, (100 * c.media / greatest(1, c.media + $5))::int)::smallint
         FROM counts c WHERE j.id = $1",
        job,
        media_files,
        objects,
        sessions,
        remaining
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The user's media files still to delete.
pub async fn media_left(db: impl sqlx::PgExecutor<'_>, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM media_files WHERE user_id = $1"#,
        user
    )
    .fetch_one(db)
    .await
}

/// The counts the job has gathered (its `output_data`).
pub async fn counts(
    db: impl sqlx::PgExecutor<'_>,
    job: Uuid,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT output_data FROM data_processing_jobs WHERE id = $1",
        job
    )
    .fetch_optional(db)
    .await
}

/// Locks the user row (a concurrent upload's insert waits on it, then fails) and says whether
/// anything that owns stored objects is left: media files, open upload sessions, pending
/// objects nobody writes, export archives. `None` when the user is gone already.
pub async fn lock_and_check(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<bool>, sqlx::Error> {
    let row = sqlx::query_scalar!(
        r#"SELECT (EXISTS (SELECT 1 FROM media_files WHERE user_id = u.id)
                OR EXISTS (SELECT 1 FROM upload_sessions WHERE user_id = u.id AND state = 'open')
                OR EXISTS (SELECT 1 FROM pending_objects
                           WHERE user_id = u.id AND session_id IS NULL AND step IS NULL)
                OR EXISTS (SELECT 1 FROM exports
                           WHERE user_id = u.id AND status IN ('pending', 'running', 'completed', 'failed')))
                AS "left!"
           FROM users u WHERE u.id = $1 FOR UPDATE"#,
        user
    )
    .fetch_optional(conn)
    .await?;
    Ok(row)
}

/// Deletes the user row (everything else of theirs cascades from it: tokens, sessions, jobs,
/// memories, collections, locations, settings), then strips the values from every audit row
/// about them, the ones the deletes just wrote included. Returns the audit rows anonymized.
pub async fn delete_user(conn: &mut PgConnection, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query!("DELETE FROM users WHERE id = $1", user)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar!(r#"SELECT anonymize_audit_for_user($1) AS "n!""#, user)
        .fetch_one(conn)
        .await
}
