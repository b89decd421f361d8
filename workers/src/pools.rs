//! One apalis worker pool per queue, on apalis-postgres: LISTEN/NOTIFY wake-up plus a polling
//! fallback, explicit heartbeat and orphan settings, per-pool concurrency, panics caught as the
//! last guard, and a monitor that drains in-flight steps on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use timeline::jobs::{MediaTask, Step};

use crate::context::Context;
use crate::step;

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
fn worker_name(step: Step, index: usize) -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{index}",
        step.queue(),
        host.trim(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

fn backend(ctx: &Context, step: Step) -> PollWith<PostgresStorage<MediaTask>, Strategy> {
    // One task per fetch: a task fetched is locked to this pool until a slot frees, so a
    // deeper prefetch would hold bulk tasks ahead of an upload that arrives meanwhile
    // (measured with scripts/bench-priority.sh: import 1.26 → 1.31 images/s, upload p50
    // 3.07 → 2.93 s against a batch of `concurrency`).
    let config = Config::default()
        .queue(step.queue())
        .batch_size(1)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS);
    let wake = Strategy::new()
        .stream(Pubsub::new(ctx.pool.clone(), step.queue().to_owned()))
        .interval(POLL_INTERVAL);
    PostgresStorage::<MediaTask>::new(&ctx.pool)
        .with_config(config)
        .poll_with_strategy(wake)
}

/// The apalis handler: dispatches to the step and maps our error classes.
async fn handle(
    task: MediaTask,
    ctx: Data<Arc<Context>>,
    attempt: Attempt,
    step: Data<Step>,
    task_id: TaskId,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let n = attempt.current();
    let attempt_i32 = i32::try_from(n.max(1)).unwrap_or(i32::MAX);
    let ctx: &Context = &ctx;
    let step = *step;
    let result = step::run(ctx, step, task, n, || async move {
        match step {
            Step::Hash => crate::hash::run(ctx, task, attempt_i32).await,
            Step::Exif => crate::exif::run(ctx, task, attempt_i32).await,
            Step::Thumbnail => crate::thumbnail::run(ctx, task, attempt_i32).await,
            Step::Video => crate::video::run(ctx, task, attempt_i32).await,
        }
    })
    .await;
    if let Err(e) = result {
        // Only transient errors come back here (permanent ones are recorded as the file's
        // failure by `step::run`): persist the backoff before apalis records the failure.
        schedule_retry(ctx, &task_id, worker.name(), n).await;
        return Err(Box::new(e));
    }
    Ok(())
}

/// Moves the failed task's `run_at` forward before apalis records the failure, so the retry
/// waits out its backoff in the queue (see `timeline::db::queue::delay_retry`). Best effort:
/// if the database is away, the task is re-queued by the heartbeat sweep instead.
async fn schedule_retry(ctx: &Context, task_id: &TaskId, worker: &str, attempt: usize) {
    let delay = timeline::jobs::retry_delay_from(attempt, ctx.retry_base);
    let id = task_id.to_string();
    let result = async {
        let mut conn = ctx.pool.acquire().await?;
        timeline::db::queue::delay_retry(&mut conn, &id, worker, delay).await
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

/// Runs the pools of `steps` until SIGTERM/Ctrl-C.
pub async fn run(
    ctx: Arc<Context>,
    steps: &[Step],
    concurrency: usize,
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
        let ctx = ctx.clone();
        monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(worker_name(step, restarts))
                .backend(backend(&ctx, step))
                .data(ctx.clone())
                .data(step)
                .catch_panic()
                .concurrency(concurrency)
                .parallelize(tokio::spawn)
                .build(handle)
        });
    }
    tracing::info!(queues = ?steps.iter().map(|s| s.queue()).collect::<Vec<_>>(), concurrency, "worker pools starting");
    monitor
        .run_with_signal(async {
            timeline::http::shutdown_signal().await;
            Ok(())
        })
        .await
}
