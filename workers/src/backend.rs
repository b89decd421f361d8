//! The step pools' queue backend: apalis-postgres 1.0.0's own (`PostgresStorage`, whose
//! queries this calls), with one change: a completion event of a task that its step already
//! acknowledged in its final transaction (see `ack`) is dropped, so a finished task costs the
//! database no transaction of its own. Every other event (a failure, a retry, a task no step
//! acknowledged) goes to apalis's acknowledgement as before. And a fetch takes as many tasks
//! as the pool has free slots, not a fixed batch (see `StepPersistence::demand`).
//!
//! Written here, not configured, because apalis-postgres keeps its persistence type private;
//! this mirrors its `backend.rs` and `persistence.rs` (compare them on an apalis upgrade,
//! docs/MIGRATIONS.md). Its worker registration, whose timestamp type is private too, is our
//! `db::queue::register_worker`.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use apalis::prelude::{Backend, WorkerContext};
use apalis_codec::json::JsonCodec;
use apalis_core::backend::persistence::{Persisted, Persistence, TaskEvent, TaskPersistLayer};
use apalis_core::backend::{BackendConfig, WireFormatBackend, finalize::Durable};
use apalis_postgres::{Config, Error, PgTask, queries};
use serde_json::Value;
use timeline_core::db::tx::TxPool;

use crate::ack::Acked;

/// A step pool's backend (see the module's documentation).
pub struct StepStorage<Args> {
    persistence: Persisted<StepPersistence>,
    codec: JsonCodec,
    _marker: PhantomData<Args>,
}

impl<Args> std::fmt::Debug for StepStorage<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepStorage")
            .field("queue", &self.persistence.config.queue)
            .finish_non_exhaustive()
    }
}

impl<Args> Clone for StepStorage<Args> {
    fn clone(&self) -> Self {
        Self {
            persistence: self.persistence.clone(),
            codec: self.codec.clone(),
            _marker: PhantomData,
        }
    }
}

impl<Args> StepStorage<Args> {
    /// The backend of a pool with `config`. With `slots` (the pool's tasks in flight at
    /// most), a fetch takes only as many tasks as are free of them; without, always the
    /// configured batch (the bench's batched path). `acked` is shared with the steps' tasks.
    pub fn new(db: &TxPool, config: Config, slots: Option<usize>, acked: Acked) -> Self {
        Self {
            persistence: Persisted::new(StepPersistence {
                db: db.clone(),
                config,
                slots,
                acked,
            }),
            codec: JsonCodec::default(),
            _marker: PhantomData,
        }
    }
}

impl<Args> Backend for StepStorage<Args> {
    type Task = PgTask;
    type Error = Error;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        let beat = self.persistence.config.heartbeat_interval;
        self.persistence.poll_ready(cx, worker, beat)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<PgTask, Self::Error>>> {
        self.persistence.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.persistence.poll_close(cx, worker)
    }
}

impl<Args> BackendConfig for StepStorage<Args> {
    type Args = Args;
    type Kind = Durable;
    type Id = ulid::Ulid;
    type Config = Config;
    type Layer = TaskPersistLayer<JsonCodec<Value>, Value>;

    fn config(&self) -> &Self::Config {
        &self.persistence.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        let config = self.persistence.config.clone();
        self.persistence
            .layer(JsonCodec::<Value>::default(), config.batch_size)
            .persist_results(config.persist_results)
            .lock_tasks(config.lock_tasks)
    }
}

impl<Args> WireFormatBackend for StepStorage<Args> {
    type Codec = JsonCodec;
    type Compact = Vec<u8>;

    fn codec(&self) -> &Self::Codec {
        &self.codec
    }
}

/// apalis-postgres's persistence, but for the acknowledgements steps wrote themselves.
#[derive(Debug, Clone)]
struct StepPersistence {
    db: TxPool,
    config: Config,
    /// The pool's slots (tasks it runs at once), when a fetch takes only the free ones.
    slots: Option<usize>,
    acked: Acked,
}

impl StepPersistence {
    /// This fetch's settings: as many tasks as the pool has slots free, at most the configured
    /// batch (Oban's producers fetch the same way: their limit less what runs). apalis asks for
    /// the next task only once a slot is free, so every task fetched starts at once: none is
    /// held locked to this pool while an upload that arrives meanwhile waits (a fixed batch
    /// of `slots` did that, see `pools::config`). And the slots that free while one fetch runs
    /// are filled by the next in one statement, where a fetch of one task at a time bounded a
    /// pool at one round trip per task. apalis counts a task in flight from the moment a slot
    /// takes it until just before the slot is given back, so a fetch can at most take a task
    /// whose slot is being given back in that instant.
    fn demand(&self, worker: &WorkerContext) -> Config {
        let mut config = self.config.clone();
        if let Some(slots) = self.slots {
            let free = slots.saturating_sub(worker.task_count());
            config.batch_size = free.min(self.config.batch_size).max(1);
        }
        config
    }
}

impl Persistence for StepPersistence {
    type Compact = Vec<u8>;
    type Error = Error;
    type Response = Value;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        let dead_for = self.config.orphaned_duration().as_secs();
        let queue = self.config.queue.as_ref();
        let count = queries::reenqueue_orphaned(&mut *tx, queue, dead_for).await?;
        let registered = timeline_core::db::queue::register_worker(
            &mut tx,
            worker.name(),
            queue,
            worker.get_service(),
        )
        .await?;
        if !registered {
            return Err(Error::WorkerAlreadyExists(worker.name().to_owned()));
        }
        tx.commit().await?;
        if count > 0 {
            tracing::debug!(count, worker = worker.name(), "re-enqueued orphaned tasks");
        }
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        let queue = self.config.queue.as_ref();
        let dead_for = self.config.orphaned_duration().as_secs();
        queries::keep_alive(&mut *tx, queue, worker).await?;
        let count = queries::reenqueue_orphaned(&mut *tx, queue, dead_for).await?;
        tx.commit().await?;
        if count > 0 {
            tracing::debug!(count, worker = worker.name(), "re-enqueued orphaned tasks");
        }
        Ok(())
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<PgTask>, Error> {
        // The fetch is one statement, a transaction of its own: apalis's `BEGIN` and `COMMIT`
        // around it were two more round trips per task. Behind a transaction pooler they stay:
        // sqlx's unnamed statement (the pooler allows no named ones) is parsed and executed in
        // two exchanges, which the pooler may send to two server connections outside a
        // transaction.
        let config = self.demand(worker);
        if !self.db.pooled() {
            let mut conn = self.db.pool().acquire().await?;
            return queries::fetch_next(&mut *conn, &config, worker).await;
        }
        let mut tx = self.db.begin().await?;
        let tasks = queries::fetch_next(&mut *tx, &config, worker).await?;
        tx.commit().await?;
        Ok(tasks)
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Value>>,
        worker: &WorkerContext,
    ) -> Result<(), Error> {
        let mut locks = Vec::new();
        let mut acks = Vec::new();
        let mut finished = HashSet::new();
        for event in &events {
            match event {
                TaskEvent::Lock { task_id } => locks.push(task_id.to_string()),
                TaskEvent::Complete(p) => {
                    let id = p.task_id().to_string();
                    // Acknowledged with its step's results already: nothing left to write.
                    if !self.acked.take(&id) {
                        acks.push(p);
                    }
                    finished.insert(id);
                }
                _ => {}
            }
        }
        locks.retain(|id| !finished.contains(id));
        if locks.is_empty() && acks.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        if !acks.is_empty() {
            queries::handle_results(&mut *tx, &acks, worker.name()).await?;
        }
        if !locks.is_empty() {
            queries::lock_tasks(&mut *tx, &locks, worker.name()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<PgTask>,
        worker: &WorkerContext,
    ) -> Result<u64, Error> {
        let ids = tasks
            .iter()
            .filter_map(|t| t.task_id().map(ToString::to_string))
            .collect::<Vec<_>>();
        let mut tx = self.db.begin().await?;
        let queue = self.config.queue.as_ref();
        let count = queries::reenqueue_abandoned(&mut *tx, queue, worker.name(), &ids).await?;
        if count as usize != tasks.len() {
            return Err(Error::ReenqueueMismatch {
                queued: tasks.len(),
                abandoned: count as usize,
            });
        }
        tx.commit().await?;
        Ok(count)
    }

    async fn push_tasks(&mut self, tasks: Vec<PgTask>) -> Result<(), Error> {
        let queue = self.config.queue.as_ref();
        let mut tx = self.db.begin().await?;
        queries::push_tasks(&mut *tx, queue, tasks).await?;
        tx.commit().await?;
        Ok(())
    }
}
