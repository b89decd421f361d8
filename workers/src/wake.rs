//! Wake-ups for the worker pools, from one `LISTEN` connection per process (not one per
//! queue: behind a transaction pooler a session is the scarce thing, see
//! `timeline_core::db::session_pool`):
//! - `apalis::job::insert`, announced by the queue for every task, wakes that queue's regular
//!   pool;
//! - `jobs::INTERACTIVE_CHANNEL`, announced by a trigger for interactive tasks only (see
//!   `db::migrate::lane_fetch`), wakes that queue's express pool. Bulk inserts never wake them.
//!
//! A missed notification costs at most the pools' polling interval.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use timeline_core::jobs::{INTERACTIVE_CHANNEL, Step};
use tokio::sync::Notify;

/// The queue's own announcement of a new task (apalis-postgres' `notify_new_jobs` trigger):
/// `{"job_type": <queue>, "id": …, "run_at": …}`.
const INSERT_CHANNEL: &str = "apalis::job::insert";

/// Which pools of a step a wake-up is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Regular,
    Express,
}

/// One wake-up signal per step and lane. `Notify::notify_one` keeps one permit when the pool
/// is busy, so a burst of uploads costs the pool one extra fetch, not one per upload.
#[derive(Debug, Clone, Default)]
pub struct Wakers(Arc<HashMap<(Step, Lane), Arc<Notify>>>);

impl Wakers {
    pub fn new(steps: &[Step]) -> Self {
        Self(Arc::new(
            steps
                .iter()
                .flat_map(|&s| [(s, Lane::Regular), (s, Lane::Express)])
                .map(|k| (k, Arc::new(Notify::new())))
                .collect(),
        ))
    }

    fn wake(&self, queue: &str, lane: Lane) {
        if let Some(n) = Step::from_queue(queue).and_then(|s| self.0.get(&(s, lane))) {
            n.notify_one();
        }
    }

    fn wake_all(&self) {
        self.0.values().for_each(|n| n.notify_one());
    }

    /// The stream a pool's poll strategy waits on.
    pub fn stream(&self, step: Step, lane: Lane) -> WakeStream {
        let notify = self.0.get(&(step, lane)).cloned().unwrap_or_default();
        let stream = futures::stream::unfold(notify, |n| async move {
            n.notified().await;
            Some(((), n))
        });
        WakeStream(Mutex::new(stream.boxed()))
    }
}

/// The queue a task announcement names (`None` for anything else).
fn announced_queue(payload: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some(v.get("job_type")?.as_str()?.to_owned())
}

/// A wake-up stream apalis can hold (its strategies must be `Sync`, hence the mutex, which is
/// only ever reached through `&mut`).
pub struct WakeStream(Mutex<BoxStream<'static, ()>>);

impl std::fmt::Debug for WakeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WakeStream")
    }
}

impl Stream for WakeStream {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut()
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .poll_next_unpin(cx)
    }
}

/// Listens until the process ends. A lost connection is re-established (sqlx's listener
/// reconnects inside `recv`); every pool is woken after an error, since announcements made
/// meanwhile were lost.
pub async fn listen(session: PgPool, wakers: Wakers) {
    loop {
        let mut listener = match PgListener::connect_with(&session).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "worker pools: cannot listen; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all([INSERT_CHANNEL, INTERACTIVE_CHANNEL])
            .await
        {
            tracing::warn!(error = %e, "worker pools: LISTEN failed; polling meanwhile");
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        wakers.wake_all();
        loop {
            match listener.recv().await {
                Ok(n) if n.channel() == INTERACTIVE_CHANNEL => {
                    wakers.wake(n.payload(), Lane::Express)
                }
                Ok(n) => {
                    if let Some(queue) = announced_queue(n.payload()) {
                        wakers.wake(&queue, Lane::Regular);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "worker pools: listener lost; reconnecting");
                    wakers.wake_all();
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::announced_queue;

    #[test]
    fn a_task_announcement_names_its_queue() {
        let p = r#"{"job_type":"thumbnail","id":"01J","run_at":"2026-12-04T13:00:00+00:00"}"#;
        assert_eq!(announced_queue(p).as_deref(), Some("thumbnail"));
        assert_eq!(announced_queue("garbage"), None);
        assert_eq!(announced_queue(r#"{"id":"01J"}"#), None);
    }
}
