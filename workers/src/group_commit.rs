//! Group commit: the final writes of many tasks in one transaction. Tasks hand their item to
//! one writer and wait; the writer takes everything waiting (up to a limit), writes it in one
//! transaction and answers each task with the outcome. While it commits, the next group
//! gathers, so a task waits at most two commits and the database sees one transaction per
//! group instead of one per task (graphile-worker batches its completions the same way).
//!
//! A task's write and its acknowledgement still commit together: the task returns only once
//! its group has committed, and a failed group fails each of its tasks, which apalis then
//! retries as it would a failed step.

use tokio::sync::{mpsc, oneshot};

/// Why an item was not written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The group's transaction failed (the database's message).
    #[error("group commit failed: {0}")]
    Failed(String),
    /// The writer is gone (its runtime is shutting down).
    #[error("group commit stopped")]
    Stopped,
}

/// An item and where its outcome goes.
type Pending<T> = (T, oneshot::Sender<Result<(), Error>>);

/// A writer of groups of `T` (see the module's documentation). Cloning shares the writer.
#[derive(Debug)]
pub struct GroupCommit<T> {
    sender: mpsc::UnboundedSender<Pending<T>>,
}

impl<T> Clone for GroupCommit<T> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<T: Send + 'static> GroupCommit<T> {
    /// Starts the writer on the current runtime: `write` writes one group in one
    /// transaction, at most `max` items. It stops once every clone is dropped.
    pub fn start<W, F>(max: usize, write: W) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Result<(), sqlx::Error>> + Send,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Pending<T>>();
        let max = max.max(1);
        tokio::spawn(async move {
            let mut waiting = Vec::with_capacity(max);
            while receiver.recv_many(&mut waiting, max).await > 0 {
                let (items, replies): (Vec<T>, Vec<_>) = waiting.drain(..).unzip();
                let outcome = write(items).await.map_err(|e| Error::Failed(e.to_string()));
                if let Err(e) = &outcome {
                    tracing::warn!(error = %e, tasks = replies.len(), "a group commit failed");
                }
                for reply in replies {
                    let _ = reply.send(outcome.clone());
                }
            }
        });
        Self { sender }
    }

    /// Writes `item` with the next group; returns once that group has committed.
    pub async fn write(&self, item: T) -> Result<(), Error> {
        let (reply, outcome) = oneshot::channel();
        self.sender
            .send((item, reply))
            .map_err(|_| Error::Stopped)?;
        outcome.await.map_err(|_| Error::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Items waiting together are written together; a failed group fails each of its items
    /// and the writer goes on with the next.
    #[tokio::test]
    async fn a_group_is_written_once_and_its_failure_reaches_each_item() {
        let groups = Arc::new(std::sync::Mutex::new(Vec::<Vec<u32>>::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let (seen, count) = (groups.clone(), calls.clone());
        let writer = GroupCommit::start(10, move |items: Vec<u32>| {
            let (seen, count) = (seen.clone(), count.clone());
            async move {
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                if let Ok(mut g) = seen.lock() {
                    g.push(items);
                }
                // The first group's transaction fails.
                if first {
                    return Err(sqlx::Error::Protocol("connection reset".into()));
                }
                Ok(())
            }
        });
        // Three items sent before the writer runs: one group.
        let outcomes = futures::future::join_all((0..3).map(|n| writer.write(n))).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Err(Error::Failed(m)) if m.contains("connection reset"))),
            "{outcomes:?}"
        );
        assert_eq!(writer.write(7).await.ok(), Some(()));
        let groups = groups.lock().map(|g| g.clone()).unwrap_or_default();
        assert_eq!(groups, [vec![0, 1, 2], vec![7]]);
    }
}
