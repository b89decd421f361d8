//! Users and their API tokens.

use chrono::{DateTime, Utc};
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

/// Makes a user an operator (role `admin`) or an ordinary user again.
pub async fn set_admin(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    admin: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE users SET role = CASE WHEN $2 THEN 'admin' ELSE 'user' END WHERE id = $1",
        user_id,
        admin
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether an active user is an operator.
pub async fn is_admin(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let admin = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND role = 'admin' AND is_active) AS "admin!""#,
        user_id
    )
    .fetch_one(db)
    .await?;
    Ok(admin)
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

/// Stores the hash of a new token for `user_id`, valid until `expires_at` (never if `None`).
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn insert_api_token(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    token_hash: &[u8; 32],
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO api_tokens (user_id, token_hash, name, expires_at) VALUES ($1, $2, $3, $4)
         RETURNING id",
        user_id,
        token_hash.as_slice(),
        name,
        expires_at
    )
    .fetch_one(db)
    .await
}

/// A valid token and its owner.
#[derive(Debug, Clone, Copy)]
pub struct TokenOwner {
    pub token_id: Uuid,
    pub user_id: Uuid,
    /// `last_used_at` is older than [`LAST_USED_EVERY`] (or unset): worth recording a use.
    pub use_unrecorded: bool,
}

/// `last_used_at` is written at most this often per token, so authentication stays a read.
pub const LAST_USED_EVERY_SECS: f64 = 300.0;

/// The valid token (not revoked, not expired, its account active) with this hash, if any. The
/// lookup is by the unique hash index, so it is constant-time with respect to the token's
/// content.
pub async fn token_owner(
    db: impl PgExecutor<'_>,
    token_hash: &[u8; 32],
) -> Result<Option<TokenOwner>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT t.id, t.user_id,
                  (t.last_used_at IS NULL
                   OR t.last_used_at < now() - make_interval(secs => $2)) AS "stale!"
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           WHERE t.token_hash = $1 AND t.revoked_at IS NULL
             AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.is_active"#,
        token_hash.as_slice(),
        LAST_USED_EVERY_SECS
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| TokenOwner {
        token_id: r.id,
        user_id: r.user_id,
        use_unrecorded: r.stale,
    }))
}

/// Who a request is for, as recorded by the audit trigger with every row it changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Audit<'a> {
    pub request_id: &'a str,
    pub user_agent: &'a str,
    pub client_ip: &'a str,
}

/// A request's first statement, on its transaction: the owner of a valid token hash (as
/// [`token_owner`]) and, in the same round trip, the transaction scoped to that user as
/// [`scope_to_user`] does, unless the token's use is due to be recorded. Then `use_unrecorded`
/// is set and the caller records the use and scopes the transaction itself: the recording is
/// an update the API role may not make, and a statement's role switch would not wait for it.
pub async fn authenticate_as_owner(
    db: impl PgExecutor<'_>,
    token_hash: &[u8; 32],
    audit: Audit<'_>,
) -> Result<Option<TokenOwner>, sqlx::Error> {
    // The statement lives in a PL/pgSQL function (migrations/20261207000027_poll_plans_kept.sql)
    // so that, behind a transaction pooler, each server connection keeps its plan.
    let row = sqlx::query!(
        r#"SELECT id AS "id!", user_id AS "user_id!", stale AS "stale!"
           FROM authenticate_as_owner($1, $2, $3, $4, $5)"#,
        token_hash.as_slice(),
        LAST_USED_EVERY_SECS,
        audit.request_id,
        audit.user_agent,
        audit.client_ip
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| TokenOwner {
        token_id: r.id,
        user_id: r.user_id,
        use_unrecorded: r.stale,
    }))
}

/// Scopes the rest of the transaction to `user`: role `timeline_api`, whose row-level policies
/// show only the rows of `app.user_id`, and the request's audit fields.
pub async fn scope_to_user(
    db: impl PgExecutor<'_>,
    user: Uuid,
    audit: Audit<'_>,
) -> Result<(), sqlx::Error> {
    // One definition for every path that scopes (migrations/20261207000030_scope_in_one_place.sql).
    sqlx::query!(
        r#"SELECT scope_to_user($1, $2, $3, $4) AS "scoped!""#,
        user,
        audit.request_id,
        audit.user_agent,
        audit.client_ip
    )
    .fetch_one(db)
    .await?;
    Ok(())
}

/// The active user owning a valid token hash, if any (see [`token_owner`]).
pub async fn user_for_token(
    db: impl PgExecutor<'_>,
    token_hash: &[u8; 32],
) -> Result<Option<Uuid>, sqlx::Error> {
    Ok(token_owner(db, token_hash).await?.map(|o| o.user_id))
}

/// Records a use of a token, at most once per [`LAST_USED_EVERY_SECS`] (concurrent requests
/// race harmlessly: the condition makes all but one a no-op).
pub async fn record_token_use(db: impl PgExecutor<'_>, token_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE api_tokens SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))",
        token_id,
        LAST_USED_EVERY_SECS
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes a token at once; `false` if there is no such unrevoked token.
pub async fn revoke_token(db: impl PgExecutor<'_>, token_id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        token_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A token as an operator sees it (never its hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A user's tokens, newest first.
pub async fn list_tokens(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Vec<TokenInfo>, sqlx::Error> {
    sqlx::query_as!(
        TokenInfo,
        "SELECT id, name, created_at, expires_at, last_used_at, revoked_at
         FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC, id",
        user_id
    )
    .fetch_all(db)
    .await
}

/// A user's email address (`None` for an unknown user).
pub async fn email_of(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT email::text AS "email!" FROM users WHERE id = $1"#,
        user_id
    )
    .fetch_optional(db)
    .await
}
