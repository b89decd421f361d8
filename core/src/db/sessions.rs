//! The operators' dashboard sessions (`admin_sessions`): created at sign-in, found by the hash
//! of the cookie's id, ended at sign-out or at their deadline. Runs as the owning role; the API
//! role has no access to the table.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Records a session for `user` that ends `lifetime_secs` from now.
pub async fn create(
    db: impl PgExecutor<'_>,
    id_hash: &[u8; 32],
    user: Uuid,
    lifetime_secs: f64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO admin_sessions (id_hash, user_id, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))",
        id_hash.as_slice(),
        user,
        lifetime_secs
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The operator a live session belongs to: not signed out, not past its deadline, and its
/// owner still an active admin (a demoted or deactivated operator's sessions end at once).
pub async fn operator(
    db: impl PgExecutor<'_>,
    id_hash: &[u8; 32],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT s.user_id FROM admin_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
           AND u.is_active AND u.role = 'admin'",
        id_hash.as_slice()
    )
    .fetch_optional(db)
    .await
}

/// Ends a session (sign-out). Returns whether a live one was ended.
pub async fn revoke(db: impl PgExecutor<'_>, id_hash: &[u8; 32]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE admin_sessions SET revoked_at = now()
         WHERE id_hash = $1 AND revoked_at IS NULL",
        id_hash.as_slice()
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes sessions that ended (signed out or past their deadline); housekeeping.
pub async fn prune(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM admin_sessions WHERE expires_at <= now() OR revoked_at IS NOT NULL"
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
