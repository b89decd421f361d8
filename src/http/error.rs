//! The HTTP layer's one error type, mapped once to `application/problem+json` (RFC 9457) with a
//! stable machine code in `type`. Server-side detail is logged here, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 431: a header block over its cap (the request's, or a multipart part's).
    #[error("{0}")]
    HeaderFieldsTooLarge(String),
    /// 414: a request target over its cap.
    #[error("{0}")]
    UriTooLong(String),
    /// An error answer the framework made (see `problems`), with a plain reason.
    #[error("{detail}")]
    Framework { status: StatusCode, detail: String },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Locked(String),
    /// 429: a per-user cap is full (answered with `Retry-After`).
    #[error("{0}")]
    TooManyRequests(String),
    /// A `Range` wholly outside the object (answered with `Content-Range: bytes */size`).
    #[error("the requested range is outside the file ({size} bytes)")]
    RangeNotSatisfiable { size: u64 },
    /// tus's 460: the body does not match its `Upload-Checksum`.
    #[error("{0}")]
    ChecksumMismatch(String),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not Found"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method Not Allowed",
            ),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad Request"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload Too Large",
            ),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported Media Type",
            ),
            Self::HeaderFieldsTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header-fields-too-large",
                "Request Header Fields Too Large",
            ),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri-too-long", "URI Too Long"),
            Self::Framework { status, .. } => (
                *status,
                "http",
                status.canonical_reason().unwrap_or("Error"),
            ),
            Self::PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition Failed",
            ),
            Self::Locked(_) => (StatusCode::LOCKED, "locked", "Locked"),
            Self::TooManyRequests(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too Many Requests",
            ),
            Self::RangeNotSatisfiable { .. } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                "Range Not Satisfiable",
            ),
            Self::ChecksumMismatch(_) => (
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
                "checksum-mismatch",
                "Checksum Mismatch",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service Unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
            ),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            // Connection exceptions (08), operator intervention such as a server shutting down
            // (57), too many connections (53300): the database is away, not the request wrong.
            // 40001 too: a serialization failure, or a read a standby cancelled for a conflict
            // with replay; the same request will do another time.
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08") || c.starts_with("57") || c == "53300" || c == "40001"
                }) =>
            {
                Self::Unavailable(e)
            }
            other => Self::Internal(format!("database: {other}")),
        }
    }
}

impl From<crate::storage::Error> for ApiError {
    fn from(e: crate::storage::Error) -> Self {
        match e {
            crate::storage::Error::NotFound(_) => Self::NotFound,
            other => Self::Internal(format!("storage: {other}")),
        }
    }
}

impl From<crate::jobs::Error> for ApiError {
    fn from(e: crate::jobs::Error) -> Self {
        match e {
            crate::jobs::Error::Queue(apalis_postgres::Error::Database(db)) => Self::from(db),
            other => Self::Internal(format!("queue: {other}")),
        }
    }
}

impl From<crate::resumable::Error> for ApiError {
    fn from(e: crate::resumable::Error) -> Self {
        use crate::resumable::Error as E;
        match e {
            E::NotFound => Self::NotFound,
            E::Locked => Self::Locked(e.to_string()),
            E::OffsetMismatch { .. } | E::Interrupted(_) | E::Erasing => {
                Self::Conflict(e.to_string())
            }
            E::PastLength { .. } | E::Invalid(_) => Self::BadRequest(e.to_string()),
            E::ChecksumMismatch => Self::ChecksumMismatch(e.to_string()),
            E::Unsupported(m) => Self::UnsupportedMediaType(m),
            E::TooLarge(m) => Self::PayloadTooLarge(m),
            E::Database(db) => Self::from(db),
            E::Storage(s) => Self::from(s),
            E::Ingest(i) => Self::from(i),
        }
    }
}

impl From<crate::ingest::Error> for ApiError {
    fn from(e: crate::ingest::Error) -> Self {
        match e {
            crate::ingest::Error::Database(db) => Self::from(db),
            crate::ingest::Error::Queue(q) => Self::from(q),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title) = self.parts();
        let detail = match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                "The server could not complete the request.".to_owned()
            }
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                "The database is unavailable; try again shortly.".to_owned()
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({
            "type": format!("https://timeline.invalid/problems/{code}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, Self::Unauthorized) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::RangeNotSatisfiable { size } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        if matches!(self, Self::Unavailable(_)) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if matches!(self, Self::TooManyRequests(_)) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
