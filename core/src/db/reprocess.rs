//! Finding what `timeline reprocess` must redo, from the per-step records.

use sqlx::PgConnection;
use uuid::Uuid;

/// A file with steps to redo.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: Uuid,
    pub user_id: Uuid,
    pub processing_status: String,
    /// Steps to redo, in pipeline order.
    pub steps: Vec<String>,
}

/// Takes the reprocessing lock until the transaction ends: two runs at once (two clicks on
/// the dashboard) take their batches in turn, so each sees the other's files already in a
/// running job and none is queued twice. A transaction lock: it works behind a pooler.
pub async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended('timeline.reprocess', 0))")
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// The next `limit` files after `after` (by id) with steps to redo: ended files (completed or
/// failed, not duplicates) in no running job, and of their kind's steps (only `step`, if
/// given) those that have no success at `version` — with `all`, every one. A step whose
/// failure was recorded at `version` is not redone by a `missing` pass: the current code has
/// already tried it (an owner's retry does that).
pub async fn candidates(
    conn: &mut PgConnection,
    after: Uuid,
    limit: i64,
    (step, all): (Option<&str>, bool),
    version: i32,
) -> Result<Vec<Candidate>, sqlx::Error> {
    sqlx::query_as!(
        Candidate,
        r#"SELECT id AS "id!", user_id AS "user_id!", processing_status AS "processing_status!",
                  steps AS "steps!"
           FROM (SELECT m.id, m.user_id, m.processing_status,
                        array(SELECT s FROM unnest(CASE m.kind WHEN 'image' THEN ARRAY['hash', 'exif', 'thumbnail']
                                                              ELSE ARRAY['hash', 'video'] END) WITH ORDINALITY AS k(s, o)
                              WHERE ($3::text IS NULL OR s = $3)
                                AND ($4 OR NOT EXISTS (
                                        SELECT 1 FROM media_processing_steps p
                                        WHERE p.media_file_id = m.id AND p.step = s AND p.pipeline_version >= $5))
                              ORDER BY o) AS steps
                 FROM media_files m
                 WHERE m.id > $1 AND m.processing_status IN ('completed', 'failed') AND m.duplicate_of IS NULL
                   AND NOT EXISTS (SELECT 1 FROM data_processing_job_media jm
                                   JOIN data_processing_jobs j ON j.id = jm.job_id AND j.status IN ('pending', 'running')
                                   WHERE jm.media_file_id = m.id)
                 ORDER BY m.id) c
           WHERE cardinality(steps) > 0
           LIMIT $2"#,
        after,
        limit,
        step,
        all,
        version
    )
    .fetch_all(conn)
    .await
}
