//! One apalis worker pool per queue, on apalis-postgres: wake-ups from the process's one
//! LISTEN (see `wake`) plus a polling fallback, explicit heartbeat and orphan settings,
//! per-pool concurrency, panics caught as the last guard, and a monitor that drains in-flight
//! steps on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::Config;
use timeline_core::jobs::{MediaTask, Step};

use crate::backend::StepStorage;
use crate::context::Context;
use crate::step;
use crate::wake::{self, Lane, Wakers};

/// Heartbeat period. With `MISSED_HEARTBEATS`, a killed worker's tasks return to the queue
/// about 20 s after its last beat, well inside the 60 s recovery target.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
pub const MISSED_HEARTBEATS: usize = 4;
/// Polling fallback when a NOTIFY is missed (connection drop, listener restart).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long SIGTERM waits for steps in flight before the process exits (unfinished ones are
/// re-queued by the orphan sweep of the next worker).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A unique worker name per boot, so heartbeats and locks of a restarted process never collide.
pub(crate) fn worker_name(pool: &str, index: usize) -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{index}",
        pool,
        host.trim(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Which tasks of a step's queue a pool takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    /// Every task, interactive ones first.
    Regular,
    /// Interactive tasks only (worker type `<queue>:interactive`).
    Express,
}

/// Every pool's queue settings (the bench's too), for a pool of `slots` slots.
pub fn config(pool: &str, slots: usize) -> Config {
    // A fetch takes no more tasks than there are slots free (`backend`'s
    // `StepPersistence::demand`), whatever the batch size: a task fetched is locked to this
    // pool until a slot frees, so a prefetch beyond the free slots would hold bulk tasks ahead
    // of an upload that arrives meanwhile (measured with scripts/bench-priority.sh: import
    // 1.26 → 1.31 images/s, upload p50 3.07 → 2.93 s, a batch of `concurrency` against 1).
    Config::default()
        .queue(pool)
        .batch_size(slots.max(1))
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        // The fetch itself marks a task `Running` (`apalis.get_jobs` as
        // `timeline_core::db::migrate` defines it): apalis's separate lock, one more
        // transaction per task, would change nothing.
        .lock_tasks(false)
}

/// A pool's backend: `queue` fetched by poll, woken by the process's listener (see `wake`).
/// An express pool fetches the same queue through its `:interactive` name (see
/// `timeline_core::db::migrate::lane_fetch`) and is woken only by interactive tasks.
fn backend(
    ctx: &Context,
    (step, kind): (Step, PoolKind),
    slots: usize,
    wakers: &Wakers,
) -> PollWith<StepStorage<MediaTask>, Strategy> {
    let (queue, lane) = match kind {
        PoolKind::Regular => (step.queue().to_owned(), Lane::Regular),
        PoolKind::Express => (step.express_pool(), Lane::Express),
    };
    let wake = Strategy::new()
        .stream(wakers.stream(step, lane))
        .interval(POLL_INTERVAL);
    let config = config(&queue, slots);
    StepStorage::<MediaTask>::new(&ctx.db, config, Some(slots), ctx.acked.clone())
        .poll_with_strategy(wake)
}

/// A task's attempt limit as recorded in its queue row when it was queued. The step gives up
/// by it, not by this worker's own setting: a worker configured apart from the process that
/// queued the task would otherwise retry a task the queue has already given up on (the file
/// stuck `processing`) or give up on one the queue would retry.
#[derive(Debug, Clone, Copy)]
struct MaxAttempts(usize);

impl<Args: Sync> FromRequest<Task<Args>> for MaxAttempts {
    type Error = std::convert::Infallible;
    async fn from_request(task: &Task<Args>) -> Result<Self, Self::Error> {
        Ok(Self(
            task.max_attempts()
                .unwrap_or_else(timeline_core::jobs::max_attempts),
        ))
    }
}

/// The apalis handler: dispatches to the step and maps our error classes.
async fn handle(
    task: MediaTask,
    ctx: Data<Arc<Context>>,
    attempt: Attempt,
    MaxAttempts(max_attempts): MaxAttempts,
    step: Data<Step>,
    task_id: TaskId,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let n = attempt.current();
    let attempt_i32 = i32::try_from(n.max(1)).unwrap_or(i32::MAX);
    let ctx: &Context = &ctx;
    let step = *step;
    let run = step::run(ctx, step, task, (n, max_attempts), || async move {
        match step {
            Step::Hash => crate::hash::run(ctx, task, attempt_i32).await,
            Step::Exif => crate::exif::run(ctx, task, attempt_i32).await,
            Step::Thumbnail => crate::thumbnail::run(ctx, task, attempt_i32).await,
            Step::Video => crate::video::run(ctx, task, attempt_i32).await,
        }
    });
    // The objects the step names belong to this task (see timeline_core::inflight::STEP_TASK).
    let run = timeline_core::inflight::STEP_TASK.scope(task_id.to_string(), run);
    // The step's final transaction acknowledges its task (see `crate::ack`), but for a
    // reprocessing, whose job is counted after its step, in a transaction that may fail.
    let result = if task.refresh {
        run.await
    } else {
        let current = crate::ack::Current {
            task_id: task_id.to_string(),
            worker: worker.name().to_owned(),
            attempt: attempt_i32,
            acked: ctx.acked.clone(),
        };
        crate::ack::scope(current, run).await
    };
    if let Err(e) = result {
        // Only transient errors come back here (permanent ones are recorded as the file's
        // failure by `step::run`): persist the backoff before apalis records the failure.
        schedule_retry(ctx, &task_id, worker.name(), n).await;
        return Err(Box::new(e));
    }
    Ok(())
}

/// Moves the failed task's `run_at` forward before apalis records the failure, so the retry
/// waits out its backoff in the queue (see `timeline_core::db::queue::delay_retry`). Best effort:
/// if the database is away, the task is re-queued by the heartbeat sweep instead.
pub(crate) async fn schedule_retry(ctx: &Context, task_id: &TaskId, worker: &str, attempt: usize) {
    let delay = timeline_core::jobs::retry_delay_from(attempt, ctx.retry_base);
    let id = task_id.to_string();
    let result = async {
        let mut tx = ctx.db.begin().await?;
        let delayed = timeline_core::db::queue::delay_retry(&mut tx, &id, worker, delay).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(delayed)
    }
    .await;
    match result {
        Ok(true) => {
            tracing::info!(task.id = %id, delay_ms = delay.as_millis() as u64, "retry scheduled")
        }
        Ok(false) => {
            tracing::warn!(task.id = %id, "task no longer held by this worker; its retry is left as it is")
        }
        Err(e) => tracing::warn!(task.id = %id, error = %e, "could not delay the retry"),
    }
}

/// Runs the pools of `steps` (and the `library` pool, with `library` slots unless 0) until
/// SIGTERM/Ctrl-C: per step a regular pool of `concurrency` slots and, unless `express` is 0 or lanes are off (`TIMELINE_PRIORITY_LANES`), an express
/// pool of `express` slots that only interactive tasks may use. Bulk work can therefore never hold every slot an upload could use; the
/// express pools sit idle (one fetch per announced upload, one poll per interval) otherwise.
pub async fn run(
    ctx: Arc<Context>,
    steps: &[Step],
    concurrency: usize,
    express: usize,
    library: usize,
) -> Result<(), MonitorError> {
    // Without lanes every task is queued at one priority and an express pool, which takes only
    // interactive tasks, could never fetch anything: its slots join the regular pool instead.
    let (concurrency, express) = if timeline_core::jobs::lanes_enabled() {
        (concurrency, express)
    } else {
        if express > 0 {
            tracing::info!(
                express,
                "priority lanes are off: the express slots join the regular pools"
            );
        }
        (concurrency + express, 0)
    };
    let wakers = Wakers::new(steps);
    let listener = tokio::spawn(wake::listen(ctx.session.clone(), wakers.clone()));
    let result = run_pools(ctx, steps, (concurrency, express, library), wakers).await;
    listener.abort();
    result
}

async fn run_pools(
    ctx: Arc<Context>,
    steps: &[Step],
    (concurrency, express, library): (usize, usize, usize),
    wakers: Wakers,
) -> Result<(), MonitorError> {
    // A pool whose backend fails (the database went away: every poll and heartbeat errors)
    // is rebuilt rather than left dead; each attempt first waits out the pool's acquire
    // timeout, so a long outage costs a warning every few seconds, not a spin. Tasks the old
    // pool held are re-queued by the heartbeat sweep.
    let mut monitor = Monitor::new()
        .shutdown_timeout(SHUTDOWN_GRACE)
        .should_restart(|worker, error| {
            tracing::warn!(worker = %worker.name(), restarts = worker.restarts(), %error, "worker pool failed; restarting");
            true
        });
    for &step in steps {
        monitor = register(monitor, &ctx, step, PoolKind::Regular, concurrency, &wakers);
        if express > 0 {
            monitor = register(monitor, &ctx, step, PoolKind::Express, express, &wakers);
        }
    }
    if library > 0 {
        monitor = crate::library::register(monitor, &ctx, library);
    }
    tracing::info!(queues = ?steps.iter().map(|s| s.queue()).collect::<Vec<_>>(), concurrency, express, library, "worker pools starting");
    monitor
        .run_with_signal(async {
            timeline_core::shutdown::signal().await;
            Ok(())
        })
        .await
}

/// Adds one pool of `step` to the monitor (rebuilt with a new name on each restart).
fn register(
    monitor: Monitor,
    ctx: &Arc<Context>,
    step: Step,
    kind: PoolKind,
    concurrency: usize,
    wakers: &Wakers,
) -> Monitor {
    let ctx = ctx.clone();
    let wakers = wakers.clone();
    monitor.register(move |restarts| {
        let name = match kind {
            PoolKind::Regular => step.queue().to_owned(),
            PoolKind::Express => step.express_pool(),
        };
        let backend = backend(&ctx, (step, kind), concurrency, &wakers);
        WorkerBuilder::new(worker_name(&name, restarts))
            .backend(backend)
            .data(ctx.clone())
            .data(step)
            .catch_panic()
            .concurrency(concurrency)
            .parallelize(tokio::spawn)
            .build(handle)
    })
}
