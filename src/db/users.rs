//! Users and their API tokens.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::models::Email;

/// Inserts a user; the database lower-cases nothing but refuses a case-insensitive duplicate
/// (`idx_users_email`).
#[tracing::instrument(skip_all)]
pub async fn create_user(
    db: impl PgExecutor<'_>,
    email: &Email,
    first_name: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO users (email, first_name) VALUES ($1::text, $2) RETURNING id",
        email.as_str(),
        first_name
    )
    .fetch_one(db)
    .await
}

/// Finds a user by email, ignoring case.
pub async fn find_id_by_email(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM users WHERE lower(email) = lower($1::text)",
        email
    )
    .fetch_optional(db)
    .await
}

/// Stores the hash of a new token for `user_id`.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn insert_api_token(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    token_hash: &[u8; 32],
    name: &str,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO api_tokens (user_id, token_hash, name) VALUES ($1, $2, $3) RETURNING id",
        user_id,
        token_hash.as_slice(),
        name
    )
    .fetch_one(db)
    .await
}

/// The active user owning a token hash, if the token is valid (not revoked, not expired, the
/// account active). The lookup is by the unique hash index, so it is constant-time with
/// respect to the token's content.
pub async fn user_for_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8; 32],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT t.user_id
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           WHERE t.token_hash = $1 AND t.revoked_at IS NULL
             AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.is_active"#,
        token_hash.as_slice()
    )
    .fetch_optional(db)
    .await
}
