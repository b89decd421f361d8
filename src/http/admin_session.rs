//! Who is signed in to the dashboard, and whether a form post comes from the dashboard:
//!
//! - **Sessions.** Signing in with an operator's API token opens a server-side session. The
//!   cookie holds the session's random id (256 bits), never the token; only the id's SHA-256 is
//!   stored (`admin_sessions`). A session ends 12 hours after sign-in, at sign-out, or when its
//!   owner stops being an active admin.
//! - **Cookie flags.** `HttpOnly`, `SameSite=Strict`, `Path=/admin`, and `Secure` whenever the
//!   public URL (`--public-url`) is https.
//! - **CSRF.** Every form carries the session's CSRF token, derived from the session id (so
//!   nothing more is stored, and only the holder of the cookie can know it). A post without
//!   it, or whose `Origin` is another site's, is refused with 403 and changes nothing.
//! - **Headers** on every dashboard answer: a CSP that allows only the page's own style and
//!   forms to itself, `frame-ancestors 'none'`, `nosniff`, no referrer to other sites, no
//!   caching.
//!
//! `Authorization: Bearer` with an operator's token works too, for scripts: a browser never
//! sends that header by itself, so such posts need no CSRF token.

use std::sync::LazyLock;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AppState;
use super::admin::AdminError;
use crate::db;

/// The dashboard's cookie: the session id.
pub const COOKIE: &str = "timeline_admin";

/// How long a session lasts from sign-in.
pub const LIFETIME_SECS: u64 = 12 * 3600;

/// Largest form body the dashboard reads (its forms hold a token or two).
const MAX_FORM_BYTES: usize = 4096;

/// The dashboard's only style sheet, inline; the CSP allows it by its hash and nothing else.
pub const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430}\
header{display:flex;justify-content:space-between;align-items:center;padding:8px 16px;background:#1d2430;color:#fff}\
header a{color:#fff;text-decoration:none}main{padding:8px 16px}h2{margin:20px 0 6px;font-size:16px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e3e6ea;vertical-align:top}\
th{background:#f4f6f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.paused{color:#b45309;font-weight:600}.dead{color:#b91c1c}.ok{color:#15803d}form.inline{display:inline}\
button{font:inherit;padding:2px 8px;cursor:pointer}.reason{max-width:480px;word-break:break-word}\
.muted{color:#6b7280}";

static CSP: LazyLock<String> = LazyLock::new(|| {
    let style = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
    format!(
        "default-src 'none'; style-src 'sha256-{style}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

/// How the dashboard's cookies and origin checks see the deployment.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The public origin (`https://timeline.example.org`), when `--public-url` names one.
    pub origin: Option<String>,
}

impl Site {
    /// From `--public-url`: its scheme, host and port.
    pub fn from_public_url(url: Option<&url::Url>) -> Self {
        Self {
            origin: url.map(|u| u.origin().ascii_serialization()),
        }
    }

    fn secure(&self) -> bool {
        self.origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"))
    }

    /// Whether a request's `Origin`, if it sent one, is the dashboard's own: the public origin
    /// when configured, otherwise the host the request was addressed to.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        match &self.origin {
            Some(own) => origin.eq_ignore_ascii_case(own),
            None => {
                let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
                let authority = origin.split_once("://").map(|(_, a)| a);
                host.is_some() && authority.is_some_and(|a| Some(a) == host)
            }
        }
    }

    /// The `Set-Cookie` value that signs the browser in to session `id`.
    pub fn session_cookie(&self, id: &str) -> String {
        self.cookie(id, LIFETIME_SECS)
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn cleared_cookie(&self) -> String {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure() { "; Secure" } else { "" };
        format!(
            "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        )
    }
}

/// The CSRF token of session `id`: a hash of the id under a fixed label, so it proves
/// knowledge of the cookie without being the cookie.
fn csrf_of(session_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"timeline admin csrf\0");
    h.update(session_id.as_bytes());
    hex::encode(h.finalize())
}

/// Compares two tokens in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The session id from the dashboard cookie, if it has the shape of one.
pub fn session_id_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The operator owning the API token whose hash is `hash`, if it is a valid token of an active
/// admin.
pub async fn admin_for_token(
    state: &AppState,
    hash: &[u8; 32],
) -> Result<Option<Uuid>, AdminError> {
    let mut tx = state.db.begin().await?;
    let Some(owner) = db::users::token_owner(&mut *tx, hash).await? else {
        return Ok(None);
    };
    Ok(db::users::is_admin(&mut *tx, owner.user_id)
        .await?
        .then_some(owner.user_id))
}

/// An operator signed in to the dashboard (session cookie) or calling it with a bearer token.
#[derive(Debug, Clone)]
pub struct Admin {
    pub id: Uuid,
    /// The CSRF token its forms must carry; `None` for a bearer caller, which needs none.
    pub csrf: Option<String>,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The API's own bearer parsing (case-insensitive scheme, length cap).
        if let Some(hash) = super::auth::token_hash(&parts.headers) {
            let id = admin_for_token(state, &hash).await?;
            return id
                .map(|id| Self { id, csrf: None })
                .ok_or(AdminError::SignIn);
        }
        let session = session_id_of(&parts.headers).ok_or(AdminError::SignIn)?;
        let hash = crate::auth::hash_token(session);
        let id = db::sessions::operator(state.db.pool(), &hash).await?;
        id.map(|id| Self {
            id,
            csrf: Some(csrf_of(session)),
        })
        .ok_or(AdminError::SignIn)
    }
}

/// An operator's form post that came from the dashboard itself: same origin, and (for a
/// session) carrying the session's CSRF token. Anything else is refused before it acts.
#[derive(Debug, Clone)]
pub struct AdminPost(pub Admin);

impl FromRequest<AppState> for AdminPost {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        if !state.site.same_origin(&parts.headers) {
            return Err(AdminError::Forged);
        }
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let Some(expected) = &admin.csrf else {
            return Ok(Self(admin));
        };
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| AdminError::Forged)?;
        if same_token(csrf_field(&bytes), expected) {
            Ok(Self(admin))
        } else {
            Err(AdminError::Forged)
        }
    }
}

/// The `csrf` field of a url-encoded form body, or "" when it has none. The token is hex, which
/// url-encoding leaves as it is, so the raw value is the token.
fn csrf_field(body: &[u8]) -> &str {
    std::str::from_utf8(body)
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("csrf="))
        .unwrap_or("")
}

/// Adds the dashboard's security headers to every answer under `/admin`.
pub async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it a browser sends `Origin: null` with form posts, and the
    // origin check could not tell the dashboard's own forms from anyone else's.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The answer to a refused post.
pub fn forged() -> Response {
    (
        StatusCode::FORBIDDEN,
        "This form did not come from the dashboard, or its page is out of date: reload the dashboard and try again.",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let (a, b) = (
            crate::auth::generate_session_id(),
            crate::auth::generate_session_id(),
        );
        assert_ne!(csrf_of(&a), csrf_of(&b));
        assert!(same_token(&csrf_of(&a), &csrf_of(&a)));
        assert!(!same_token(&csrf_of(&a), &csrf_of(&b)));
        assert!(!same_token("", &csrf_of(&a)));
        let body = format!("x=1&csrf={}", csrf_of(&a));
        assert!(same_token(csrf_field(body.as_bytes()), &csrf_of(&a)));
        assert_eq!(csrf_field(b"token=abc"), "");
    }

    #[test]
    fn cookies_are_secure_behind_https_only() {
        let https = url::Url::parse("https://t.example.org/app").ok();
        let site = Site::from_public_url(https.as_ref());
        assert_eq!(site.origin.as_deref(), Some("https://t.example.org"));
        assert!(site.session_cookie("x").ends_with("; Secure"));
        let plain = Site::default().session_cookie("x");
        assert!(plain.contains("HttpOnly; SameSite=Strict") && !plain.contains("Secure"));
    }

    #[test]
    fn an_origin_must_be_the_host_or_the_public_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            Site::default().same_origin(&h),
            "no Origin: a same-origin navigation"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(Site::default().same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9999"),
        );
        assert!(!Site::default().same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!Site::default().same_origin(&h));
        let site = Site {
            origin: Some("https://t.example.org".into()),
        };
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://t.example.org"),
        );
        assert!(site.same_origin(&h));
    }
}
