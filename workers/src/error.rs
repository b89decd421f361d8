//! How a step fails: [`StepError`], and how the database's, the store's and the queue's errors
//! map onto its two classes. Its own module so that the decoder and the steps share it without
//! depending on each other.

use timeline_core::db;

/// How a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Bad input: retrying cannot help; the file fails now with this reason.
    #[error("{0}")]
    Permanent(String),
    /// The database or the store is unavailable, a timeout: worth another attempt.
    #[error("{0}")]
    Transient(String),
}

impl From<sqlx::Error> for StepError {
    /// Data and integrity errors fail the file at once with the database's reason; connection
    /// loss, deadlocks and the like are retried (see `timeline_core::db::classify`).
    fn from(e: sqlx::Error) -> Self {
        match db::classify(&e) {
            db::ErrorClass::Permanent => {
                Self::Permanent(format!("the database refused the file's data: {e}"))
            }
            db::ErrorClass::Transient => Self::Transient(format!("database: {e}")),
        }
    }
}

impl From<timeline_core::storage::Error> for StepError {
    fn from(e: timeline_core::storage::Error) -> Self {
        match e {
            timeline_core::storage::Error::NotFound(_) => {
                Self::Permanent("the original is missing from storage".into())
            }
            // The reason names no key or path; the log keeps the whole error.
            other => {
                tracing::warn!(error = %other, "storage error");
                Self::Transient(other.reason())
            }
        }
    }
}

impl From<timeline_core::jobs::Error> for StepError {
    fn from(e: timeline_core::jobs::Error) -> Self {
        Self::Transient(e.to_string())
    }
}
