//! `POST /v1/imports`: an import of archives the user uploaded through tus with
//! `Upload-Metadata: purpose import`. The zips are read where they are in the store (ranged
//! reads, central directory first), by the same importer as `timeline import`, on one tracked
//! `import` job; what it left out, and why, is in the job's output (`skipped`). The job runs in
//! this process's background; a web process runs again an import whose process stopped (it
//! stores nothing twice).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::ValueEnum;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::auth::AuthUser;
use super::docs::{BadRequest, Conflict, NotFound, Unauthorized, Unavailable};
use super::views::{self, ImportAccepted};
use super::{ApiJson, AppState, error::ApiError};
use crate::cli::import::{Format, run_job};
use crate::db;
use crate::models::JobType;

/// Archives per import: the parts of one export.
const MAX_ARCHIVES: usize = 100;
/// Days an import's archives are kept from its request on, whatever their uploads' expiry.
const KEEP_ARCHIVE_DAYS: i32 = 7;
/// Runs in a row an import is given without progress: one whose process stops this often
/// with no file recorded in between (an archive that crashes or stalls it each time) is failed
/// rather than run forever; an outage or a deploy amid a long import, which goes on, is not.
const MAX_RESTARTS: i32 = 5;
/// An import silent this long (no chunk, no heartbeat) has lost its process (default;
/// `TIMELINE_IMPORT_STALL_SECS` sets it).
const STALL: Duration = Duration::from_secs(60);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create))
}

/// What `POST /v1/imports` takes.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ImportRequest {
    /// tus uploads (`purpose import`) holding the export's zip parts.
    pub uploads: Vec<String>,
    /// `auto` (the default), `takeout`, `facebook`, `icloud` or `timeline`.
    #[serde(default)]
    pub from: Option<String>,
}

/// Imports a service's export (or a timeline export) from archives uploaded through tus.
#[utoipa::path(post, path = "/v1/imports", tag = "imports", request_body = ImportRequest,
    responses((status = 202, body = ImportAccepted,
               headers(("Location" = String, description = "the job"))),
              BadRequest, Unauthorized, NotFound, Conflict, Unavailable))]
async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<ImportRequest>,
) -> Result<Response, ApiError> {
    let from = body.from.as_deref().unwrap_or("auto");
    let format = Format::from_str(from, true).map_err(|_| {
        ApiError::BadRequest("`from` is one of auto, takeout, facebook, icloud, timeline".into())
    })?;
    if body.uploads.is_empty() || body.uploads.len() > MAX_ARCHIVES {
        return Err(ApiError::BadRequest(format!(
            "`uploads` names 1 to {MAX_ARCHIVES} archives"
        )));
    }
    // An id that is not one is as unknown as another user's upload.
    let ids: Vec<Uuid> = body
        .uploads
        .iter()
        .map(|u| u.parse().map_err(|_| ApiError::NotFound))
        .collect::<Result<_, _>>()?;
    if db::uploads::admission(&state.pool, user).await?.erasing {
        return Err(ApiError::Conflict(
            "this account is being erased; it takes no imports".into(),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let found = db::resumable::archives(&mut tx, user, &ids).await?;
    let mut keys = Vec::new();
    for id in &ids {
        let Some((_, status, key)) = found.iter().find(|(f, _, _)| f == id) else {
            return Err(ApiError::NotFound);
        };
        if status != "completed" {
            return Err(ApiError::Conflict(format!(
                "upload {id} is not complete yet; finish it first"
            )));
        }
        keys.push(key.clone());
    }
    db::resumable::keep_archives(&mut tx, user, &ids, KEEP_ARCHIVE_DAYS).await?;
    let input = serde_json::json!({ "source": "api", "uploads": ids, "keys": keys,
                                    "from": from.to_ascii_lowercase() });
    let job_id = db::jobs::create_open(&mut tx, user, JobType::Import, input).await?;
    let job = db::jobs::get(&mut tx, user, job_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the import's job vanished".into()))?;
    tx.commit().await?;
    tracing::info!(job.id = %job_id, user.id = %user, archives = keys.len(), "import requested");
    tokio::spawn(run(state, user, job_id, keys, format));
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(ImportAccepted {
            job: views::job(&job, &[]),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{job_id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Runs an import with its heartbeat; a failure the archives cause fails the job with its
/// reason, one of the database or the store leaves it to be run again.
async fn run(state: AppState, user: Uuid, job: Uuid, keys: Vec<String>, format: Format) {
    // Stops beating however the run ends (a panic included), so another process takes it.
    let _beat = AbortOnDrop(tokio::spawn(heartbeat(state.pool.clone(), job)));
    let done = run_job(
        &state.pool,
        &state.storage,
        &state.limits,
        (user, job),
        &keys,
        format,
    )
    .await;
    drop(_beat);
    match done {
        Ok(()) => tracing::info!(job.id = %job, "import recorded"),
        Err(crate::cli::Error::Invalid(reason)) => fail(&state, job, &reason).await,
        Err(crate::cli::Error::Database(e)) if refused_data(&e) => {
            // The database refused what the archive holds: running it again changes nothing.
            fail(&state, job, "the archive holds data that cannot be stored").await;
            tracing::warn!(job.id = %job, error = %e, "import refused by the database");
        }
        Err(e) => {
            tracing::warn!(job.id = %job, error = %e, "import interrupted; it will be run again");
        }
    }
}

/// Ends the import's job as failed with `reason`.
async fn fail(state: &AppState, job: Uuid, reason: &str) {
    tracing::warn!(job.id = %job, %reason, "import failed");
    let failed = async {
        let mut tx = state.pool.begin().await?;
        db::jobs::fail_open(&mut tx, job, reason).await?;
        tx.commit().await
    };
    if let Err(e) = failed.await {
        tracing::warn!(job.id = %job, error = %e, "could not record the import's failure");
    }
}

/// Whether the database refused the data itself (SQLSTATE class 22, data exception; 23502, a
/// missing value; 23514, a check), as opposed to being unreachable or busy. Not a foreign key
/// or a unique key: those come of races (a file deleted meanwhile, another run), which pass.
fn refused_data(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c.starts_with("22") || c == "23502" || c == "23514")
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn heartbeat(pool: sqlx::PgPool, job: Uuid) {
    loop {
        let alive = async {
            let mut tx = pool.begin().await?;
            let alive = db::jobs::touch_open(&mut tx, job).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(alive)
        };
        if matches!(alive.await, Ok(false)) {
            return;
        }
        tokio::time::sleep(beat()).await;
    }
}

/// How long an import may stay silent before another process runs it again.
fn stall() -> Duration {
    std::env::var("TIMELINE_IMPORT_STALL_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(STALL, |s| Duration::from_secs(s.max(2)))
}

/// How often a running import marks itself alive: well inside the stall time.
fn beat() -> Duration {
    stall() / 6
}

/// Runs again the imports whose process stopped, looking every quarter of the stall time (any
/// web process may take one; the claim makes it one at a time).
pub async fn resume_stalled(state: AppState) {
    let stall = stall();
    loop {
        let claimed = async {
            let mut tx = state.pool.begin().await?;
            let rows =
                db::jobs::claim_stalled_api_imports(&mut tx, stall.as_secs_f64(), 10).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        };
        match claimed.await {
            Ok(rows) => {
                for db::jobs::StalledImport {
                    id: job,
                    user_id: user,
                    input,
                    restarts,
                } in rows
                {
                    if restarts > MAX_RESTARTS {
                        let reason = format!(
                            "the import stopped {MAX_RESTARTS} times without storing anything \
                             more; its archives may hold what it cannot read"
                        );
                        fail(&state, job, &reason).await;
                        continue;
                    }
                    let keys: Vec<String> = input["keys"]
                        .as_array()
                        .map(|k| {
                            k.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    let from = input["from"].as_str().unwrap_or("auto");
                    let format = Format::from_str(from, true).unwrap_or(Format::Auto);
                    tracing::warn!(job.id = %job, "running again an import whose process stopped");
                    tokio::spawn(run(state.clone(), user, job, keys, format));
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not look for stalled imports"),
        }
        tokio::time::sleep(stall / 4).await;
    }
}
