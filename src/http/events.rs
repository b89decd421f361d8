//! Live job events for `GET /v1/jobs/{id}/events`: one `LISTEN timeline_job_events` per web
//! process (not one database connection per client), fanned out to the SSE streams through a
//! broadcast channel. The database announces every file's end state and every change of a
//! job's progress at commit (triggers in migration 0014), so what a client sees never rolls back.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The channel the triggers announce on.
pub const CHANNEL: &str = "timeline_job_events";

/// One announcement: a file of a job ended (`file`), or a job's progress moved (`progress`).
#[derive(Debug, Clone)]
pub struct JobEvent {
    pub job_id: Uuid,
    /// `file` or `progress`.
    pub kind: String,
    /// The announcement as the database sent it.
    pub data: serde_json::Value,
}

/// The web process's fan-out of job events.
#[derive(Debug, Clone)]
pub struct JobEvents {
    tx: broadcast::Sender<Arc<JobEvent>>,
}

/// Events buffered per slow client before it is told it lagged (it then re-reads the job).
const BUFFER: usize = 4096;

impl JobEvents {
    /// Starts listening (in the background, reconnecting after an outage).
    pub fn start(pool: PgPool) -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        tokio::spawn(listen(pool, tx.clone()));
        Self { tx }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JobEvent>> {
        self.tx.subscribe()
    }
}

/// Listens until the process ends. Announcements made while the connection is down are lost;
/// the SSE streams re-read their job periodically, so a client still sees the end.
async fn listen(pool: PgPool, tx: broadcast::Sender<Arc<JobEvent>>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => {
                            if let Some(event) = parse(n.payload()) {
                                // No subscriber is not an error.
                                let _ = tx.send(Arc::new(event));
                            }
                        }
                        Ok(None) => {
                            tracing::warn!("job events: connection lost; reconnecting");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "job events: listener failed");
                            break;
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "job events: LISTEN failed"),
            },
            Err(e) => tracing::warn!(error = %e, "job events: cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn parse(payload: &str) -> Option<JobEvent> {
    let data: serde_json::Value = serde_json::from_str(payload).ok()?;
    let job_id = data.get("job_id")?.as_str()?.parse().ok()?;
    let kind = data.get("type")?.as_str()?.to_owned();
    Some(JobEvent { job_id, kind, data })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn announcements_parse_and_garbage_is_dropped() {
        let e = parse(
            r#"{"type":"progress","job_id":"7d1c5a52-6f0e-4c3a-9d5e-2f61d6a0c001","progress":50}"#,
        );
        let e = e
            .as_ref()
            .map(|e| (e.kind.as_str(), e.data["progress"].as_i64()));
        assert_eq!(e, Some(("progress", Some(50))));
        assert!(parse("not json").is_none());
        assert!(parse(r#"{"type":"file","job_id":"nope"}"#).is_none());
    }
}
