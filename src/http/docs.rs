//! The OpenAPI 3.1 description of the API (`GET /openapi.json`), assembled by `utoipa-axum`
//! from the handlers' own `#[utoipa::path]` annotations and response types as the routes are
//! registered, so a route cannot be served without being described. The `/admin` pages are
//! HTML for operators (docs/OPERATIONS.md) and not part of it.

// The response and parameter types below exist for the OpenAPI derives; nothing reads their
// fields at run time.
#![allow(
    dead_code,
    reason = "documentation types, read by the OpenAPI derives only"
)]

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};

use super::views::Problem;

/// The document's frame: title, version, the bearer scheme every `/v1` route needs.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "timeline",
        description = "Media ingestion for a personal timeline: uploads, processing jobs, media. \
                       Errors are application/problem+json (RFC 9457).",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(Problem))
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// `{id}` of a resource; an id that is malformed, unknown or another user's is a 404.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdParam {
    /// The resource's id (a UUID).
    id: String,
}

/// 400: a malformed query or body.
#[derive(Debug, IntoResponses)]
#[response(
    status = 400,
    description = "malformed request",
    content_type = "application/problem+json"
)]
pub struct BadRequest(#[to_schema] Problem);

/// 401: no valid bearer token.
#[derive(Debug, IntoResponses)]
#[response(
    status = 401,
    description = "missing or invalid bearer token",
    content_type = "application/problem+json"
)]
pub struct Unauthorized(#[to_schema] Problem);

/// 404: unknown, or another user's.
#[derive(Debug, IntoResponses)]
#[response(
    status = 404,
    description = "not found (or another user's)",
    content_type = "application/problem+json"
)]
pub struct NotFound(#[to_schema] Problem);

/// 409: the resource is not in a state that allows this.
#[derive(Debug, IntoResponses)]
#[response(
    status = 409,
    description = "not possible in the resource's state",
    content_type = "application/problem+json"
)]
pub struct Conflict(#[to_schema] Problem);

/// 413: over the size limits.
#[derive(Debug, IntoResponses)]
#[response(
    status = 413,
    description = "a file or the request is over the limits",
    content_type = "application/problem+json"
)]
pub struct TooLarge(#[to_schema] Problem);

/// 415: bytes this system cannot handle.
#[derive(Debug, IntoResponses)]
#[response(
    status = 415,
    description = "not a photo, video or audio file this system accepts",
    content_type = "application/problem+json"
)]
pub struct Unsupported(#[to_schema] Problem);

/// 503: the database is away.
#[derive(Debug, IntoResponses)]
#[response(
    status = 503,
    description = "the database is unavailable; try again",
    content_type = "application/problem+json"
)]
pub struct Unavailable(#[to_schema] Problem);

/// 412: a tus request without `Tus-Resumable: 1.0.0`.
#[derive(Debug, IntoResponses)]
#[response(
    status = 412,
    description = "the tus protocol version is missing or not supported (Tus-Version lists ours)",
    content_type = "application/problem+json"
)]
pub struct PreconditionFailed(#[to_schema] Problem);

/// 423: another request is appending to the upload.
#[derive(Debug, IntoResponses)]
#[response(
    status = 423,
    description = "another request is appending to this upload; retry shortly",
    content_type = "application/problem+json"
)]
pub struct Locked(#[to_schema] Problem);

/// 460: the body does not match its `Upload-Checksum`.
#[derive(Debug, IntoResponses)]
#[response(
    status = 460,
    description = "checksum mismatch: the chunk was discarded",
    content_type = "application/problem+json"
)]
pub struct ChecksumMismatch(#[to_schema] Problem);
