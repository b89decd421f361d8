//! A step's queue task acknowledged inside the step's own final transaction: the results,
//! the step record and `Done` commit together, and apalis's separate acknowledgement (a
//! transaction of its own per batch of finished tasks) is skipped for it (see `backend`).
//!
//! A task whose step ends any other way (skipped, failed, retried, its final transaction's
//! commit outcome unknown) is acknowledged by apalis as before, so nothing depends on this
//! path succeeding.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sqlx::PgConnection;
use timeline_core::db::tx::Tx;

/// The tasks of this process acknowledged in a step's transaction whose apalis
/// acknowledgement has not come by yet. Each entry lives from its commit until the task's
/// completion event, which follows the step at once; the set stays as small as the slots.
#[derive(Debug, Clone, Default)]
pub struct Acked(Arc<Mutex<HashSet<String>>>);

impl Acked {
    fn insert(&self, task_id: String) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(task_id);
        }
    }

    /// Whether `task_id` was acknowledged in its step's transaction (forgetting it).
    pub fn take(&self, task_id: &str) -> bool {
        self.0.lock().is_ok_and(|mut set| set.remove(task_id))
    }
}

/// The task a step runs in, as its pool knows it.
#[derive(Debug, Clone)]
pub struct Current {
    pub task_id: String,
    /// The worker holding the task (`apalis.jobs.lock_by`).
    pub worker: String,
    pub attempt: i32,
    pub acked: Acked,
}

impl Current {
    /// Its acknowledgement committed with its step's results: apalis need not acknowledge
    /// the task again.
    pub fn committed(&self) {
        self.acked.insert(self.task_id.clone());
    }
}

tokio::task_local! {
    static CURRENT: Current;
}

/// Runs a step with its task known to [`done_in`].
pub async fn scope<F: Future>(current: Current, step: F) -> F::Output {
    CURRENT.scope(current, step).await
}

/// An acknowledgement written in a transaction that has not committed yet.
#[must_use = "call `committed` once the transaction commits"]
#[derive(Debug)]
pub struct Written(Option<Current>);

impl Written {
    /// The transaction committed: apalis need not acknowledge the task again.
    pub fn committed(self) {
        if let Some(c) = self.0 {
            c.committed();
        }
    }
}

/// Marks the current step's task `Done` on the caller's transaction, as apalis would once the
/// step returns: call it in the step's final transaction, with nothing that can fail left
/// after the commit. Outside a pool (no task), or if the task is no longer this worker's (the
/// heartbeat sweep gave it to another), it changes nothing and apalis's own acknowledgement
/// decides, as before.
pub async fn done_in(conn: &mut PgConnection) -> Result<Written, sqlx::Error> {
    let Ok(current) = CURRENT.try_with(Clone::clone) else {
        return Ok(Written(None));
    };
    let held = timeline_core::db::queue::acknowledge_done(
        conn,
        &current.task_id,
        &current.worker,
        current.attempt,
    )
    .await?;
    Ok(Written(held.then_some(current)))
}

/// Commits a step's final transaction together with its task's acknowledgement
/// ([`done_in`], then the commit, then [`Written::committed`]).
pub async fn commit_done(mut tx: Tx) -> Result<(), sqlx::Error> {
    let ack = done_in(&mut tx).await?;
    tx.commit().await?;
    ack.committed();
    Ok(())
}

/// [`commit_done`] for a group of tasks committed together (`crate::group_commit`): marks
/// each `Done` while its worker holds it, commits, and records those it marked as
/// acknowledged. A task no longer held is left to apalis's own acknowledgement, as there.
pub async fn commit_done_many(mut tx: Tx, tasks: &[Current]) -> Result<(), sqlx::Error> {
    let keys: Vec<(String, String, i32)> = tasks
        .iter()
        .map(|t| (t.task_id.clone(), t.worker.clone(), t.attempt))
        .collect();
    let done = timeline_core::db::queue::acknowledge_done_many(&mut tx, &keys).await?;
    tx.commit().await?;
    let done: HashSet<String> = done.into_iter().collect();
    for task in tasks.iter().filter(|t| done.contains(&t.task_id)) {
        task.committed();
    }
    Ok(())
}
