//! `GET /v1/jobs/{id}`: progress of a tracked job, for polling.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use uuid::Uuid;

use super::auth::{AuthUser, begin_as};
use super::{AppState, error::ApiError, views};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/jobs/{id}", get(get_job))
}

async fn get_job(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A malformed id is as unknown as another user's: 404, not 400.
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let mut tx = begin_as(&state.pool, user).await?;
    let job = crate::db::jobs::get(&mut tx, user, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(views::job(&job)))
}
