//! `POST /v1/media`: streams each file to the object store under a system-made key, decides
//! its type from its first bytes, then records rows, job and queue tasks in ONE transaction.
//! An upload session (committed before the first byte) names every object first; when anything
//! is refused or fails, the session is aborted and what it stored deleted, unless the
//! transaction in fact committed (an error at COMMIT), which the session's row tells.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::{ObjectStoreExt, WriteMultipart};
use uuid::Uuid;

use super::auth::{AuthUser, begin_as};
use super::docs::{BadRequest, Conflict, TooLarge, Unauthorized, Unavailable, Unsupported};
use super::views::{AcceptedMedia, JobSummary, UploadAccepted};
use super::{AppState, error::ApiError};
use crate::db::uploads::NewMedia;
use crate::format::{MediaFormat, SNIFF_LEN};
use crate::inflight::{Abandoned, Protocol, UploadSession};
use crate::storage::{Rendition, Storage};

/// Query of a raw (non-multipart) upload.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawQuery {
    /// The file's name, for a raw (non-multipart) body.
    filename: Option<String>,
}

/// What this request stored.
struct Stored {
    user: Uuid,
    media: Vec<NewMedia>,
    bytes_total: u64,
    /// The account's storage quota and what it held when the request began (`None`: no quota).
    quota: Option<Quota>,
}

#[derive(Debug, Clone, Copy)]
struct Quota {
    limit: u64,
    used: u64,
}

/// A failed upload, with the answer it would have had when the failure was at COMMIT (whose
/// outcome the session's row then decides).
struct Failed {
    error: ApiError,
    accepted: Option<UploadAccepted>,
}

impl From<ApiError> for Failed {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            accepted: None,
        }
    }
}

/// Uploads photos, videos and audio: `multipart/form-data` with parts named `file`, or a raw
/// body with `?filename=`. Streamed to the store; answers at once with the job to follow.
#[utoipa::path(post, path = "/v1/media", tag = "media", params(RawQuery),
    request_body(description = "multipart/form-data (parts named `file`) or the raw bytes of one file",
        content((Vec<u8> = "multipart/form-data"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 202, body = UploadAccepted, headers(("Location" = String, description = "the job"))),
              BadRequest, Unauthorized, Conflict, TooLarge, Unsupported, Unavailable))]
pub async fn upload(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    super::ApiQuery(query): super::ApiQuery<RawQuery>,
    req: Request,
) -> Result<impl IntoResponse, ApiError> {
    let quota = admit(&state, user).await?;
    let mut stored = Stored {
        user,
        media: Vec::new(),
        bytes_total: 0,
        quota,
    };
    let session = UploadSession::open(state.db.clone(), user, Protocol::Form).await?;
    let result = receive(&state, &mut stored, &session, query, req).await;
    let result = match result {
        Ok(()) if stored.media.is_empty() => {
            Err(ApiError::BadRequest("no file in the request".into()).into())
        }
        Ok(()) => record(&state, &stored, &session).await,
        Err(e) => Err(e.into()),
    };
    let body = match result {
        Ok(body) => body,
        Err(failed) => match (session.abandon(&state.storage).await, failed.accepted) {
            (Abandoned::Committed, Some(body)) => {
                tracing::warn!(job.id = %body.job.id, error = %failed.error,
                               "the upload's commit reported an error but went through");
                body
            }
            _ => return Err(failed.error),
        },
    };
    let location = format!("/v1/jobs/{}", body.job.id);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, axum::Json(body)))
}

/// Refuses the upload before its body when the account is being erased or its quota is full;
/// returns the quota and use (`None`: no quota).
async fn admit(state: &AppState, user: Uuid) -> Result<Option<Quota>, ApiError> {
    let admission = crate::db::uploads::admission(&state.db, user).await?;
    if admission.erasing {
        return Err(ApiError::Conflict(
            "this account is being erased; it takes no uploads".into(),
        ));
    }
    let Some(limit) = state.limits.user_quota_bytes else {
        return Ok(None);
    };
    let used = admission.used;
    if used >= limit {
        return Err(over_quota(limit, used));
    }
    Ok(Some(Quota { limit, used }))
}

fn over_quota(quota: u64, used: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "this account's storage quota is full: {used} of {quota} bytes used; delete some files \
         or ask the operator for more room"
    ))
}

/// Reads every file of the request into the store.
async fn receive(
    state: &AppState,
    stored: &mut Stored,
    session: &UploadSession,
    query: RawQuery,
    req: Request,
) -> Result<(), ApiError> {
    let limits = &state.limits;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let multipart = content_type.starts_with("multipart/form-data");
    // A declared size over the limit is refused before a byte of the body is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = if multipart {
        limits.max_request_bytes
    } else {
        limits.max_file_bytes.min(limits.max_request_bytes)
    };
    if let Some(len) = declared
        && len > limit
    {
        return Err(ApiError::PayloadTooLarge(format!(
            "the request declares {len} bytes, over the {limit}-byte limit"
        )));
    }
    if multipart {
        let boundary = super::part_headers::boundary_of(content_type).ok_or_else(|| {
            ApiError::BadRequest("the multipart content type names no boundary".into())
        })?;
        // Each part's header block is capped before the parser buffers it.
        let (head, body) = req.into_parts();
        let (guarded, tripped) =
            super::part_headers::Guarded::new(body.into_data_stream(), &boundary);
        let req = Request::from_parts(head, axum::body::Body::from_stream(guarded));
        let part_error = |e| match tripped.is_set() {
            true => ApiError::HeaderFieldsTooLarge(format!(
                "a part's headers are over {} bytes",
                super::part_headers::MAX_PART_HEADER_BYTES
            )),
            false => multipart_error(e),
        };
        let mut multipart = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let mut parts = 0usize;
        while let Some(mut field) = multipart.next_field().await.map_err(part_error)? {
            parts += 1;
            if parts > limits.max_parts {
                return Err(ApiError::PayloadTooLarge(format!(
                    "more than {} parts in one request",
                    limits.max_parts
                )));
            }
            if field.name() != Some("file") {
                // Other form fields are ignored, but their bytes count toward the limit.
                while let Some(chunk) = field.chunk().await.map_err(part_error)? {
                    stored.bytes_total += chunk.len() as u64;
                    if stored.bytes_total > limits.max_request_bytes {
                        return Err(ApiError::PayloadTooLarge(format!(
                            "the request exceeds the {}-byte limit",
                            limits.max_request_bytes
                        )));
                    }
                }
                continue;
            }
            let name = display_name(part_filename(&field).as_deref());
            let stream = field.map(|c| c.map_err(part_error));
            store_one(state, stored, session, name, stream).await?;
        }
        Ok(())
    } else {
        let name = display_name(query.filename.as_deref());
        let stream = req
            .into_body()
            .into_data_stream()
            .map(|c| c.map_err(|e| body_error(&e)));
        store_one(state, stored, session, name, stream).await
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(e.body_text())
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}

fn body_error(e: &axum::Error) -> ApiError {
    ApiError::BadRequest(format!("could not read the request body: {e}"))
}

/// Longest filename kept, in characters.
const MAX_NAME_CHARS: usize = 255;
/// Longest extension a long name keeps when it is shortened.
const MAX_EXTENSION_CHARS: usize = 16;

/// The client's filename, kept for display only: path components, control characters and
/// invisible format characters (bidi overrides that make `gpj.exe` look like `exe.jpg`,
/// zero-width characters) removed, at most 255 characters; a longer name is shortened in its
/// stem, so that it keeps its extension.
pub(super) fn display_name(raw: Option<&str>) -> String {
    let base = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let clean: Vec<char> = base
        .chars()
        .filter(|c| !c.is_control() && !is_format_char(*c))
        .collect();
    let clean: String = if clean.len() <= MAX_NAME_CHARS {
        clean.into_iter().collect()
    } else {
        let dot = clean
            .iter()
            .rposition(|c| *c == '.')
            .filter(|d| clean.len() - d <= MAX_EXTENSION_CHARS + 1);
        let ext = dot.map_or(&[][..], |d| &clean[d..]);
        clean[..MAX_NAME_CHARS - ext.len()]
            .iter()
            .chain(ext)
            .collect()
    };
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "upload".to_owned()
    } else {
        clean.to_owned()
    }
}

/// The filename a multipart part names. RFC 6266 §4.3: `filename*` (RFC 8187, UTF-8 and
/// percent-encoded) wins over `filename`, which multer alone reads.
fn part_filename(field: &axum::extract::multipart::Field<'_>) -> Option<String> {
    field
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(extended_filename)
        .or_else(|| field.file_name().map(str::to_owned))
}

/// The `filename*=UTF-8''…` parameter of a Content-Disposition value, decoded. (A dozen lines
/// of percent-decoding here rather than a crate for one parameter.)
fn extended_filename(disposition: &str) -> Option<String> {
    let value = disposition.split(';').find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("filename*")
            .then(|| value.trim())
    })?;
    let (charset, rest) = value.split_once('\'')?;
    let (_language, encoded) = rest.split_once('\'')?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut it = encoded.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

/// Unicode general category Cf (format characters: bidi controls, zero-width joiners and
/// spaces, the BOM, tag characters …), from the Unicode 15 tables; std has no category lookup
/// and this is the whole list, so a table beats a dependency.
fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// Streams one file: sniff the head, then write chunks to a multipart upload, enforcing limits.
async fn store_one<S>(
    state: &AppState,
    stored: &mut Stored,
    session: &UploadSession,
    filename: String,
    mut body: S,
) -> Result<(), ApiError>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Unpin,
{
    let limits = &state.limits;
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let mut pending: Vec<Bytes> = Vec::new();
    // Gather enough bytes to decide the type before storing anything.
    while head.len() < SNIFF_LEN {
        match body.next().await.transpose()? {
            Some(chunk) => {
                head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_LEN - head.len())]);
                pending.push(chunk);
            }
            None => break,
        }
    }
    let media_type = MediaFormat::sniff(&head).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "{filename:?} is not a photo, video or audio file this system can handle \
             (JPEG, PNG, WebP, GIF, TIFF, HEIC; MP4, MOV, M4V, 3GP, WebM, MKV, AVI; \
             M4A, MP3, WAV, OGG, FLAC)"
        ))
    })?;
    if !state.limits.allows(media_type) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "{filename:?} is {}, a type this server does not accept (upload.allowed_types)",
            media_type.mime()
        )));
    }
    let id = Uuid::new_v4();
    let key = Storage::key(stored.user, id, Rendition::Original);
    session.name(&key, id).await?;
    let upload = state
        .storage
        .inner()
        .put_multipart(&key)
        .await
        .map_err(crate::storage::Error::from)?;
    // Parts sized so that the largest file allowed fits S3's 10,000 parts.
    let part = crate::storage::part_size_for(limits.max_file_bytes);
    let mut writer =
        WriteMultipart::new_with_chunk_size(upload, usize::try_from(part).unwrap_or(usize::MAX));
    let mut size: u64 = 0;
    let mut hasher = timeline_media::hash::StreamHasher::new();
    // The container's framing is walked as it arrives: magic bytes followed by anything else
    // stop here, not after the whole body is stored.
    let mut structure = timeline_media::structure::StructureCheck::new(media_type);
    let mut next = futures::stream::iter(pending.into_iter().map(Ok)).chain(body);
    while let Some(chunk) = next.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        size += chunk.len() as u64;
        session.received(chunk.len() as u64);
        if let Some(q) = stored.quota
            && q.used + stored.bytes_total + size > q.limit
        {
            let _ = writer.abort().await;
            return Err(over_quota(q.limit, q.used + stored.bytes_total + size));
        }
        if size > limits.max_file_bytes || stored.bytes_total + size > limits.max_request_bytes {
            let _ = writer.abort().await;
            return Err(ApiError::PayloadTooLarge(format!(
                "{filename:?} exceeds the upload limit ({} bytes per file, {} per request)",
                limits.max_file_bytes, limits.max_request_bytes
            )));
        }
        if !structure.settled()
            && let Err(e) = structure.feed(&chunk)
        {
            let _ = writer.abort().await;
            return Err(ApiError::UnsupportedMediaType(format!(
                "{filename:?} is {e}"
            )));
        }
        writer
            .wait_for_capacity(4)
            .await
            .map_err(crate::storage::Error::from)?;
        hasher.update(&chunk);
        writer.write(&chunk);
    }
    writer.finish().await.map_err(crate::storage::Error::from)?;
    stored.bytes_total += size;
    stored.media.push(NewMedia {
        id,
        user_id: stored.user,
        filename,
        file_path: key.to_string(),
        file_size: i64::try_from(size).unwrap_or(i64::MAX),
        mime_type: media_type.mime(),
        sha256: Some(hasher.finish()),
    });
    Ok(())
}

/// One transaction: the session's end, media rows, the tracked job, its media links and the
/// first queue tasks.
async fn record(
    state: &AppState,
    stored: &Stored,
    session: &UploadSession,
) -> Result<UploadAccepted, Failed> {
    let mut tx = begin_as(&state.db, stored.user)
        .await
        .map_err(ApiError::from)?;
    let keys: Vec<String> = stored.media.iter().map(|m| m.file_path.clone()).collect();
    if !session
        .end_in(&mut tx, &keys)
        .await
        .map_err(ApiError::from)?
    {
        return Err(ApiError::Conflict(
            "the upload stalled and was cancelled by the server; send it again".into(),
        )
        .into());
    }
    let lane = crate::jobs::Lane::Interactive;
    let job = crate::ingest::submit(&mut tx, stored.user, &stored.media, lane)
        .await
        .map_err(ApiError::from)?;
    // Concurrent uploads each checked the quota alone: the rows now say what the account
    // holds (the counter's row stays locked until this commits, so the check is exact).
    if let Some(quota) = state.limits.user_quota_bytes {
        let used = crate::db::uploads::storage_used(&mut *tx, stored.user)
            .await
            .map_err(ApiError::from)?;
        if used > quota {
            return Err(over_quota(quota, used).into());
        }
    }
    // Crash tests kill the server here: objects stored, rows written, nothing committed.
    crate::test_pause!("TIMELINE_TEST_PAUSE_BEFORE_COMMIT_SECS");
    let accepted = accepted(stored, &job);
    if let Err(e) = tx.commit().await {
        return Err(Failed {
            error: e.into(),
            accepted: Some(accepted),
        });
    }
    tracing::info!(job.id = %job.id, files = stored.media.len(), size_bytes = stored.bytes_total, "upload accepted");
    Ok(accepted)
}

/// The answer to an accepted upload.
fn accepted(stored: &Stored, job: &crate::models::system::DataProcessingJob) -> UploadAccepted {
    let media = stored
        .media
        .iter()
        .map(|m| AcceptedMedia {
            id: m.id,
            filename: m.filename.clone(),
            processing_status: "pending".into(),
        })
        .collect();
    UploadAccepted {
        job: JobSummary {
            id: job.id,
            job_type: job.job_type.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            progress: job.progress,
        },
        media,
    }
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn names_lose_paths_controls_and_invisible_format_characters() {
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(display_name(Some("C:\\x\\a.jpg")), "a.jpg");
        assert_eq!(display_name(Some("photo\u{202E}gpj.exe")), "photogpj.exe");
        assert_eq!(
            display_name(Some("a\u{200B}b\u{FEFF}c\u{2066}d.jpg")),
            "abcd.jpg"
        );
        assert_eq!(display_name(Some("\u{202E}")), "upload");
        // Too long: the stem is cut, the extension kept.
        let long = format!("{}.jpeg", "é".repeat(300));
        let kept = display_name(Some(&long));
        assert_eq!(kept.chars().count(), 255);
        assert!(kept.ends_with("é.jpeg"), "{kept}");
        // No short extension to keep: cut at 255.
        assert_eq!(display_name(Some(&"x".repeat(300))).len(), 255);
    }

    #[test]
    fn filename_star_is_decoded_and_wins() {
        use super::extended_filename;
        assert_eq!(
            extended_filename(
                "form-data; name=\"file\"; filename=\"EURO rates.jpg\"; filename*=UTF-8''%E2%82%AC%20rates.jpg"
            )
            .as_deref(),
            Some("€ rates.jpg")
        );
        assert_eq!(
            extended_filename("attachment; FILENAME*=iso-8859-1'en'%A3%20rates.jpg").as_deref(),
            Some("£ rates.jpg")
        );
        assert_eq!(extended_filename("form-data; filename=\"a.jpg\""), None);
        assert_eq!(
            extended_filename("form-data; filename*=UTF-8''%FF%FE.jpg"),
            None
        );
        assert_eq!(extended_filename("form-data; filename*=UTF-8''%4"), None);
        assert_eq!(display_name(Some("café 🎉.jpg")), "café 🎉.jpg");
        assert_eq!(display_name(None), "upload");
    }
}
