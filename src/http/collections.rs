//! `/v1/collections`: the user's collections (albums, made by imports) with their counts and
//! covers, and one collection's media in the shape of `GET /v1/media`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::ReadTx;
use super::docs::{BadRequest, IdParam, NotFound, Unauthorized, Unavailable};
use super::media::{decode_cursor, encode_cursor, parse_id, with_retries};
use super::views::{CollectionCover, CollectionPage, CollectionView, MediaPage};
use super::{ApiQuery, AppState, error::ApiError};
use crate::db;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(media))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Items per page, 1–200 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl PageQuery {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(50).clamp(1, 200)
    }
}

/// The user's collections, newest first, each with its number of media files and its cover.
#[utoipa::path(get, path = "/v1/collections", tag = "collections", params(PageQuery),
    responses((status = 200, body = CollectionPage), BadRequest, Unauthorized, Unavailable))]
async fn list(
    read: ReadTx,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<CollectionPage>, ApiError> {
    let limit = q.limit();
    let after = q
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .map(|c| (c.timeline_at, c.id));
    let rows = read
        .run(move |tx, user| {
            Box::pin(async move { Ok(db::collections::list(tx, user, after, limit + 1).await?) })
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let next_cursor = if more {
        page.last().map(|c| encode_cursor(c.created_at, c.id))
    } else {
        None
    };
    let items = page
        .iter()
        .map(|c| CollectionView {
            id: c.id,
            name: c.name.clone(),
            description: c.description.clone(),
            media_count: c.media_count,
            cover: c.cover_id.map(|id| CollectionCover {
                media_id: id,
                thumbnail: format!("/v1/media/{id}/thumbnails/thumb"),
            }),
        })
        .collect();
    Ok(Json(CollectionPage { items, next_cursor }))
}

/// A collection's media files, newest first, as `GET /v1/media` lists them.
#[utoipa::path(get, path = "/v1/collections/{id}/media", tag = "collections",
    params(IdParam, PageQuery),
    responses((status = 200, body = MediaPage), BadRequest, Unauthorized, NotFound, Unavailable))]
async fn media(
    State(state): State<AppState>,
    read: ReadTx,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<MediaPage>, ApiError> {
    let id = parse_id(&id)?;
    let limit = q.limit();
    let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let rows = read
        .run(move |tx, user| {
            Box::pin(async move {
                if !db::collections::exists(&mut *tx, user, id).await? {
                    return Err(ApiError::NotFound);
                }
                Ok(db::collections::media(&mut *tx, user, id, cursor, limit + 1).await?)
            })
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let next_cursor = if more {
        page.last().map(|m| encode_cursor(m.timeline_at, m.id))
    } else {
        None
    };
    let items = with_retries(&state, page).await?;
    Ok(Json(MediaPage { items, next_cursor }))
}
