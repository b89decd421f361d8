//! The worker's `GET /metrics` listener (`--metrics-addr`): hyper's HTTP/1 server on one route,
//! so a worker links no web framework. What it renders is the core's (`timeline_core::metrics`).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use sqlx::PgPool;
use timeline_core::metrics::{CONTENT_TYPE, handle, render};
use tokio::net::TcpListener;

/// Binds the listener (`--metrics-addr`), so a taken port fails the start.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    Ok(listener)
}

/// Serves `GET /metrics` on `listener` until the process ends. A failed accept (out of file
/// descriptors) is logged and retried: scrapes are best effort, the pools never depend on them.
pub async fn serve_on(listener: TcpListener, pool: PgPool) {
    handle();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let pool = pool.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let pool = pool.clone();
                async move { Ok::<_, Infallible>(answer(req.method(), req.uri().path(), &pool).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                // A scraper that opens a connection and sends nothing does not keep it.
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics: connection ended");
            }
        });
    }
}

async fn answer(method: &Method, path: &str, pool: &PgPool) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (method, path) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, render(pool).await),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET only\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the worker serves /metrics only\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
