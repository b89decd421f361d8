//! Bearer-token authentication and the per-request database transaction that runs as the
//! API role with the user set, so row-level security scopes every statement.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use futures::future::BoxFuture;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{AppState, error::ApiError};
use crate::db::tx::{Tx, TxPool};

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
    pub(super) fn audit(&self) -> crate::db::users::Audit<'_> {
        crate::db::users::Audit {
            request_id: &self.request_id,
            user_agent: &self.user_agent,
            client_ip: &self.client_ip,
        }
    }
}

/// The current request's [`RequestMeta`] (empty outside [`with_request_meta`]).
pub(super) fn current_meta() -> RequestMeta {
    REQUEST_META.try_with(Clone::clone).unwrap_or_default()
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
pub async fn begin_as(db: &TxPool, user: Uuid) -> Result<Tx, sqlx::Error> {
    let meta = current_meta();
    let mut tx = db.begin().await?;
    crate::db::users::scope_to_user(&mut *tx, user, meta.audit()).await?;
    Ok(tx)
}

/// The authenticated user of a request and its transaction, already begun as that user (see
/// [`begin_as`]). One transaction whose first statement both checks the token and scopes it:
/// for a read such as a media list, half the transactions and round trips of [`AuthUser`]
/// followed by [`begin_as`], which behind a transaction pooler also means half the resets.
/// (A job poll goes further: one statement, no explicit transaction; `http::jobs`.)
/// Behind a pooler it is a transaction of the lean pool (`db::tx`): its connection goes back
/// without sqlx's release ping, which there is one more server transaction and reset.
pub struct UserTx {
    pub user: Uuid,
    pub tx: Tx,
}

impl FromRequestParts<AppState> for UserTx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let hash = token_hash(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let meta = current_meta();
        let mut tx = state.db.begin().await?;
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

/// A read that the replica may answer (`DATABASE_READ_URL`, see `crate::replica`): the
/// user and a transaction scoped to them, on the replica while it is within its lag bound,
/// else on the primary as [`UserTx`]. Only for handlers that write nothing. (Job polls
/// choose between the two servers the same way, in `http::jobs`.)
pub struct ReadTx {
    pub user: Uuid,
    /// On the replica's pool, or on the primary's as [`UserTx`].
    tx: Tx,
    /// The primary, when `tx` is on the replica: where [`ReadTx::run`] asks again.
    primary: Option<TxPool>,
}

impl FromRequestParts<AppState> for ReadTx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(replica) = &state.replica {
            let Some(pool) = replica.pool_if_fresh() else {
                crate::metrics::replica_read("primary", "lagging");
                return Self::on_primary(parts, state).await;
            };
            let hash = token_hash(&parts.headers).ok_or(ApiError::Unauthorized)?;
            match authenticate_on(pool, &hash).await {
                Ok(Some((user, tx))) => {
                    super::user_caps::admit(parts, &state.caps, user)?;
                    tracing::Span::current().record("user.id", tracing::field::display(user));
                    return Ok(Self {
                        user,
                        tx: Tx::Sqlx(tx),
                        primary: Some(state.db.clone()),
                    });
                }
                // A token not replayed yet, or one whose use is due to be recorded (a write):
                // the primary decides.
                Ok(None) => crate::metrics::replica_read("primary", "token"),
                Err(e) => {
                    crate::metrics::replica_read("primary", "unavailable");
                    tracing::warn!(error = %e, "read replica unavailable; reading from the primary");
                }
            }
        }
        Self::on_primary(parts, state).await
    }
}

impl ReadTx {
    async fn on_primary(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let UserTx { user, tx } = UserTx::from_request_parts(parts, state).await?;
        Ok(Self {
            user,
            tx,
            primary: None,
        })
    }

    /// Runs `read` in the transaction and commits it. A 404 on the replica is asked again of
    /// the primary: what the client created a moment ago (the job its upload returned, a
    /// file it just sent) may not have been replayed there yet. So is a read the replica
    /// failed (it went away, or cancelled the read for a conflict with replay).
    ///
    /// (A boxed future, not an async closure: axum needs the handler's future to be `Send`,
    /// which the compiler cannot yet prove through an `AsyncFn` bound.)
    pub async fn run<T, F>(self, read: F) -> Result<T, ApiError>
    where
        F: for<'c> Fn(&'c mut sqlx::PgConnection, Uuid) -> BoxFuture<'c, Result<T, ApiError>>,
    {
        let Self {
            user,
            mut tx,
            primary,
        } = self;
        match (read(&mut tx, user).await, primary) {
            (Err(e @ (ApiError::NotFound | ApiError::Unavailable(_))), Some(primary)) => {
                // Rolled back on drop: the replica's transaction read nothing worth keeping.
                drop(tx);
                if let ApiError::Unavailable(e) = e {
                    tracing::warn!(error = %e, "read replica failed a read; reading from the primary");
                    crate::metrics::replica_read("primary", "unavailable");
                } else {
                    crate::metrics::replica_read("primary", "not_there_yet");
                }
                let mut tx = begin_as(&primary, user).await?;
                let found = read(&mut tx, user).await?;
                tx.commit().await?;
                Ok(found)
            }
            (Err(e), _) => {
                // The read's error is the answer; a rollback that fails too closes the
                // connection, which ends the transaction all the same.
                let _ended = tx.rollback().await;
                Err(e)
            }
            (Ok(found), primary) => {
                tx.commit().await?;
                if primary.is_some() {
                    crate::metrics::replica_read("replica", "fresh");
                }
                Ok(found)
            }
        }
    }
}

/// The token's user and a transaction scoped to them on `pool` (the replica), or `None` when
/// the replica does not know the token or its use is due to be recorded.
async fn authenticate_on(
    pool: &PgPool,
    hash: &[u8; 32],
) -> Result<Option<(Uuid, Transaction<'static, Postgres>)>, sqlx::Error> {
    let meta = current_meta();
    let mut tx = pool.begin().await?;
    let owner = crate::db::users::authenticate_as_owner(&mut *tx, hash, meta.audit()).await?;
    Ok(owner.filter(|o| !o.use_unrecorded).map(|o| (o.user_id, tx)))
}

impl std::fmt::Debug for ReadTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTx")
            .field("user", &self.user)
            .field("on_replica", &self.primary.is_some())
            .finish()
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
