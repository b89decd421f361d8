//! `DELETE /v1/account`: the right to erasure. The request is recorded (from then on the
//! account takes no uploads) and answered at once with the erasure job; a worker runs it (a
//! task of the `library` queue, queued with the request), and the reconciler finishes it if
//! that worker stops. Once it completes
//! nothing of the user remains and their token answers 401.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::AuthUser;
use super::docs::{BadRequest, Unauthorized, Unavailable};
use super::views::{self, ErasureAccepted};
use super::{ApiJson, AppState, error::ApiError};
use crate::db;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase))
}

/// What `DELETE /v1/account` must carry: the account's own email address, as a confirmation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EraseRequest {
    pub confirm: String,
}

/// Erases the account: every row and stored object of the user, their tokens included.
#[utoipa::path(delete, path = "/v1/account", tag = "account", request_body = EraseRequest,
    responses((status = 202, body = ErasureAccepted, headers(("Location" = String, description = "the job"))),
              BadRequest, Unauthorized, Unavailable))]
async fn erase(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<EraseRequest>,
) -> Result<Response, ApiError> {
    // Every statement inside a transaction: behind a transaction pooler one outside may
    // reach another server connection than the one that prepared it.
    let mut tx = state.db.begin().await?;
    let email = db::users::email_of(&mut *tx, user)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if !body.confirm.trim().eq_ignore_ascii_case(&email) {
        return Err(ApiError::BadRequest(
            "`confirm` must be this account's email address".into(),
        ));
    }
    // A worker runs it (the `library` queue); the task commits with the request.
    let job_id = crate::erasure::request_queued(&mut tx, user)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let job = db::jobs::get(&mut tx, user, job_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the erasure job vanished".into()))?;
    tx.commit().await?;
    tracing::info!(job.id = %job_id, "account erasure requested");
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(ErasureAccepted {
            job: views::job(&job, &[]),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{job_id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
