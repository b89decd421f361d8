//! Wake-ups for the express pools: one `LISTEN` per process on `jobs::INTERACTIVE_CHANNEL`
//! (announced by a trigger for interactive tasks only, see `db::migrate::lane_fetch`), turned
//! into a wake-up of that queue's express pool. Bulk inserts never wake them; a missed
//! notification costs at most the pools' polling interval.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use timeline::jobs::{INTERACTIVE_CHANNEL, Step};
use tokio::sync::Notify;

/// One wake-up signal per step. `Notify::notify_one` keeps one permit when the pool is busy,
/// so a burst of uploads costs the pool one extra fetch, not one per upload.
#[derive(Debug, Clone, Default)]
pub struct Wakers(Arc<HashMap<Step, Arc<Notify>>>);

impl Wakers {
    pub fn new(steps: &[Step]) -> Self {
        Self(Arc::new(
            steps
                .iter()
                .map(|&s| (s, Arc::new(Notify::new())))
                .collect(),
        ))
    }

    fn wake(&self, queue: &str) {
        if let Some(n) = Step::from_queue(queue).and_then(|s| self.0.get(&s)) {
            n.notify_one();
        }
    }

    fn wake_all(&self) {
        self.0.values().for_each(|n| n.notify_one());
    }

    /// The stream an express pool's poll strategy waits on.
    pub fn stream(&self, step: Step) -> WakeStream {
        let notify = self.0.get(&step).cloned().unwrap_or_default();
        let stream = futures::stream::unfold(notify, |n| async move {
            n.notified().await;
            Some(((), n))
        });
        WakeStream(Mutex::new(stream.boxed()))
    }
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
pub async fn listen(pool: PgPool, wakers: Wakers) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "express pools: cannot listen; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(INTERACTIVE_CHANNEL).await {
            tracing::warn!(error = %e, "express pools: LISTEN failed; polling meanwhile");
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        wakers.wake_all();
        loop {
            match listener.recv().await {
                Ok(n) => wakers.wake(n.payload()),
                Err(e) => {
                    tracing::warn!(error = %e, "express pools: listener lost; reconnecting");
                    wakers.wake_all();
                    break;
                }
            }
        }
    }
}
