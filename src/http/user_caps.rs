//! Per-user caps on what one user may hold open in this web process: requests in flight,
//! uploads (form posts and tus `POST`/`PATCH`) and job event streams. The server's connection
//! cap is shared by everyone; without these, one token could hold every slot. A request over a
//! cap answers 429 with `Retry-After` before it reads its body or touches more of the database.
//!
//! A slot is taken once the request's user is known (in the authentication extractor) and
//! given back when its answer has been sent in full: [`hold`] moves it into a streaming
//! response's body (an event stream, a download), so an open stream keeps its slot.
//!
//! Counts live in this process: with several web processes a user's total is at most the
//! number of processes times the cap, which is still bounded, and needs no shared state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use uuid::Uuid;

use super::error::ApiError;

/// The caps (`timeline serve --max-user-*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub requests: u32,
    pub uploads: u32,
    pub streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests: 64,
            uploads: 8,
            streams: 8,
        }
    }
}

/// What kind of slot a request takes, besides its request slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Upload,
    Stream,
}

impl Kind {
    fn of(method: &Method, route: Option<&str>) -> Self {
        match (method, route) {
            (_, Some("/v1/jobs/{id}/events")) => Self::Stream,
            (&Method::POST, Some("/v1/media" | "/v1/uploads"))
            | (&Method::PATCH, Some("/v1/uploads/{id}")) => Self::Upload,
            _ => Self::Plain,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    requests: u32,
    uploads: u32,
    streams: u32,
}

/// Every user's held slots in this process.
#[derive(Debug, Default)]
pub struct UserCaps {
    limits: Limits,
    held: Mutex<HashMap<Uuid, Held>>,
}

impl UserCaps {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            held: Mutex::default(),
        })
    }

    /// Takes a slot of `kind` for `user`, or says which cap is full.
    fn take(self: &Arc<Self>, user: Uuid, kind: Kind) -> Result<Permit, &'static str> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let h = held.entry(user).or_default();
        let l = self.limits;
        if h.requests >= l.requests {
            return Err("requests in flight");
        }
        match kind {
            Kind::Upload if h.uploads >= l.uploads => return Err("uploads in flight"),
            Kind::Stream if h.streams >= l.streams => return Err("open event streams"),
            Kind::Upload => h.uploads += 1,
            Kind::Stream => h.streams += 1,
            Kind::Plain => {}
        }
        h.requests += 1;
        Ok(Permit {
            caps: Arc::clone(self),
            user,
            kind,
        })
    }

    fn give_back(&self, user: Uuid, kind: Kind) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = held.get_mut(&user) {
            h.requests = h.requests.saturating_sub(1);
            match kind {
                Kind::Upload => h.uploads = h.uploads.saturating_sub(1),
                Kind::Stream => h.streams = h.streams.saturating_sub(1),
                Kind::Plain => {}
            }
            if h.requests == 0 {
                held.remove(&user);
            }
        }
    }

    /// How many users hold a slot (for tests: every slot comes back).
    pub fn users_holding(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Request slots held by all users together (for tests: waiting for the caps to fill
    /// without a request of one's own, which would itself take a slot).
    pub fn requests_held(&self) -> u32 {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.values().map(|h| h.requests).sum()
    }
}

/// One held slot; dropping it gives the slot back.
#[derive(Debug)]
struct Permit {
    caps: Arc<UserCaps>,
    user: Uuid,
    kind: Kind,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.caps.give_back(self.user, self.kind);
    }
}

/// Where the authentication extractor leaves the request's slot for [`hold`] to keep.
#[derive(Debug, Clone, Default)]
struct Slot(Arc<Mutex<Option<Permit>>>);

/// Takes the request's slot for `user` (called once the token is checked), or answers 429.
pub fn admit(parts: &Parts, caps: &Arc<UserCaps>, user: Uuid) -> Result<(), ApiError> {
    let Some(slot) = parts.extensions.get::<Slot>() else {
        // A route outside the capped router (none today): nothing to hold.
        return Ok(());
    };
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let kind = Kind::of(&parts.method, route);
    let permit = caps.take(user, kind).map_err(|cap| {
        metrics::counter!("timeline_http_user_cap_refusals_total", "cap" => cap).increment(1);
        ApiError::TooManyRequests(format!(
            "too many {cap} for this account; retry when one has finished"
        ))
    })?;
    *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(permit);
    Ok(())
}

/// Middleware: gives each request a [`Slot`] and keeps what lands in it until the answer has
/// been sent: at once for a body already in memory, at the end of the stream otherwise.
pub async fn hold(mut req: Request, next: Next) -> Response {
    let slot = Slot::default();
    req.extensions_mut().insert(slot.clone());
    let res = next.run(req).await;
    let permit = slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(permit) = permit else {
        return res;
    };
    if res.body().size_hint().exact().is_some() {
        return res;
    }
    let (parts, body) = res.into_parts();
    let stream = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_is_counted_per_user_and_comes_back() {
        let caps = UserCaps::new(Limits {
            requests: 3,
            uploads: 1,
            streams: 1,
        });
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let up = caps.take(a, Kind::Upload).expect("first upload");
        assert_eq!(caps.take(a, Kind::Upload).err(), Some("uploads in flight"));
        let s = caps.take(a, Kind::Stream).expect("a stream");
        let p = caps.take(a, Kind::Plain).expect("a request");
        assert_eq!(caps.take(a, Kind::Plain).err(), Some("requests in flight"));
        let other = caps
            .take(b, Kind::Upload)
            .expect("another user is not held up");
        drop((up, s, p, other));
        assert_eq!(caps.users_holding(), 0);
    }

    #[test]
    fn routes_map_to_their_kind() {
        assert_eq!(
            Kind::of(&Method::GET, Some("/v1/jobs/{id}/events")),
            Kind::Stream
        );
        assert_eq!(Kind::of(&Method::POST, Some("/v1/media")), Kind::Upload);
        assert_eq!(
            Kind::of(&Method::PATCH, Some("/v1/uploads/{id}")),
            Kind::Upload
        );
        assert_eq!(
            Kind::of(&Method::HEAD, Some("/v1/uploads/{id}")),
            Kind::Plain
        );
        assert_eq!(Kind::of(&Method::GET, Some("/v1/media")), Kind::Plain);
    }
}
