//! tus 1.0.0 resumable uploads at `/v1/uploads`: the core protocol with the creation,
//! creation-with-upload, termination, expiration and checksum (sha256) extensions. The engine
//! (`crate::resumable`) streams each request's bytes into the store as they arrive and keeps
//! the offset and hash state in rows, so an upload resumes on any web process after a cut or
//! a kill; the request that stores the last byte makes the media file exactly as
//! `POST /v1/media` does. Also `POST /v1/media/exists`, so an app syncing a camera roll
//! uploads only what is new.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::auth::{AuthUser, begin_as};
use super::docs::{
    BadRequest, ChecksumMismatch, Conflict, IdParam, Locked, NotFound, PreconditionFailed,
    TooLarge, Unauthorized, Unavailable, Unsupported,
};
use super::{AppState, error::ApiError};
use crate::resumable::{self, Ctx, Declared, Status};

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Hashes one `POST /v1/media/exists` may ask about.
const MAX_EXISTS: usize = 5000;

/// How long an upload waits for its client between requests (`TIMELINE_UPLOAD_EXPIRY_SECS`,
/// default a day); each request that stores bytes pushes it back.
fn ttl() -> Duration {
    static TTL: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(|| {
        Duration::from_secs(
            std::env::var("TIMELINE_UPLOAD_EXPIRY_SECS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(86_400),
        )
    });
    *TTL
}

/// The routes, each answer carrying `Tus-Resumable`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(options, create))
        .routes(routes!(status, append, terminate))
        .layer(axum::middleware::map_response(tus_resumable))
        // The append route counts bytes itself against the upload's declared length.
        .layer(DefaultBodyLimit::disable())
}

/// `POST /v1/media/exists`.
pub fn exists_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(exists))
}

async fn tus_resumable(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    resp
}

fn ctx(state: &AppState) -> Ctx<'_> {
    Ctx {
        db: &state.db,
        storage: &state.storage,
        limits: &state.limits,
        ttl: ttl(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A tus client names the protocol version in every request but `OPTIONS`; another version is
/// refused (412). `POST` must name it (API.md lists it there); on `PATCH` and `DELETE`, which
/// API.md lists without it, a request that leaves it out is taken as 1.0.0, the only one.
fn check_version(headers: &HeaderMap, required: bool) -> Result<(), ApiError> {
    match header_str(headers, "tus-resumable") {
        Some(TUS_VERSION) => Ok(()),
        None if !required => Ok(()),
        _ => Err(ApiError::PreconditionFailed(format!(
            "Tus-Resumable: {TUS_VERSION} is required (Tus-Version: {TUS_VERSION})"
        ))),
    }
}

fn parse_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    header_str(headers, name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs. The filename is kept for display
/// only (sanitized like any upload's). An upload is an archive for `POST /v1/imports` when
/// `purpose` says `import`, or, without `purpose`, when it is declared a zip: `filetype` a zip
/// type or a filename ending `.zip` (API.md's form: `filename` and `filetype` only).
fn metadata_of(headers: &HeaderMap) -> Result<(String, bool), ApiError> {
    let mut name = None;
    let mut purpose = None;
    let mut filetype = None;
    for pair in header_str(headers, "upload-metadata")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let decoded = || {
            base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|_| ApiError::BadRequest(format!("Upload-Metadata: {key} is not base64")))
        };
        match key {
            "filename" => name = Some(String::from_utf8_lossy(&decoded()?).into_owned()),
            "filetype" => filetype = Some(String::from_utf8_lossy(&decoded()?).into_owned()),
            "purpose" => purpose = Some(decoded()?),
            _ => {}
        }
    }
    let archive = match purpose.as_deref() {
        Some(b"import") => true,
        Some(b"media") => false,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "Upload-Metadata: purpose is `media` or `import`".into(),
            ));
        }
        None => declared_zip(name.as_deref(), filetype.as_deref()),
    };
    Ok((super::upload::display_name(name.as_deref()), archive))
}

/// Whether the client declared a zip archive by its `filetype` or its filename.
fn declared_zip(name: Option<&str>, filetype: Option<&str>) -> bool {
    let zip_type = filetype.is_some_and(|t| {
        let essence = t.split(';').next().unwrap_or("").trim();
        [
            "application/zip",
            "application/x-zip-compressed",
            "application/x-zip",
        ]
        .iter()
        .any(|z| essence.eq_ignore_ascii_case(z))
    });
    let zip_name = name.is_some_and(|n| {
        n.len() > 4
            && n.get(n.len() - 4..)
                .is_some_and(|ext| ext.eq_ignore_ascii_case(".zip"))
    });
    zip_type || zip_name
}

/// `Upload-Checksum: sha256 <base64>`.
fn checksum_of(headers: &HeaderMap) -> Result<Option<[u8; 32]>, ApiError> {
    let Some(v) = header_str(headers, "upload-checksum") else {
        return Ok(None);
    };
    let (algo, digest) = v.split_once(' ').unwrap_or((v, ""));
    if !algo.eq_ignore_ascii_case("sha256") {
        return Err(ApiError::BadRequest(format!(
            "checksum algorithm {algo:?} is not supported (Tus-Checksum-Algorithm: sha256)"
        )));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|_| ApiError::BadRequest("Upload-Checksum is not base64".into()))?;
    let digest: [u8; 32] = raw
        .try_into()
        .map_err(|_| ApiError::BadRequest("Upload-Checksum is not a SHA-256 digest".into()))?;
    Ok(Some(digest))
}

fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The headers that say where an upload stands.
fn status_headers(s: &Status, headers: &mut HeaderMap) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("upload-offset", s.offset.to_string());
    put("upload-expires", http_date(s.expires_at));
    if let Some(m) = s.media_id {
        put("timeline-media-id", m.to_string());
    }
    if let Some(j) = s.job_id {
        put("timeline-job-id", j.to_string());
    }
}

/// The request's body as the engine takes it.
fn body_stream(
    req: Request,
) -> impl futures::Stream<Item = Result<bytes::Bytes, String>> + Send + 'static {
    req.into_body()
        .into_data_stream()
        .map(|c| c.map_err(|e| format!("could not read the request body: {e}")))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// What this server supports.
#[utoipa::path(options, path = "/v1/uploads", tag = "uploads", security(()),
    responses((status = 204, description = "the tus protocol, extensions and limits",
               headers(("Tus-Version" = String), ("Tus-Extension" = String),
                       ("Tus-Max-Size" = u64), ("Tus-Checksum-Algorithm" = String)))))]
async fn options(State(state): State<AppState>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    h.insert("tus-checksum-algorithm", HeaderValue::from_static("sha256"));
    if let Ok(v) = HeaderValue::from_str(&state.limits.max_file_bytes.to_string()) {
        h.insert("tus-max-size", v);
    }
    resp
}

/// Creates a resumable upload of `Upload-Length` bytes (`Upload-Metadata: filename <base64>`),
/// optionally with its first bytes (`Content-Type: application/offset+octet-stream`).
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads",
    request_body(description = "optionally the first bytes",
                 content((Vec<u8> = "application/offset+octet-stream"))),
    responses((status = 201, description = "created",
               headers(("Location" = String, description = "the upload"),
                       ("Upload-Offset" = u64), ("Upload-Expires" = String))),
              BadRequest, Unauthorized, Conflict, PreconditionFailed, TooLarge, Unsupported,
              ChecksumMismatch, Unavailable))]
async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    req: Request,
) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    check_version(&headers, true)?;
    if header_str(&headers, "upload-defer-length").is_some() {
        return Err(ApiError::BadRequest(
            "Upload-Defer-Length is not supported: send Upload-Length".into(),
        ));
    }
    let length = parse_u64(&headers, "upload-length")?
        .ok_or_else(|| ApiError::BadRequest("Upload-Length is required".into()))?;
    let (filename, archive) = metadata_of(&headers)?;
    let declared = Declared {
        length,
        filename,
        archive,
    };
    let checksum = checksum_of(&headers)?;
    let with_upload = header_str(&headers, "content-type") == Some(OFFSET_OCTET_STREAM)
        && parse_u64(&headers, "content-length")? != Some(0);
    let ctx = ctx(&state);
    let mut status = resumable::create(ctx, user, &declared).await?;
    if with_upload {
        let chunk = resumable::Chunk {
            offset: 0,
            declared: parse_u64(&headers, "content-length")?,
            checksum,
        };
        match resumable::append(ctx, user, status.id, chunk, body_stream(req)).await {
            Ok(s) => status = s,
            Err(e) => {
                // Nothing to resume from: the client has no Location.
                let _ = resumable::terminate(ctx, user, status.id).await;
                return Err(e.into());
            }
        }
    }
    let mut resp = StatusCode::CREATED.into_response();
    status_headers(&status, resp.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/uploads/{}", status.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Where an upload stands (tus `HEAD`; `GET` also answers in JSON).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UploadView {
    /// Bytes stored so far.
    offset: i64,
    /// The declared size.
    length: i64,
    /// When an unfinished upload is deleted.
    expires_at: chrono::DateTime<chrono::Utc>,
    /// The media file it became, once complete.
    media_id: Option<Uuid>,
    /// The job processing it, once complete.
    job_id: Option<Uuid>,
}

/// An upload's offset, length and expiry (as headers, and as JSON).
#[utoipa::path(get, path = "/v1/uploads/{id}", tag = "uploads", params(IdParam),
    responses((status = 200, body = UploadView,
               headers(("Upload-Offset" = u64), ("Upload-Length" = u64),
                       ("Upload-Expires" = String), ("Cache-Control" = String))),
              Unauthorized, NotFound, Conflict, Unavailable))]
async fn status(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = resumable::status(ctx(&state), user, parse_id(&id)?).await?;
    let mut resp = axum::Json(UploadView {
        offset: s.offset,
        length: s.length,
        expires_at: s.expires_at,
        media_id: s.media_id,
        job_id: s.job_id,
    })
    .into_response();
    let h = resp.headers_mut();
    status_headers(&s, h);
    if let Ok(v) = HeaderValue::from_str(&s.length.to_string()) {
        h.insert("upload-length", v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Appends bytes at `Upload-Offset` (`Content-Type: application/offset+octet-stream`,
/// optionally `Upload-Checksum: sha256 <base64>` of this body). The request that stores the
/// last byte makes the media file; its answer names it (`Timeline-Media-Id`, `Timeline-Job-Id`).
#[utoipa::path(patch, path = "/v1/uploads/{id}", tag = "uploads", params(IdParam),
    request_body(content((Vec<u8> = "application/offset+octet-stream"))),
    responses((status = 204, description = "stored",
               headers(("Upload-Offset" = u64), ("Upload-Expires" = String),
                       ("Timeline-Media-Id" = String), ("Timeline-Job-Id" = String))),
              BadRequest, Unauthorized, NotFound, Conflict, PreconditionFailed, Unsupported,
              Locked, ChecksumMismatch, Unavailable))]
async fn append(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let headers = req.headers().clone();
    check_version(&headers, false)?;
    if header_str(&headers, "content-type") != Some(OFFSET_OCTET_STREAM) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "a PATCH carries Content-Type: {OFFSET_OCTET_STREAM}"
        )));
    }
    let offset = parse_u64(&headers, "upload-offset")?
        .ok_or_else(|| ApiError::BadRequest("Upload-Offset is required".into()))?;
    let offset = i64::try_from(offset)
        .map_err(|_| ApiError::BadRequest("Upload-Offset is too large".into()))?;
    let checksum = checksum_of(&headers)?;
    let declared = parse_u64(&headers, "content-length")?;
    let chunk = resumable::Chunk {
        offset,
        declared,
        checksum,
    };
    let s = resumable::append(ctx(&state), user, id, chunk, body_stream(req)).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    status_headers(&s, resp.headers_mut());
    Ok(resp)
}

/// Deletes an unfinished upload and what it stored.
#[utoipa::path(delete, path = "/v1/uploads/{id}", tag = "uploads", params(IdParam),
    responses((status = 204, description = "deleted"), Unauthorized, NotFound,
              PreconditionFailed, Unavailable))]
async fn terminate(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&headers, false)?;
    resumable::terminate(ctx(&state), user, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Which of these SHA-256 hashes the caller already has.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct ExistsRequest {
    /// Up to 5,000 SHA-256 digests, hex.
    sha256: Vec<String>,
}

/// The caller's media files with those hashes.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExistsView {
    /// hash → media id, for the hashes the caller already has.
    existing: std::collections::BTreeMap<String, Uuid>,
}

/// Which of these hashes the caller already has (so an app uploads only what is new).
#[utoipa::path(post, path = "/v1/media/exists", tag = "media", request_body = ExistsRequest,
    responses((status = 200, body = ExistsView), BadRequest, Unauthorized, Unavailable))]
async fn exists(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    body: Body,
) -> Result<axum::Json<ExistsView>, ApiError> {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|_| ApiError::PayloadTooLarge("the request is over 1 MiB".into()))?;
    let req: ExistsRequest = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::BadRequest("expected {\"sha256\": [\"<hex>\", ...]}".into()))?;
    if req.sha256.len() > MAX_EXISTS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_EXISTS} hashes per request"
        )));
    }
    let hashes: Vec<String> = req
        .sha256
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if let Some(bad) = hashes
        .iter()
        .find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::BadRequest(format!(
            "{bad:?} is not a SHA-256 digest in hex"
        )));
    }
    let mut tx = begin_as(&state.db, user).await?;
    let found = crate::db::media::existing_hashes(&mut tx, user, &hashes).await?;
    tx.commit().await?;
    // Keyed by each hash as the client sent it (case and all), so that it finds its own.
    let found: std::collections::HashMap<String, Uuid> = found.into_iter().collect();
    let existing = req
        .sha256
        .into_iter()
        .zip(&hashes)
        .filter_map(|(sent, lower)| found.get(lower).map(|id| (sent, *id)))
        .collect();
    Ok(axum::Json(ExistsView { existing }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&str, &str)]) -> HeaderMap {
        use base64::Engine as _;
        let value = pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {}",
                    base64::engine::general_purpose::STANDARD.encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut h = HeaderMap::new();
        h.insert("upload-metadata", value.parse().expect("header"));
        h
    }

    fn archive(pairs: &[(&str, &str)]) -> bool {
        metadata_of(&metadata(pairs)).expect("metadata").1
    }

    #[test]
    fn a_declared_zip_is_an_archive_and_purpose_decides_first() {
        assert!(archive(&[
            ("filename", "x.bin"),
            ("filetype", "application/zip")
        ]));
        assert!(archive(&[("filetype", "Application/ZIP; charset=binary")]));
        assert!(archive(&[("filetype", "application/x-zip-compressed")]));
        assert!(archive(&[("filename", "Export.ZIP")]));
        assert!(archive(&[("filename", "a.jpg"), ("purpose", "import")]));
        assert!(!archive(&[("filename", "a.zip"), ("purpose", "media")]));
        assert!(!archive(&[
            ("filename", "a.jpg"),
            ("filetype", "image/jpeg")
        ]));
        assert!(!archive(&[("filename", ".zip")]));
        assert!(!archive(&[]));
        assert!(metadata_of(&metadata(&[("purpose", "other")])).is_err());
    }
}
