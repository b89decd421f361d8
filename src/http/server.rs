//! The accept loop of the `web` process: HTTP/1.1 connections that cannot be held open for
//! free. A client must send its request head within `header_timeout` (which also bounds an idle
//! keep-alive connection and a socket that never speaks), keep a request body moving
//! (`body_idle_timeout` between chunks), and keep reading its response (`write_idle_timeout`
//! per stalled write); at most `max_connections` are open at once (the next waits in the
//! kernel's backlog). On SIGTERM in-flight requests drain, new connections are refused.
//!
//! axum::serve offers none of these knobs, so this is hyper's own connection builder with a
//! timer (HTTP/1.1 only: the API sits behind a proxy or talks to upload clients; hyper-util's
//! auto-detecting builder runs no timer before it has picked a protocol).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How long connections may be slow or idle, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Longest wait for a complete request head, from connection or from the previous response.
    pub header_timeout: Duration,
    /// Longest pause between two chunks of a request body.
    pub body_idle_timeout: Duration,
    /// Longest a response write may stall (a client that stopped reading).
    pub write_idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            write_idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerLimits {
    /// The limits `timeline serve` was given (seconds of 0 are taken as 1).
    pub fn from_config(c: &crate::config::ConnectionLimits) -> Self {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Self {
            header_timeout: secs(c.header_timeout_secs),
            body_idle_timeout: secs(c.body_timeout_secs),
            write_idle_timeout: secs(c.write_timeout_secs),
            max_connections: c.max_connections.max(1),
            ..Self::default()
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(limits.body_idle_timeout));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Twice our own cap, so that a request with too many fields meets the problem answer
        // of `problems::head_limits`, not hyper's bare 431.
        .max_headers(2 * super::problems::MAX_HEADERS)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin; the listener stays up.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Guarded::new(stream, permit, limits.write_idle_timeout));
        let svc = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req
            },
        );
        let conn = builder.serve_connection(io, hyper_util::service::TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("draining in-flight requests");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish before the drain deadline");
    }
    Ok(())
}

/// A connection's socket: holds its slot under the connection cap until dropped, and fails a
/// write that has made no progress for `write_idle` (hyper has no write timeout of its own).
struct Guarded {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    write_idle: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Guarded {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, write_idle: Duration) -> Self {
        Self {
            stream,
            _permit: permit,
            write_idle,
            stalled: None,
        }
    }

    /// Called when a write is pending: arms the stall deadline, or fails once it has passed.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let idle = self.write_idle;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading the response",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
        }
        r
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        if r.is_pending() {
            return self.poll_stall(cx).map(Err);
        }
        self.progress(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if r.is_pending() {
            return self.poll_stall(cx).map(Err);
        }
        self.progress(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_flush(cx);
        if r.is_pending() {
            return self.poll_stall(cx).map(Err);
        }
        self.progress(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
