//! `/v1/media`: upload, read one, the timeline list (and its failures), thumbnails, the
//! original, retry and delete. Every query runs in a transaction scoped to the token's user.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::auth::{ReadTx, UserTx};
use super::docs::{BadRequest, Conflict, IdParam, NotFound, Unauthorized, Unavailable};
use super::views::{MediaPage, MediaView, RetryAccepted};
use super::{AppState, error::ApiError, range, upload, views};
use crate::db;
use crate::db::media::Cursor;
use crate::format::MediaFormat;
use crate::jobs;
use crate::models::ProcessingStatus;
use crate::storage::Rendition;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload::upload, list))
        .routes(routes!(detail, delete))
        .routes(routes!(original))
        .routes(routes!(thumbnail))
        .routes(routes!(retry))
        // The upload route counts bytes itself against the configured limits (no other media
        // route reads a body).
        .layer(DefaultBodyLimit::disable())
}

/// Ids in paths: a malformed one is as unknown as another user's.
pub(super) fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// A media file.
#[utoipa::path(get, path = "/v1/media/{id}", tag = "media", params(IdParam),
    responses((status = 200, body = MediaView), Unauthorized, NotFound, Unavailable))]
async fn detail(
    State(state): State<AppState>,
    read: ReadTx,
    Path(id): Path<String>,
) -> Result<Json<MediaView>, ApiError> {
    let id = parse_id(&id)?;
    let m = read
        .run(move |tx, user| {
            Box::pin(async move {
                db::media::detail(tx, user, id)
                    .await?
                    .ok_or(ApiError::NotFound)
            })
        })
        .await?;
    let retries = with_retries(&state, std::slice::from_ref(&m)).await?;
    retries
        .into_iter()
        .next()
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// Media views with their pending retry (`retry`: step, attempts, next attempt's time, last
/// error) for the files still on their way; queue rows are read outside the user's
/// row-level-security transaction, for ids that transaction already showed to be theirs.
pub(super) async fn with_retries(
    state: &AppState,
    rows: &[db::media::MediaDetail],
) -> Result<Vec<MediaView>, ApiError> {
    let waiting: Vec<Uuid> = rows
        .iter()
        .filter(|m| !m.processing_status.is_final())
        .map(|m| m.id)
        .collect();
    let retries = if waiting.is_empty() {
        Vec::new()
    } else {
        let mut tx = state.read_pool().begin().await?;
        db::queue::pending_retries(&mut tx, &waiting).await?
    };
    Ok(rows
        .iter()
        .map(|m| {
            let mut v = views::media(m);
            v.retry = views::retry(retries.iter().find(|r| r.media_id == m.id));
            v
        })
        .collect())
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Items per page, 1–200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only files in this state (`pending`, `processing`, `completed`, `failed`, `duplicate`).
    status: Option<String>,
}

/// Cursor text: `<timeline_at in µs>.<id>`; opaque to clients.
pub(super) fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}.{}", at.timestamp_micros(), id)
}

pub(super) fn decode_cursor(raw: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::BadRequest("invalid cursor".into());
    let (micros, id) = raw.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    Ok(Cursor {
        timeline_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
        id: id.parse().map_err(|_| bad())?,
    })
}

/// The user's media, newest first (by `taken_at`, else upload time), a page at a time.
#[utoipa::path(get, path = "/v1/media", tag = "media", params(ListQuery),
    responses((status = 200, body = MediaPage), BadRequest, Unauthorized, Unavailable))]
async fn list(
    State(state): State<AppState>,
    read: ReadTx,
    super::ApiQuery(q): super::ApiQuery<ListQuery>,
) -> Result<Json<MediaPage>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<ProcessingStatus>()
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        ),
    };
    let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let rows = read
        .run(move |tx, user| {
            Box::pin(async move { Ok(db::media::list(tx, user, status, cursor, limit + 1).await?) })
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let next = if more {
        page.last().map(|m| encode_cursor(m.timeline_at, m.id))
    } else {
        None
    };
    let items = with_retries(&state, page).await?;
    Ok(Json(MediaPage {
        items,
        next_cursor: next,
    }))
}

/// A rendition: `thumb` (250 px) or `preview` (1440 px), JPEG or WebP.
#[utoipa::path(get, path = "/v1/media/{id}/thumbnails/{kind}", tag = "media",
    params(IdParam, ("kind" = String, Path, description = "`thumb` or `preview`")),
    responses((status = 200, description = "the image", content_type = "image/*", body = Vec<u8>),
              Unauthorized, NotFound, Unavailable))]
async fn thumbnail(
    State(state): State<AppState>,
    UserTx { user, mut tx }: UserTx,
    Path((id, kind)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let rendition = match kind.as_str() {
        "thumb" => Rendition::Thumb,
        "preview" => Rendition::Preview,
        _ => return Err(ApiError::NotFound),
    };
    let id = parse_id(&id)?;
    let key = db::media::object_key(&mut *tx, user, id, rendition).await?;
    tx.commit().await?;
    let key = key.and_then(|(k, _)| k).ok_or(ApiError::NotFound)?;
    let bytes = state
        .storage
        .get(&object_store::path::Path::from(key))
        .await?;
    let mime = MediaFormat::sniff(&bytes).map_or("application/octet-stream", MediaFormat::mime);
    Ok(image_response(mime, Body::from(bytes)))
}

/// The original, streamed; a single HTTP `Range` (`bytes=a-b`, `a-`, `-n`) answers 206 with
/// just those bytes, so a player can seek in a video without downloading it whole. Several
/// ranges at once are answered with the whole file (200), as RFC 9110 allows.
#[utoipa::path(get, path = "/v1/media/{id}/original", tag = "media", params(IdParam,
        ("Range" = Option<String>, Header, description = "one byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`")),
    responses((status = 200, description = "the whole original, as its own type",
               content((Vec<u8> = "image/*"), (Vec<u8> = "video/*"), (Vec<u8> = "audio/*"), (Vec<u8> = "application/octet-stream"))),
              (status = 206, description = "the requested bytes",
               content((Vec<u8> = "image/*"), (Vec<u8> = "video/*"), (Vec<u8> = "audio/*"), (Vec<u8> = "application/octet-stream"))),
              (status = 416, description = "the range is outside the file"),
              Unauthorized, NotFound, Unavailable))]
async fn original(
    State(state): State<AppState>,
    UserTx { user, mut tx }: UserTx,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let row = db::media::object_key(&mut *tx, user, id, Rendition::Original).await?;
    tx.commit().await?;
    let (key, mime) = row.ok_or(ApiError::NotFound)?;
    let key = object_store::path::Path::from(key.ok_or(ApiError::NotFound)?);
    let mime = MediaFormat::from_mime(&mime).map_or("application/octet-stream", MediaFormat::mime);
    let size = state
        .storage
        .inner()
        .head(&key)
        .await
        .map_err(crate::storage::Error::from)?
        .size;
    let (status, range) = range::plan(&headers, size)?;
    let body = if range.is_empty() {
        Body::empty()
    } else {
        Body::from_stream(state.storage.stream_range(&key, range.clone()).await?)
    };
    let mut resp = image_response(mime, body);
    *resp.status_mut() = status;
    range::set_headers(resp.headers_mut(), status, &range, size);
    Ok(resp)
}

fn image_response(mime: &'static str, body: Body) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Deletes a media file, its renditions and its original (and its duplicates' rows).
#[utoipa::path(delete, path = "/v1/media/{id}", tag = "media", params(IdParam),
    responses((status = 204, description = "deleted"), Unauthorized, NotFound, Unavailable))]
async fn delete(
    State(state): State<AppState>,
    UserTx { user, mut tx }: UserTx,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let gone = db::uploads::delete(&mut tx, user, &[id]).await?;
    if gone.ids.is_empty() {
        return Err(ApiError::NotFound);
    }
    // The objects go with the rows' commit: named as to delete in the same transaction, so
    // a failed delete below is finished by the reconciler.
    let keys = crate::inflight::name_deleted(&mut tx, user, &gone.ids).await?;
    tx.commit().await?;
    for key in keys {
        if let Err(e) = crate::inflight::clean(&state.db, &state.storage, &key).await {
            tracing::warn!(error = %e, "could not delete a stored object yet; the reconciler will");
        }
    }
    if let Err(e) = forget_places(&state, user, &gone.places).await {
        tracing::warn!(error = %e, "could not delete the deleted file's place");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The places only the deleted files named, deleted in a transaction of their own once the
/// files' delete has committed (`db::uploads::delete_unused_places` says why).
async fn forget_places(state: &AppState, user: Uuid, places: &[Uuid]) -> Result<(), sqlx::Error> {
    if places.is_empty() {
        return Ok(());
    }
    let mut tx = super::auth::begin_as(&state.db, user).await?;
    db::uploads::delete_unused_places(&mut tx, user, places).await?;
    tx.commit().await
}

/// Puts a failed file through its failed steps again, as a new job.
#[utoipa::path(post, path = "/v1/media/{id}/retry", tag = "media", params(IdParam),
    responses((status = 202, body = RetryAccepted, headers(("Location" = String, description = "the job"))),
              Unauthorized, NotFound, Conflict, Unavailable))]
async fn retry(
    UserTx { user, mut tx }: UserTx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let current = db::media::detail(&mut *tx, user, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    // The user is waiting for this one: the interactive lane.
    let job = crate::ingest::retry(&mut tx, user, id, jobs::Lane::Interactive)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "media file is {}, only failed files can be retried",
                current.processing_status
            ))
        })?;
    tx.commit().await?;
    let location = format!("/v1/jobs/{}", job.id);
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(RetryAccepted {
            job: views::job(&job, &[]),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
