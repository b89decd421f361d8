//! `POST /v1/imports`: an import of archives the user uploaded through tus with
//! `Upload-Metadata: purpose import`. The zips are read where they are in the store (ranged
//! reads, central directory first), by the same importer as `timeline import`, on one tracked
//! `import` job; what it left out, and why, is in the job's output (`skipped`). A worker runs
//! it (a task of the `library` queue, queued with the job; see `crate::import::api`).

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
use crate::db;
use crate::import::job::Format;
use crate::jobs::LibraryTask;
use crate::models::JobType;

/// Archives per import: the parts of one export.
const MAX_ARCHIVES: usize = 100;
/// Days an import's archives are kept from its request on, whatever their uploads' expiry.
const KEEP_ARCHIVE_DAYS: i32 = 7;

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
    // Checked here, so that a wrong name is the request's error; the worker reads it again.
    Format::from_str(from, true).map_err(|_| {
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
    if db::uploads::admission(&state.db, user).await?.erasing {
        return Err(ApiError::Conflict(
            "this account is being erased; it takes no imports".into(),
        ));
    }
    let mut tx = state.db.begin().await?;
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
    let input = crate::import::api::input(&ids, &keys, from, &state.limits);
    let job_id = db::jobs::create_open(&mut tx, user, JobType::Import, input).await?;
    crate::jobs::enqueue_library(&mut tx, LibraryTask::Import { job_id }).await?;
    let job = db::jobs::get(&mut tx, user, job_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the import's job vanished".into()))?;
    tx.commit().await?;
    tracing::info!(job.id = %job_id, user.id = %user, archives = keys.len(), "import requested");
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
