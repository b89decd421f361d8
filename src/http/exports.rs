//! `/v1/exports`: the right of access. A request starts (or joins) an export job that writes
//! the user's library as one zip into the store (see `crate::export`); its state says when it
//! is ready, and the archive downloads with `Range`, so a broken download resumes, until it
//! expires. A worker writes it (a task of the `library` queue, queued with the export's row);
//! the reconciler resumes it if that worker stops.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::{AuthUser, UserTx};
use super::docs::{Conflict, IdParam, NotFound, Unauthorized, Unavailable};
use super::media::parse_id;
use super::range;
use super::views::{self, ExportAccepted, ExportView};
use super::{AppState, error::ApiError};
use crate::db;
use crate::jobs::LibraryTask;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(status))
        .routes(routes!(archive))
}

/// Starts an export of the whole library (or answers with the one already under way).
#[utoipa::path(post, path = "/v1/exports", tag = "exports",
    responses((status = 202, body = ExportAccepted,
               headers(("Location" = String, description = "the export"))),
              Unauthorized, Conflict, Unavailable))]
async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Response, ApiError> {
    if db::uploads::admission(&state.db, user).await?.erasing {
        return Err(ApiError::Conflict(
            "this account is being erased; it cannot be exported any more".into(),
        ));
    }
    // Every statement inside a transaction (a transaction pooler may sit in front).
    let mut tx = state.db.begin().await?;
    let (id, job_id, new) = crate::export::request(&mut tx, user).await?;
    if new {
        // A worker writes it (the `library` queue); the task commits with the export's row.
        crate::jobs::enqueue_library(&mut tx, LibraryTask::Export { export_id: id }).await?;
    }
    let job = db::jobs::get(&mut tx, user, job_id)
        .await?
        .ok_or_else(|| ApiError::Internal("the export's job vanished".into()))?;
    let row = db::exports::get(&mut *tx, user, id)
        .await?
        .ok_or_else(|| ApiError::Internal("the export vanished".into()))?;
    tx.commit().await?;
    if new {
        tracing::info!(export.id = %id, job.id = %job_id, "export requested");
    }
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(ExportAccepted {
            export: views::export(&row),
            job: views::job(&job, &[]),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/exports/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// An export's state: its progress, and once written its size, expiry and download link.
#[utoipa::path(get, path = "/v1/exports/{id}", tag = "exports", params(IdParam),
    responses((status = 200, body = ExportView), Unauthorized, NotFound, Unavailable))]
async fn status(
    UserTx { user, mut tx }: UserTx,
    Path(id): Path<String>,
) -> Result<Json<ExportView>, ApiError> {
    let id = parse_id(&id)?;
    let row = db::exports::get(&mut *tx, user, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(views::export(&row)))
}

/// The archive (a zip); one byte range per request, so a broken download resumes.
#[utoipa::path(get, path = "/v1/exports/{id}/archive", tag = "exports", params(IdParam,
        ("Range" = Option<String>, Header, description = "one byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`")),
    responses((status = 200, description = "the whole archive", content((Vec<u8> = "application/zip"))),
              (status = 206, description = "the requested bytes", content((Vec<u8> = "application/zip"))),
              (status = 416, description = "the range is outside the archive"),
              Unauthorized, NotFound, Conflict, Unavailable))]
async fn archive(
    State(state): State<AppState>,
    UserTx { user, mut tx }: UserTx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let row = db::exports::get(&mut *tx, user, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    match row.status.as_str() {
        "completed" => {}
        "expired" => return Err(ApiError::NotFound),
        other => {
            return Err(ApiError::Conflict(format!(
                "the archive is not ready: the export is {other}"
            )));
        }
    }
    let key = object_store::path::Path::from(row.object_key.clone());
    let size = state
        .storage
        .size_of(&key)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (status, range) = range::plan(&headers, size)?;
    let body = if range.is_empty() {
        Body::empty()
    } else {
        Body::from_stream(state.storage.stream_range(&key, range.clone()).await?)
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"timeline-export-{}.zip\"",
        row.created_at.format("%Y%m%d")
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // The archive never changes once written: its id names this version.
    if let Ok(v) = HeaderValue::from_str(&format!("\"{id}\"")) {
        h.insert(header::ETAG, v);
    }
    range::set_headers(h, status, &range, size);
    Ok(resp)
}
