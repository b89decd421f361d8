//! Bearer-token authentication and the per-request database transaction that runs as the
//! API role with the user set, so row-level security scopes every statement.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{AppState, error::ApiError};

/// The authenticated user of a request.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub Uuid);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The token check of [`UserTx`] (its use recorded as there), committed at once: for
        // handlers whose work runs in transactions of their own.
        let UserTx { user, tx } = UserTx::from_request_parts(parts, state).await?;
        tx.commit().await?;
        Ok(Self(user))
    }
}

/// The hash of the request's bearer token. Only the hash is compared, by an index lookup on
/// the hash: the raw token's bytes never meet a byte-by-byte comparison that could leak
/// timing.
pub(super) fn token_hash(headers: &axum::http::HeaderMap) -> Option<[u8; 32]> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .filter(|t| !t.is_empty() && t.len() <= 256)?;
    Some(crate::auth::hash_token(token))
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `BEARER` and `bearer` work too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who is asking, beyond the user: recorded with every audit row the request causes.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// `x-request-id` (made by the server when the client sent none), at most 200 characters.
    pub request_id: String,
    /// `User-Agent`, at most 512 characters.
    pub user_agent: String,
    /// The peer address, when the server knows it.
    pub client_ip: String,
}

impl RequestMeta {
    fn audit(&self) -> crate::db::users::Audit<'_> {
        crate::db::users::Audit {
            request_id: &self.request_id,
            user_agent: &self.user_agent,
            client_ip: &self.client_ip,
        }
    }
}

tokio::task_local! {
    /// The current request's [`RequestMeta`], for [`begin_as`] (set by [`with_request_meta`]).
    static REQUEST_META: RequestMeta;
}

/// Middleware: makes the request's id, user agent and peer address available to
/// [`begin_as`], so the audit trigger records them without every handler passing them on.
pub async fn with_request_meta(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let meta = request_meta(&req);
    REQUEST_META.scope(meta, next.run(req)).await
}

/// Reads the [`RequestMeta`] of a request. (A separate function, so no borrow of the request,
/// whose body is not `Sync`, is held across the handler's await.)
fn request_meta(req: &axum::extract::Request) -> RequestMeta {
    // Cut to the audit columns' limits: a client-chosen id must never make a write fail.
    let header = |name: header::HeaderName, max: usize| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.chars()
                    .filter(|c| !c.is_control())
                    .take(max)
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    RequestMeta {
        request_id: header(header::HeaderName::from_static("x-request-id"), 200),
        user_agent: header(header::USER_AGENT, 512),
        client_ip: req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default(),
    }
}

/// Begins a transaction as role `timeline_api` with `app.user_id` set: every statement in it
/// sees only this user's rows, even one that forgot its `WHERE user_id`. The request's id, user
/// agent and address go along for the audit trail.
pub async fn begin_as(
    pool: &PgPool,
    user: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let meta = REQUEST_META.try_with(Clone::clone).unwrap_or_default();
    let mut tx = pool.begin().await?;
    crate::db::users::scope_to_user(&mut *tx, user, meta.audit()).await?;
    Ok(tx)
}

/// The authenticated user of a request and its transaction, already begun as that user (see
/// [`begin_as`]). One transaction whose first statement both checks the token and scopes it:
/// for a read such as a job poll, half the transactions and round trips of [`AuthUser`]
/// followed by [`begin_as`], which behind a transaction pooler also means half the resets.
pub struct UserTx {
    pub user: Uuid,
    pub tx: Transaction<'static, Postgres>,
}

impl FromRequestParts<AppState> for UserTx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let hash = token_hash(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let meta = REQUEST_META.try_with(Clone::clone).unwrap_or_default();
        let mut tx = state.pool.begin().await?;
        let owner = crate::db::users::authenticate_as_owner(&mut *tx, &hash, meta.audit())
            .await?
            .ok_or(ApiError::Unauthorized)?;
        super::user_caps::admit(parts, &state.caps, owner.user_id)?;
        if owner.use_unrecorded {
            // Every few minutes per token. In a savepoint: a failure to record a use must
            // neither refuse the request nor abort its transaction.
            let mut record = sqlx::Acquire::begin(&mut *tx).await?;
            match crate::db::users::record_token_use(&mut *record, owner.token_id).await {
                Ok(()) => record.commit().await?,
                Err(e) => {
                    record.rollback().await?;
                    tracing::warn!(error = %e, "could not record a token's use");
                }
            }
            crate::db::users::scope_to_user(&mut *tx, owner.user_id, meta.audit()).await?;
        }
        tracing::Span::current().record("user.id", tracing::field::display(owner.user_id));
        Ok(Self {
            user: owner.user_id,
            tx,
        })
    }
}

impl std::fmt::Debug for UserTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTx").field("user", &self.user).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for h in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc "] {
            assert_eq!(bearer_token(h), Some("abc"), "{h}");
        }
        for h in ["Basic abc", "Bearerabc", "abc", ""] {
            assert_eq!(bearer_token(h), None, "{h}");
        }
    }
}
