//! What every step needs: the database pool, the object store and the decoder limits.

use sqlx::PgPool;
use timeline::storage::Storage;
use timeline_media::thumbnail::Limits;

/// Shared by all pools of a worker process.
#[derive(Debug, Clone)]
pub struct Context {
    pub pool: PgPool,
    pub storage: Storage,
    pub limits: Limits,
    /// Deadline of one CPU stage; past it the file fails and the pool moves on.
    pub step_timeout: std::time::Duration,
}
