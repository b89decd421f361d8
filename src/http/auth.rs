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
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or(ApiError::Unauthorized)?;
        // Only the hash is compared, by an index lookup on the hash: the raw token's bytes never
        // meet a byte-by-byte comparison that could leak timing.
        let hash = crate::auth::hash_token(token);
        let user = crate::db::users::user_for_token(&state.pool, &hash).await?;
        let user = user.ok_or(ApiError::Unauthorized)?;
        tracing::Span::current().record("user.id", tracing::field::display(user));
        Ok(Self(user))
    }
}

/// Begins a transaction as role `timeline_api` with `app.user_id` set: every statement in it
/// sees only this user's rows, even one that forgot its `WHERE user_id`.
pub async fn begin_as(
    pool: &PgPool,
    user: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        r#"SELECT set_config('role', 'timeline_api', true) AS "role!",
                  set_config('app.user_id', $1, true) AS "user_id!""#,
        user.to_string()
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(tx)
}
