//! The job poll as one statement: the token check, its use recorded when due, the scope to its
//! user and the read of the job with its first failures, in one call of `poll_job`
//! (migrations/20261207000028_poll_in_one_statement.sql) outside any explicit transaction.
//!
//! Why not `query!` here: sqlx sends a statement with parameters in two exchanges (parse and
//! describe, then bind and execute), and outside an explicit transaction a transaction
//! pooler may send the two to different server connections, so a parameterised poll needed
//! `BEGIN` and `COMMIT` around it: six round trips, each forwarded by the pooler. A simple
//! query is one exchange. Its values are written into the text, and none can become SQL:
//! bytes and strings go as lowercase hex digits (`decode(…, 'hex')`), the rest are formatted
//! from Rust types whose text is digits, hex and dashes (a UUID, integers, a boolean).

use serde::Deserialize;
use sqlx::{PgConnection, Row as _};
use uuid::Uuid;

use super::jobs::JobError;
use super::users::{Audit, LAST_USED_EVERY_SECS};
use crate::models::system::DataProcessingJob;

/// What a poll asks.
#[derive(Debug, Clone, Copy)]
pub struct PollArgs<'a> {
    pub token_hash: &'a [u8; 32],
    pub audit: Audit<'a>,
    pub job: Uuid,
    /// How many of the job's failed files to read.
    pub errors: i64,
    /// Whether the token's use may be recorded (a write): false on a read replica.
    pub record: bool,
}

/// What a poll found.
#[derive(Debug)]
pub enum Poll {
    /// No valid token of an active user.
    Unauthorized,
    /// The token's use is due to be recorded and the poll could not write (`record` false):
    /// nothing was read.
    Stale { user: Uuid },
    /// No job of this id that the user can see.
    Missing { user: Uuid },
    Found {
        user: Uuid,
        job: DataProcessingJob,
        errors: Vec<JobError>,
    },
}

/// `poll_job`'s answer, as JSON.
#[derive(Deserialize)]
struct Answer {
    user_id: Uuid,
    stale: bool,
    job: Option<JobRow>,
}

/// A row of `job_with_errors`.
#[derive(Deserialize)]
struct JobRow {
    #[serde(flatten)]
    job: DataProcessingJob,
    error_media_ids: Vec<Uuid>,
    error_filenames: Vec<String>,
    error_messages: Vec<Option<String>>,
}

/// Runs the poll on `conn`, which must not be inside a transaction the caller keeps: the
/// statement is its own.
pub async fn poll_job(conn: &mut PgConnection, args: PollArgs<'_>) -> Result<Poll, sqlx::Error> {
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(statement(&args)))
        .fetch_all(conn)
        .await?;
    let text: Option<String> = match rows.first() {
        Some(row) => row.try_get(0)?,
        None => None,
    };
    let Some(text) = text else {
        return Ok(Poll::Unauthorized);
    };
    let answer: Answer =
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let user = answer.user_id;
    Ok(match answer.job {
        _ if answer.stale => Poll::Stale { user },
        None => Poll::Missing { user },
        Some(row) => Poll::Found {
            user,
            errors: JobError::zipped(row.error_media_ids, row.error_filenames, row.error_messages),
            job: row.job,
        },
    })
}

/// The statement's text (see the module's note on why no value can become SQL).
fn statement(args: &PollArgs<'_>) -> String {
    format!(
        "SELECT poll_job({}, {}, {}, {}, {}, {}, '{}'::uuid, {})::text",
        bytes(args.token_hash),
        LAST_USED_EVERY_SECS,
        args.record,
        text(args.audit.request_id),
        text(args.audit.user_agent),
        text(args.audit.client_ip),
        args.job.as_hyphenated(),
        args.errors,
    )
}

/// A `bytea` written as hex digits.
fn bytes(b: &[u8]) -> String {
    format!("decode('{}', 'hex')", hex::encode(b))
}

/// A `text` written as the hex digits of its UTF-8 bytes.
fn text(s: &str) -> String {
    format!("convert_from({}, 'UTF8')", bytes(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_value_reaches_the_statement_as_sql() {
        let hash = [0xabu8; 32];
        let hostile = "'); DROP TABLE users; --\\x";
        let args = PollArgs {
            token_hash: &hash,
            audit: Audit {
                request_id: hostile,
                user_agent: "ü",
                client_ip: "",
            },
            job: Uuid::nil(),
            errors: 3,
            record: true,
        };
        let sql = statement(&args);
        assert!(!sql.contains("DROP"), "{sql}");
        // Every quote is one the statement itself wrote: four `decode('…', 'hex')`, three
        // `'UTF8'` and the UUID's.
        assert_eq!(sql.matches('\'').count(), 4 * 4 + 3 * 2 + 2, "{sql}");
        assert!(
            sql.contains("convert_from(decode('c3bc', 'hex'), 'UTF8')"),
            "{sql}"
        );
        assert!(
            sql.contains("'00000000-0000-0000-0000-000000000000'::uuid, 3)"),
            "{sql}"
        );
        assert!(
            sql.starts_with(&format!(
                "SELECT poll_job(decode('{}', 'hex'), 300, true",
                "ab".repeat(32)
            )),
            "{sql}"
        );
    }
}
