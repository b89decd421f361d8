//! Every error answer of the API is `application/problem+json`, including those that no
//! handler writes:
//!
//! - [`head_limits`] refuses a request line or header block over our caps (414, 431) as a
//!   problem, well below hyper's own parser limits. hyper answers what it cannot parse at all
//!   (a head over its ~400 KiB buffer, a URI over 64 KiB) with an empty body before any code of
//!   ours runs; those are the only bare answers left.
//! - [`problem_bodies`] turns any other error answer that is not a problem yet (axum's own
//!   rejections: a path that is not UTF-8, a form it cannot parse, a body over a layer's limit)
//!   into one with a plain reason for its status, never the framework's parser message.
//!
//! The dashboard (`/admin`) answers HTML and is left alone.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Longest request target (path and query) served, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest header block served: names and values together, in bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header fields in one request (hyper's parser takes up to twice as many, so that ours
/// is the refusal a client sees).
pub const MAX_HEADERS: usize = 100;

/// Middleware: refuses an over-long target or an oversized header block with a problem.
pub async fn head_limits(req: Request, next: Next) -> Response {
    // Measured without formatting the URI: this runs on every request.
    let target = req.uri();
    let uri = target.path_and_query().map_or(0, |p| p.as_str().len())
        + target.authority().map_or(0, |a| a.as_str().len());
    if uri > MAX_URI_BYTES {
        return ApiError::UriTooLong(format!(
            "the request target is {uri} bytes, over the {MAX_URI_BYTES}-byte limit"
        ))
        .into_response();
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::HeaderFieldsTooLarge(format!(
            "the request has {} header fields in {bytes} bytes; at most {MAX_HEADERS} fields \
             in {MAX_HEADER_BYTES} bytes are accepted",
            headers.len()
        ))
        .into_response();
    }
    next.run(req).await
}

/// Middleware: an error answer without a problem body gets one.
pub async fn problem_bodies(req: Request, next: Next) -> Response {
    let skip = req.method() == Method::HEAD || req.uri().path().starts_with("/admin");
    let res = next.run(req).await;
    let status = res.status();
    if skip || !(status.is_client_error() || status.is_server_error()) || is_problem(&res) {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let mut problem = ApiError::Framework {
        status,
        detail: plain_reason(status),
    }
    .into_response();
    // Keep what the original answer said in its headers (Allow, Retry-After …), but not its
    // body's type or length.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    for (k, v) in parts.headers.drain().filter_map(|(k, v)| k.map(|k| (k, v))) {
        problem.headers_mut().entry(k).or_insert(v);
    }
    problem
}

fn is_problem(res: &Response) -> bool {
    res.headers().get(header::CONTENT_TYPE)
        == Some(&HeaderValue::from_static("application/problem+json"))
}

/// What a status means, said plainly, for answers whose own text is the framework's.
fn plain_reason(status: StatusCode) -> String {
    match status {
        StatusCode::BAD_REQUEST => "the request is malformed: check its path, query and body",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is over this route's size limit",
        StatusCode::REQUEST_TIMEOUT => "the request body arrived too slowly",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "this route does not take a body of that type",
        StatusCode::UNPROCESSABLE_ENTITY => "the request body does not have the expected fields",
        s if s.is_server_error() => "the server could not complete the request",
        _ => "the request was refused",
    }
    .to_owned()
}
