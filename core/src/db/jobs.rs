//! `data_processing_jobs`: creating a tracked job, reading it, and moving its progress.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::models::system::DataProcessingJob;
use crate::models::{JobStatus, JobType, ProcessingStatus};

/// Creates a job over `media_ids` (in order) and links them to it.
pub async fn create(
    conn: &mut PgConnection,
    user_id: Uuid,
    job_type: JobType,
    input_data: serde_json::Value,
    media_ids: &[Uuid],
) -> Result<DataProcessingJob, sqlx::Error> {
    let total = i32::try_from(media_ids.len()).unwrap_or(i32::MAX);
    let job = sqlx::query_as!(
        DataProcessingJob,
        r#"INSERT INTO data_processing_jobs (user_id, job_type, input_data, total_count, output_data)
           VALUES ($1, $2, $3, $4, jsonb_build_object('completed', 0, 'failed', 0, 'duplicate', 0, 'total', $4::int))
           RETURNING id, user_id, job_type AS "job_type: JobType", status AS "status: JobStatus",
                     progress, input_data, output_data, error_message, started_at, completed_at,
                     created_at, updated_at"#,
        user_id,
        job_type.as_str(),
        input_data,
        total
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO data_processing_job_media (job_id, media_file_id, user_id, position)
         SELECT $1, m, $2, (o - 1)::int FROM unnest($3::uuid[]) WITH ORDINALITY AS t(m, o)",
        job.id,
        user_id,
        media_ids
    )
    .execute(&mut *conn)
    .await?;
    Ok(job)
}

/// Creates an open job (no files yet; see [`add_media`] and [`seal`]): an import that submits
/// its files chunk by chunk, followed as one job.
pub async fn create_open(
    conn: &mut PgConnection,
    user_id: Uuid,
    job_type: JobType,
    input_data: serde_json::Value,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO data_processing_jobs (user_id, job_type, input_data, sealed, output_data)
         VALUES ($1, $2, $3, false, jsonb_build_object('completed', 0, 'failed', 0, 'duplicate', 0, 'total', 0))
         RETURNING id",
        user_id,
        job_type.as_str(),
        input_data
    )
    .fetch_one(conn)
    .await
}

/// Adds files to an open job, at positions `first_position..` (on the caller's transaction,
/// with the files' rows and queue tasks).
pub async fn add_media(
    conn: &mut PgConnection,
    job_id: Uuid,
    user_id: Uuid,
    media_ids: &[Uuid],
    first_position: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO data_processing_job_media (job_id, media_file_id, user_id, position)
         SELECT $1, m, $2, $4 + (o - 1)::int FROM unnest($3::uuid[]) WITH ORDINALITY AS t(m, o)",
        job_id,
        user_id,
        media_ids,
        first_position
    )
    .execute(&mut *conn)
    .await?;
    let n = i32::try_from(media_ids.len()).unwrap_or(i32::MAX);
    sqlx::query!(
        "UPDATE data_processing_jobs SET total_count = total_count + $2,
                output_data = output_data || jsonb_build_object('total', total_count + $2)
         WHERE id = $1",
        job_id,
        n
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes an open job: no more files come, and it completes as soon as all of its have ended
/// (now, if they already have). Idempotent.
pub async fn seal(conn: &mut PgConnection, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE data_processing_jobs SET sealed = true,
                status = CASE WHEN completed_count + failed_count + duplicate_count >= total_count
                              THEN 'completed' ELSE status END,
                progress = CASE WHEN completed_count + failed_count + duplicate_count >= total_count
                                THEN 100 ELSE progress END,
                started_at = CASE WHEN completed_count + failed_count + duplicate_count >= total_count
                                  THEN coalesce(started_at, now()) ELSE started_at END,
                completed_at = CASE WHEN completed_count + failed_count + duplicate_count >= total_count
                                    THEN now() END
         WHERE id = $1 AND NOT sealed AND status IN ('pending', 'running')",
        job_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Seals open jobs nobody has added to for `idle_secs` (their importer died): returns how many.
/// Not an import of the API (its input names the archives in the store): that one is run again
/// instead (see [`stalled_api_imports`] and [`claim_api_import`]).
pub async fn seal_abandoned(conn: &mut PgConnection, idle_secs: f64) -> Result<u64, sqlx::Error> {
    let ids = sqlx::query_scalar!(
        "SELECT id FROM data_processing_jobs
         WHERE NOT sealed AND status IN ('pending', 'running')
           AND NOT (job_type = 'import' AND input_data ? 'keys')
           AND updated_at < now() - make_interval(secs => $1)",
        idle_secs
    )
    .fetch_all(&mut *conn)
    .await?;
    for id in &ids {
        seal(conn, *id).await?;
    }
    Ok(ids.len() as u64)
}

/// Adds an import's summary (what it left out and why, its memories) to the job's output.
pub async fn record_import(
    conn: &mut PgConnection,
    job_id: Uuid,
    summary: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE data_processing_jobs SET output_data = output_data || $2 WHERE id = $1",
        job_id,
        summary
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends an open job as failed with `reason` (an import whose archives cannot be read at all).
pub async fn fail_open(
    conn: &mut PgConnection,
    job_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE data_processing_jobs
         SET sealed = true, status = 'failed', error_message = $2, completed_at = now(),
             started_at = coalesce(started_at, now())
         WHERE id = $1 AND NOT sealed AND status IN ('pending', 'running')",
        job_id,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks an open API import's run alive (its heartbeat, `run_beat_at`) and running.
pub async fn touch_open(conn: &mut PgConnection, job_id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE data_processing_jobs
         SET run_beat_at = now(), status = 'running', started_at = coalesce(started_at, now())
         WHERE id = $1 AND NOT sealed AND status IN ('pending', 'running')",
        job_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An API import claimed for a run.
#[derive(Debug, Clone)]
pub struct ClaimedImport {
    pub id: Uuid,
    pub user_id: Uuid,
    pub input: serde_json::Value,
    /// Runs in a row that stopped without recording a file (this claim included; 0 on the
    /// first run).
    pub restarts: i32,
}

/// Claims the API import `job` for a run (marking it alive), unless it is no open import any
/// more or another run of it is alive. Every run after the first counts in the job's output
/// (`restarts`: runs in a row that recorded no file; `restart_total`: the files recorded at
/// the last claim), so that an import that never gets further is failed rather than run
/// forever.
pub async fn claim_api_import(
    conn: &mut PgConnection,
    job: Uuid,
) -> Result<Option<ClaimedImport>, sqlx::Error> {
    sqlx::query_as!(
        ClaimedImport,
        r#"UPDATE data_processing_jobs
         SET run_beat_at = now(), status = 'running', started_at = coalesce(started_at, now()),
             output_data = (coalesce(output_data, '{}'::jsonb) - 'stopped') || CASE
                 WHEN started_at IS NULL AND NOT (coalesce(output_data, '{}'::jsonb) ? 'restarts')
                 THEN jsonb_build_object('restart_total', total_count)
                 ELSE jsonb_build_object(
                     'restarts', CASE WHEN total_count > coalesce((output_data->>'restart_total')::int, -1)
                                      THEN 1
                                      ELSE coalesce((output_data->>'restarts')::int, 0) + 1 END,
                     'restart_total', total_count) END
         WHERE id = $1 AND job_type = 'import' AND input_data ? 'keys' AND NOT sealed
           AND status IN ('pending', 'running')
           -- Not while another run beats (every 2 s): a task given back by the queue while
           -- its run still goes on (its worker cut off from the database for a while) waits.
           -- The run's own column, not updated_at, which every file counted moves too.
           AND (run_beat_at IS NULL OR output_data ? 'stopped'
                OR run_beat_at < now() - interval '10 seconds')
         RETURNING id, user_id, input_data AS input,
                   coalesce((output_data->>'restarts')::int, 0) AS "restarts!""#,
        job
    )
    .fetch_optional(conn)
    .await
}

/// Whether `job` is still an open API import (one that [`claim_api_import`] declined because
/// another run of it beats, rather than because it is done, failed or gone).
pub async fn api_import_open(conn: &mut PgConnection, job: Uuid) -> Result<bool, sqlx::Error> {
    let open = sqlx::query_scalar!(
        r#"SELECT EXISTS (
             SELECT 1 FROM data_processing_jobs
             WHERE id = $1 AND job_type = 'import' AND input_data ? 'keys' AND NOT sealed
               AND status IN ('pending', 'running')) AS "open!""#,
        job
    )
    .fetch_one(conn)
    .await?;
    Ok(open)
}

/// Records that an API import's run stopped cleanly on trouble of the store or the database:
/// the next run may start at once, and starts the count of runs without progress again, so
/// that an outage, however long, never adds up to the limit meant for runs that die.
pub async fn note_import_interrupted(
    conn: &mut PgConnection,
    job: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE data_processing_jobs
         SET output_data = output_data
                           || '{"restarts": 0, "restart_total": -1, "stopped": true}'::jsonb
         WHERE id = $1 AND NOT sealed AND status IN ('pending', 'running')"#,
        job
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Open API imports silent for `stale_secs` (their run died) that no live `library` task will
/// run (as for exports: `db::exports::stalled`), oldest first.
pub async fn stalled_api_imports(
    db: impl sqlx::PgExecutor<'_>,
    stale_secs: f64,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT d.id FROM data_processing_jobs d
         WHERE d.job_type = 'import' AND d.input_data ? 'keys' AND NOT d.sealed
           AND d.status IN ('pending', 'running')
           AND coalesce(d.run_beat_at, d.created_at) < now() - make_interval(secs => $1)
           AND NOT EXISTS (
               SELECT 1 FROM apalis.jobs j
               WHERE j.job_type = 'library' AND j.status <> 'Done' AND j.status <> 'Killed'
                 AND (j.status <> 'Failed' OR j.attempts < j.max_attempts)
                 AND convert_from(j.job, 'UTF8')::jsonb ->> 'job_id' = d.id::text)
         ORDER BY coalesce(d.run_beat_at, d.created_at) LIMIT $2",
        stale_secs,
        limit
    )
    .fetch_all(db)
    .await
}

/// Counts the ended files of running sealed jobs nobody has moved for `idle_secs` that were
/// never counted (a worker killed between a file's end and its count, say): the reconciler's
/// safety net under the O(1) counters. Returns how many files it counted.
pub async fn count_missed(conn: &mut PgConnection, idle_secs: f64) -> Result<u64, sqlx::Error> {
    let files = sqlx::query_scalar!(
        "SELECT jm.media_file_id FROM data_processing_jobs j
         JOIN data_processing_job_media jm ON jm.job_id = j.id
         JOIN media_files m ON m.id = jm.media_file_id
         WHERE j.sealed AND j.status IN ('pending', 'running')
           AND j.updated_at < now() - make_interval(secs => $1)
           AND jm.counted_status IS NULL
           AND m.processing_status IN ('completed', 'failed', 'duplicate')
         LIMIT 1000",
        idle_secs
    )
    .fetch_all(&mut *conn)
    .await?;
    for id in &files {
        file_ended(conn, *id).await?;
    }
    Ok(files.len() as u64)
}

/// A user's job, if it is theirs.
pub async fn get(
    conn: &mut PgConnection,
    user_id: Uuid,
    job_id: Uuid,
) -> Result<Option<DataProcessingJob>, sqlx::Error> {
    sqlx::query_as!(
        DataProcessingJob,
        r#"SELECT id, user_id, job_type AS "job_type: JobType", status AS "status: JobStatus",
                  progress, input_data, output_data, error_message, started_at, completed_at,
                  created_at, updated_at
           FROM data_processing_jobs WHERE id = $1 AND user_id = $2"#,
        job_id,
        user_id
    )
    .fetch_optional(conn)
    .await
}

/// Marks a job running when its first step starts (pending → running only).
pub async fn mark_running(conn: &mut PgConnection, job_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE data_processing_jobs SET status = 'running', started_at = coalesce(started_at, now())
         WHERE id = $1 AND status = 'pending'",
        job_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the progress of every running job containing `media_file_id` to the file's current
/// end state: O(1) per file, whatever the job's size. Each (job, file) link remembers the end
/// state it was counted with, so a transition is counted exactly once, a rerun of this call
/// changes nothing, and a file retried while its job runs moves from one counter to another.
/// Every counter expression reads the job row itself (not a snapshot taken before its lock),
/// so two files finishing at once both count. Progress never goes down; the job completes
/// when every file has ended. A no-op while the file has not ended.
pub async fn file_ended(conn: &mut PgConnection, media_file_id: Uuid) -> Result<(), sqlx::Error> {
    file_ended_as(conn, media_file_id, None).await
}

/// [`file_ended`], counting the file as `status` rather than its own status (a completed file
/// whose reprocessing failed counts as a failure of the reprocessing job).
pub async fn file_ended_as(
    conn: &mut PgConnection,
    media_file_id: Uuid,
    status: Option<ProcessingStatus>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"WITH f AS (
               SELECT coalesce($2, processing_status) AS now FROM media_files
               WHERE id = $1 AND coalesce($2, processing_status) IN ('completed', 'failed', 'duplicate')
           ), moved AS (
               UPDATE data_processing_job_media jm SET counted_status = f.now
               FROM f, data_processing_job_media old, data_processing_jobs j
               WHERE jm.media_file_id = $1 AND old.job_id = jm.job_id AND old.media_file_id = $1
                 AND j.id = jm.job_id AND j.status IN ('pending', 'running')
                 AND jm.counted_status IS DISTINCT FROM f.now
               RETURNING jm.job_id,
                   (f.now = 'completed')::int - (old.counted_status IS NOT DISTINCT FROM 'completed')::int AS dc,
                   (f.now = 'failed')::int - (old.counted_status IS NOT DISTINCT FROM 'failed')::int AS df,
                   (f.now = 'duplicate')::int - (old.counted_status IS NOT DISTINCT FROM 'duplicate')::int AS dd
           )
           UPDATE data_processing_jobs j SET
               completed_count = j.completed_count + m.dc,
               failed_count = j.failed_count + m.df,
               duplicate_count = j.duplicate_count + m.dd,
               progress = greatest(j.progress, CASE WHEN j.total_count = 0 THEN 100 ELSE floor(
                   (CASE WHEN j.sealed THEN 100.0 ELSE 99.0 END)
                   * (j.completed_count + m.dc + j.failed_count + m.df + j.duplicate_count + m.dd)
                   / j.total_count) END)::smallint,
               status = CASE WHEN j.sealed AND j.completed_count + m.dc + j.failed_count + m.df
                                  + j.duplicate_count + m.dd >= j.total_count THEN 'completed' ELSE 'running' END,
               started_at = coalesce(j.started_at, now()),
               completed_at = CASE WHEN j.sealed AND j.completed_count + m.dc + j.failed_count + m.df
                                  + j.duplicate_count + m.dd >= j.total_count THEN now() END,
               output_data = j.output_data || jsonb_build_object('completed', j.completed_count + m.dc,
                   'failed', j.failed_count + m.df, 'duplicate', j.duplicate_count + m.dd,
                   'total', j.total_count)
           FROM moved m WHERE j.id = m.job_id AND j.status IN ('pending', 'running')"#,
        media_file_id,
        status.map(ProcessingStatus::as_str)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A failed file of a job, for its summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobError {
    pub media_id: Uuid,
    pub filename: String,
    pub error: Option<String>,
}

impl JobError {
    /// The failures of `job_with_errors`' row, whose three arrays run in step.
    pub(crate) fn zipped(
        media_ids: Vec<Uuid>,
        filenames: Vec<String>,
        errors: Vec<Option<String>>,
    ) -> Vec<Self> {
        media_ids
            .into_iter()
            .zip(filenames)
            .zip(errors)
            .map(|((media_id, filename), error)| Self {
                media_id,
                filename,
                error,
            })
            .collect()
    }
}

/// The user's job with its first `limit` failures, in upload order (an index on the failed
/// links: the job's other files are not read), in one statement: a poll behind a transaction
/// pooler parses and plans each statement again, and each is two more round trips there
/// (docs/SCALING.md), so the job and its failures are not read apart.
pub async fn get_with_errors(
    conn: &mut PgConnection,
    user_id: Uuid,
    job_id: Uuid,
    limit: i64,
) -> Result<Option<(DataProcessingJob, Vec<JobError>)>, sqlx::Error> {
    // The statement lives in a PL/pgSQL function (migrations/20261207000027_poll_plans_kept.sql)
    // so that, behind a transaction pooler, each server connection keeps its plan.
    let row = sqlx::query!(
        r#"SELECT id AS "id!", user_id AS "user_id!", job_type AS "job_type!: JobType",
                  status AS "status!: JobStatus", progress AS "progress!",
                  input_data AS "input_data!", output_data AS "output_data!", error_message,
                  started_at, completed_at, created_at AS "created_at!",
                  updated_at AS "updated_at!",
                  error_media_ids AS "error_media_ids!: Vec<Uuid>",
                  error_filenames AS "error_filenames!: Vec<String>",
                  error_messages AS "error_messages!: Vec<Option<String>>"
           FROM job_with_errors($1, $2, $3)"#,
        job_id,
        user_id,
        limit
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let errors = JobError::zipped(r.error_media_ids, r.error_filenames, r.error_messages);
        let job = DataProcessingJob {
            id: r.id,
            user_id: r.user_id,
            job_type: r.job_type,
            status: r.status,
            progress: r.progress,
            input_data: r.input_data,
            output_data: r.output_data,
            error_message: r.error_message,
            started_at: r.started_at,
            completed_at: r.completed_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        };
        (job, errors)
    }))
}
