//! The `library` queue: exports, account erasures and imports of the API, one task per request
//! (see `timeline_core::export`, `timeline_core::erasure` and `timeline_core::import::api`).
//! Each keeps its state in its own row and is fenced there, so a task run twice (its worker
//! died, the queue ran it again) resumes the work or finds it done. An export or an erasure
//! that stops on trouble of the store or the database records it in its row and ends, and the
//! reconciler resumes it from the rows once it stalls; an import so stopped is retried by the
//! queue after a backoff, as a step is.

use std::sync::Arc;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use timeline_core::jobs::{LIBRARY_QUEUE, LibraryTask};

use crate::context::Context;
use crate::pools::{POLL_INTERVAL, schedule_retry, worker_name};

/// The apalis handler: runs the task's work to its end. An export's or an erasure's failure
/// is the work's to record (its row says why, and the reconciler decides whether it runs
/// again); an import stopped by an outage is handed back to the queue with a delay, as a step.
async fn handle(
    task: LibraryTask,
    ctx: Data<Arc<Context>>,
    attempt: Attempt,
    task_id: TaskId,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    match task {
        LibraryTask::Import { job_id } => {
            use timeline_core::import::api::{self, Outcome};
            let outcome = api::run(ctx.db.pool(), &ctx.storage, job_id).await;
            let why = match outcome {
                Ok(Outcome::Done | Outcome::Failed) => return Ok(()),
                Ok(Outcome::Interrupted(why)) => why,
                Err(e) => e.to_string(),
            };
            tracing::warn!(job.id = %job_id, error = %why, "import interrupted; it runs again");
            schedule_retry(&ctx, &task_id, worker.name(), attempt.current()).await;
            return Err(why.into());
        }
        LibraryTask::Export { export_id } => {
            match timeline_core::export::run(ctx.db.pool(), &ctx.storage, export_id).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::info!(export.id = %export_id, "export already done or taken over")
                }
                Err(e) => tracing::warn!(export.id = %export_id, error = %e,
                                         "export stopped; the reconciler resumes it"),
            }
        }
        LibraryTask::Erasure { job_id } => {
            match timeline_core::erasure::run(ctx.db.pool(), &ctx.storage, job_id).await {
                Ok(report) => {
                    tracing::info!(job.id = %job_id, erased = report.erased, "erasure ran")
                }
                Err(e) => tracing::warn!(job.id = %job_id, error = %e,
                                         "erasure stopped; the reconciler finishes it"),
            }
        }
    }
    Ok(())
}

/// Adds the `library` pool with `concurrency` slots to the monitor. It polls (no wake-up):
/// an export or an erasure that starts within [`POLL_INTERVAL`] is soon enough.
pub fn register(monitor: Monitor, ctx: &Arc<Context>, concurrency: usize) -> Monitor {
    let ctx = ctx.clone();
    monitor.register(move |restarts| {
        // apalis's own backend fetches a fixed batch, free slots or not: one task at a time,
        // so that no export waits locked to a pool whose slots are all busy.
        let config = crate::pools::config(LIBRARY_QUEUE, 1);
        let backend = PostgresStorage::<LibraryTask>::new(ctx.db.pool())
            .with_config(config)
            .poll_with_strategy(Strategy::new().interval(POLL_INTERVAL));
        WorkerBuilder::new(worker_name(LIBRARY_QUEUE, restarts))
            .backend(backend)
            .data(ctx.clone())
            .catch_panic()
            .concurrency(concurrency)
            .parallelize(tokio::spawn)
            .build(handle)
    })
}
