//! The HTTP API (the `web` process): routes, shared state and the server loop.
//! Each resource module exposes `router()`; errors map once in `error`.

pub mod auth;
pub mod error;
mod jobs;
mod media;
mod range;
mod upload;
mod views;

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
    pub pool: PgPool,
    pub storage: Storage,
    pub limits: UploadLimits,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .merge(media::router())
        .merge(jobs::router())
        .with_state(state)
        // Innermost: runs after SetRequestIdLayer, so every request has its id here.
        .layer(axum::middleware::from_fn(auth::with_request_meta))
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
}

/// 200 when the database answers, 503 otherwise.
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<&'static str, error::ApiError> {
    let ping = tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await;
    match ping {
        Ok(Ok(_)) => Ok("ok"),
        Ok(Err(e)) => Err(error::ApiError::Unavailable(e)),
        Err(_) => Err(error::ApiError::Unavailable(sqlx::Error::PoolTimedOut)),
    }
}

/// Serves until SIGTERM or Ctrl-C, then drains in-flight requests.
pub async fn serve(state: AppState, addr: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Resolves on SIGTERM (the platform's stop) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown signal received");
}
