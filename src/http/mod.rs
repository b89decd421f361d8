//! The HTTP API (the `web` process): routes, shared state and the server loop.
//! Each resource module exposes `router()`; errors map once in `error`.

mod account;
pub mod admin;
pub mod admin_session;
pub mod auth;
mod collections;
pub mod docs;
pub mod error;
pub mod events;
mod exports;
pub mod imports;
mod jobs;
mod media;
mod part_headers;
mod problems;
mod range;
pub mod server;
mod tus;
mod upload;
pub mod user_caps;
pub mod views;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request};
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::UploadLimits;
use crate::storage::Storage;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub storage: Storage,
    pub limits: UploadLimits,
    /// Live job events for the SSE streams.
    pub events: events::JobEvents,
    /// The public origin, for the dashboard's cookies and origin checks.
    pub site: admin_session::Site,
    /// What each user holds open in this process (requests, uploads, event streams).
    pub caps: std::sync::Arc<user_caps::UserCaps>,
    /// A streaming replica for list and detail reads (`DATABASE_READ_URL`), if any.
    pub replica: Option<crate::replica::Replica>,
    /// Where requests' transactions begin: sqlx's pool, or behind a transaction pooler the
    /// lean pool (`db::tx`); `db.pool()` for what runs outside an explicit transaction.
    pub db: crate::db::tx::TxPool,
}

impl AppState {
    /// The state of a web process without a pooler (starts its job-event listener: call inside
    /// the runtime).
    pub fn new(pool: PgPool, storage: Storage, limits: UploadLimits) -> Self {
        Self::with_session(pool.clone(), pool, storage, limits)
    }

    /// The state of a web process whose job-event listener holds a connection of `session`
    /// (see `db::session_pool`).
    pub fn with_session(
        pool: PgPool,
        session: PgPool,
        storage: Storage,
        limits: UploadLimits,
    ) -> Self {
        let events = events::JobEvents::start(session);
        crate::metrics::handle();
        Self {
            db: pool.into(),
            storage,
            limits,
            events,
            site: admin_session::Site::default(),
            caps: user_caps::UserCaps::new(user_caps::Limits::default()),
            replica: None,
        }
    }

    /// The pool for a read that may be a little stale: the replica while it is within its
    /// bound, else the primary.
    pub fn read_pool(&self) -> &PgPool {
        self.replica
            .as_ref()
            .and_then(crate::replica::Replica::pool_if_fresh)
            .unwrap_or(self.db.pool())
    }

    /// The same state, its requests' transactions on `lean` (behind a transaction pooler,
    /// see `db::lean_pool`).
    pub fn with_lean(mut self, lean: Option<crate::db::lean::LeanPool>) -> Self {
        self.db = crate::db::tx::TxPool::new(self.db.pool().clone(), lean);
        self
    }

    /// The same state, reading lists and details from `replica` while it is fresh enough.
    pub fn with_replica(mut self, replica: crate::replica::Replica) -> Self {
        self.replica = Some(replica);
        self
    }

    /// The same state with these per-user caps.
    pub fn with_user_caps(mut self, limits: user_caps::Limits) -> Self {
        self.caps = user_caps::UserCaps::new(limits);
        self
    }

    /// The same state, for a deployment reached at `public_url` (`--public-url`).
    pub fn with_public_url(mut self, public_url: Option<&url::Url>) -> Self {
        self.site = admin_session::Site::from_public_url(public_url);
        self
    }
}

/// The API's routes and their OpenAPI description, built together (see `docs`).
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    utoipa_axum::router::OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(utoipa_axum::routes!(healthz))
        .routes(utoipa_axum::routes!(metrics))
        .merge(media::router())
        .merge(jobs::router())
        .merge(tus::router())
        .merge(tus::exists_router())
        .merge(account::router())
        .merge(collections::router())
        .merge(exports::router())
        .merge(imports::router())
        .split_for_parts()
}

/// The OpenAPI 3.1 document (`GET /openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (api, doc) = api();
    let doc = std::sync::Arc::new(doc);
    api.route(
        "/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    )
    .merge(admin::router())
    // Every answer is problem+json, unknown routes and wrong methods included.
    .fallback(|| async { error::ApiError::NotFound })
    .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed })
    .with_state(state)
    // Wraps each route (after matching), so the route pattern is known.
    .layer(axum::middleware::from_fn(user_caps::hold))
    .layer(axum::middleware::from_fn(record_metrics))
    // Runs after SetRequestIdLayer, so every request has its id here.
    .layer(axum::middleware::from_fn(auth::with_request_meta))
    .layer(axum::middleware::from_fn(problems::problem_bodies))
    .layer(axum::middleware::from_fn(problems::head_limits))
    .layer(
        TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(),
                                    request.id = %id, user.id = tracing::field::Empty)
        }),
    )
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
    // Outermost: a client's request id that could forge log lines is dropped (and then
    // replaced by a fresh one) before anything logs it.
    .layer(axum::middleware::from_fn(drop_unsafe_request_id))
}

/// Longest client request id kept.
const MAX_REQUEST_ID: usize = 64;

/// Whether a client's `x-request-id` is safe to log verbatim: 1–64 of `A-Z a-z 0-9 . _ -`.
fn safe_request_id(v: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

async fn drop_unsafe_request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req
        .headers()
        .get_all("x-request-id")
        .iter()
        .enumerate()
        .any(|(i, v)| i > 0 || !safe_request_id(v.as_bytes()))
    {
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

/// A JSON body, whose rejection is our problem+json 400 rather than axum's plain text. The body
/// is read as JSON whatever its `Content-Type` says (`curl -d` sends a form's type): API.md
/// names none for these requests, and only the bytes can tell whether they are JSON.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = error::ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = <axum::body::Bytes as axum::extract::FromRequest<S>>::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                    error::ApiError::PayloadTooLarge(e.body_text())
                }
                _ => error::ApiError::BadRequest(format!("unreadable body: {}", e.body_text())),
            })?;
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| error::ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// `Query` whose rejection is our problem+json 400 rather than axum's plain text.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| {
                error::ApiError::BadRequest(format!("invalid query string: {}", e.body_text()))
            })
    }
}

/// Counts and times every answered request by its route pattern (`/v1/media/{id}`).
async fn record_metrics(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    crate::metrics::http_request(
        method_label(&method),
        &route,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// The method as a metrics label: the standard ones by name, anything a client made up as
/// `other`, so that invented methods cannot grow the series without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Prometheus metrics (text exposition format; see docs/OPERATIONS.md).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "the metrics", content_type = "text/plain", body = String)))]
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        crate::metrics::render(state.db.pool()).await,
    )
}

/// 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String),
              docs::Unavailable))]
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, error::ApiError> {
    let ping = tokio::time::timeout(
        Duration::from_secs(3),
        // A plain string runs as a simple query: one round trip, fine behind a pooler.
        sqlx::Executor::execute(state.db.pool(), "SELECT 1"),
    )
    .await;
    match ping {
        Ok(Ok(_)) => Ok("ok"),
        Ok(Err(e)) => Err(error::ApiError::Unavailable(e)),
        Err(_) => Err(error::ApiError::Unavailable(sqlx::Error::PoolTimedOut)),
    }
}

/// Serves until SIGTERM or Ctrl-C, then drains in-flight requests.
pub async fn serve(
    state: AppState,
    addr: &str,
    limits: server::ServerLimits,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    server::serve_on(listener, router(state), limits, shutdown_signal()).await
}

/// Resolves on SIGTERM (the platform's stop) or Ctrl-C.
pub use timeline_core::shutdown::signal as shutdown_signal;

#[cfg(test)]
mod tests {
    use super::safe_request_id;

    #[test]
    fn request_ids_that_could_forge_log_lines_are_refused() {
        assert!(safe_request_id(b"3f2a-11.ab_C"));
        for bad in [
            &b""[..],
            b"a b",
            b"x\n[INFO] forged",
            b"\x1b[31m",
            &[b'a'; 65],
        ] {
            assert!(!safe_request_id(bad), "{bad:?}");
        }
    }
}
