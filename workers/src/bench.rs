//! `timeline-worker bench --tasks N [--concurrency C] [--batch B] [--fetchers F]`: the queue's
//! ceiling, measured through the real pools. N no-op tasks go to a scratch queue; one apalis
//! pool (or F side by side) drains them with the settings of the real ones (heartbeat, orphan
//! sweep, the fetch that locks and takes as many tasks as the pool has slots free) and, as a
//! real step does, records each task in its own transaction, which acknowledges it: one
//! statement that does both. With `--batch B` (B > 1) it is the queue's batched path: a poll
//! fetches B tasks and the records of the tasks finishing together commit in one
//! transaction with their acknowledgements (`crate::group_commit`). It prints one JSON line:
//! tasks, seconds, tasks per second and PostgreSQL transactions per task (the database's
//! `pg_stat_database` counters over the drain, less the bench's own polling).
//!
//! The scratch queue's rows and its step table are removed at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use timeline_core::db::bench::record_acknowledged;
use timeline_core::db::tx::TxPool;

use crate::ack::{self, Acked};
use crate::backend::StepStorage;
use crate::group_commit::GroupCommit;
use crate::pools::POLL_INTERVAL;

/// `timeline-worker bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Tasks to drain.
    #[arg(long, default_value_t = 10_000)]
    pub tasks: u64,
    /// Tasks in flight at once (default: the number of CPUs).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// At 1 (the default), the real pools' way: a fetch takes as many tasks as the pool has
    /// slots free (see `backend`), and each task's record commits in a transaction of its
    /// own. Above 1, the batched path: a fetch takes this many tasks, and the records
    /// of the tasks finishing together commit in one transaction, each task's with its
    /// acknowledgement (a group commit).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Pools draining the queue side by side, the slots shared out among them: each pool
    /// fetches, locks and acknowledges in turn, so more pools take more tasks at a time.
    #[arg(long, default_value_t = 1)]
    pub fetchers: usize,
}

/// What the bench prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tasks: u64,
    pub seconds: f64,
    pub tasks_per_s: f64,
    pub db_transactions_per_task: f64,
    pub concurrency: usize,
    pub batch: usize,
    pub fetchers: usize,
    /// Whether `DATABASE_URL` went through a transaction pooler.
    pub pooled: bool,
    /// Step records the drain left (one per task, whichever path recorded it).
    pub recorded: u64,
}

/// A no-op task: only its number.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BenchTask {
    n: u64,
}

/// What the handler needs.
struct Bench {
    db: TxPool,
    table: String,
    acked: Acked,
    /// The batched path's writer (`--batch` above 1).
    group: Option<GroupCommit<Finished>>,
}

/// A task finished, for the group commit: its number and its task.
struct Finished {
    n: u64,
    task: ack::Current,
}

/// Errors of a bench run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("queue error: {0}")]
    Queue(#[from] apalis_postgres::Error),
    #[error("worker pool failed: {0}")]
    Pools(#[from] MonitorError),
    #[error("{0}")]
    Invalid(String),
}

/// Tasks pushed per enqueue transaction.
const ENQUEUE_CHUNK: usize = 5_000;

/// Runs the bench: `db` carries the pools' work (through the pooler, if any), `session` the
/// bench's own bookkeeping (a direct connection).
pub async fn run(db: TxPool, session: PgPool, args: &BenchArgs) -> Result<Report, Error> {
    let pooled = db.pooled();
    if args.tasks == 0 || args.batch == 0 || args.fetchers == 0 {
        return Err(Error::Invalid(
            "--tasks, --batch and --fetchers must be at least 1".into(),
        ));
    }
    let concurrency = args
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let queue = format!("bench-{id}");
    let table = format!("bench_steps_{id}");
    timeline_core::db::bench::create_table(&session, &table).await?;
    let result = drain(&db, &session, (&queue, &table), args, concurrency).await;
    let recorded = timeline_core::db::bench::recorded(&session, &table).await;
    let cleaned = timeline_core::db::bench::clean(&session, &queue, &table).await;
    let (seconds, transactions) = result?;
    let recorded = recorded?;
    cleaned?;
    let tasks = args.tasks;
    Ok(Report {
        tasks,
        seconds,
        tasks_per_s: tasks as f64 / seconds.max(f64::EPSILON),
        db_transactions_per_task: transactions as f64 / tasks as f64,
        concurrency,
        batch: args.batch,
        fetchers: args.fetchers,
        pooled,
        recorded,
    })
}

/// Enqueues, drains and counts; returns the drain's seconds and the transactions it took.
async fn drain(
    db: &TxPool,
    session: &PgPool,
    (queue, table): (&str, &str),
    args: &BenchArgs,
    concurrency: usize,
) -> Result<(f64, i64), Error> {
    enqueue(db.pool(), queue, args.tasks).await?;
    let before = timeline_core::db::bench::transactions(session).await?;
    let started = Instant::now();
    let acked = Acked::default();
    let group = (args.batch > 1).then(|| group_writer(db.clone(), table.to_owned(), concurrency));
    let ctx = Arc::new(Bench {
        db: db.clone(),
        table: table.to_owned(),
        acked: acked.clone(),
        group,
    });
    let (db, batch) = (db.clone(), args.batch);
    let name = queue.to_owned();
    let slots = concurrency.div_ceil(args.fetchers);
    let build = move |fetcher: usize, restarts: usize| {
        let config = crate::pools::config(&name, slots);
        // The batched path fetches its batch whatever the free slots: a slot is held until
        // its group commits, and fetching only the free ones halved the tasks per fetch
        // (0.06 transactions a task against 0.03) and drained 11.3k tasks/s against 14.9k
        // (`--batch 100 --concurrency 100`, medians of 3 alternating runs; docs/SCALING.md).
        let (config, demand) = if batch > 1 {
            (config.batch_size(batch), None)
        } else {
            (config, Some(slots))
        };
        let backend = StepStorage::<BenchTask>::new(&db, config, demand, acked.clone())
            .poll_with_strategy(Strategy::new().interval(POLL_INTERVAL / 20));
        WorkerBuilder::new(format!("{name}-{fetcher}-{restarts}"))
            .backend(backend)
            .data(ctx.clone())
            .concurrency(slots)
            .parallelize(tokio::spawn)
            .build(handle)
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(wait_drained(session.clone(), queue.to_owned(), done_tx));
    let mut monitor = Monitor::new();
    for fetcher in 0..args.fetchers {
        let build = build.clone();
        monitor = monitor.register(move |restarts| build(fetcher, restarts));
    }
    monitor
        .run_with_signal(async {
            let _ = done_rx.await;
            Ok(())
        })
        .await?;
    let polls = watcher
        .await
        .map_err(|e| Error::Invalid(format!("the progress watcher failed: {e}")))??;
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(STATS_SETTLE).await;
    let after = timeline_core::db::bench::transactions(session).await?;
    // Our own reads of the progress and of the first count are transactions too.
    Ok((seconds, (after - before - polls - 1).max(0)))
}

/// Pushes `n` tasks in chunks, a transaction each.
async fn enqueue(pool: &PgPool, queue: &str, n: u64) -> Result<(), Error> {
    let mut next = 0u64;
    while next < n {
        let end = (next + ENQUEUE_CHUNK as u64).min(n);
        let batch = (next..end)
            .map(|n| {
                serde_json::to_vec(&BenchTask { n })
                    .map(|b| TaskBuilder::new(b).build())
                    .map_err(|e| Error::Invalid(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut tx = pool.begin().await?;
        apalis_postgres::queries::push_tasks(&mut *tx, queue, batch).await?;
        tx.commit().await?;
        next = end;
    }
    Ok(())
}

/// The step record of a real step, for a no-op task: one transaction, which acknowledges the
/// task as a real step's final transaction does (see `crate::ack`); unbatched, a single
/// statement that records and acknowledges.
async fn handle(
    task: BenchTask,
    ctx: Data<Arc<Bench>>,
    attempt: Attempt,
    task_id: TaskId,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let attempt = i32::try_from(attempt.current()).unwrap_or(i32::MAX);
    let current = ack::Current {
        task_id: task_id.to_string(),
        worker: worker.name().to_owned(),
        attempt,
        acked: ctx.acked.clone(),
    };
    if let Some(group) = &ctx.group {
        group
            .write(Finished {
                n: task.n,
                task: current,
            })
            .await?;
        return Ok(());
    }
    let (table, key) = (
        &ctx.table,
        (current.task_id.as_str(), current.worker.as_str()),
    );
    let done = if ctx.db.pooled() {
        // Behind a transaction pooler a statement outside a transaction may be parsed on one
        // server connection and run on another (see `backend`'s `fetch_next`).
        let mut tx = ctx.db.begin().await?;
        let done = record_acknowledged(&mut *tx, table, (task.n, attempt), key).await?;
        tx.commit().await?;
        done
    } else {
        record_acknowledged(ctx.db.pool(), table, (task.n, attempt), key).await?
    };
    if done {
        current.committed();
    }
    Ok(())
}

/// The batched path's writer: a group's records and acknowledgements, one transaction.
fn group_writer(db: TxPool, table: String, max: usize) -> GroupCommit<Finished> {
    GroupCommit::start(max, move |group: Vec<Finished>| {
        let (db, table) = (db.clone(), table.clone());
        async move {
            // A task redelivered while its first delivery waits here is recorded once.
            let mut records: Vec<(u64, i32)> =
                group.iter().map(|f| (f.n, f.task.attempt)).collect();
            records.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            records.dedup_by_key(|r| r.0);
            let tasks: Vec<ack::Current> = group.into_iter().map(|f| f.task).collect();
            let mut tx = db.begin().await?;
            timeline_core::db::bench::record_many(&mut tx, &table, &records).await?;
            ack::commit_done_many(tx, &tasks).await
        }
    })
}

/// Polls until every task of `queue` is acknowledged, then signals; returns the polls made.
async fn wait_drained(
    session: PgPool,
    queue: String,
    done: tokio::sync::oneshot::Sender<()>,
) -> Result<i64, Error> {
    let mut polls = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        polls += 1;
        if timeline_core::db::bench::drained(&session, &queue).await? {
            let _ = done.send(());
            return Ok(polls);
        }
    }
}

/// How long a backend may keep its counts before reporting them: PostgreSQL's backends report
/// at the end of a transaction at most once a second, and an idle one at the latest 10 s
/// after its last report (`PGSTAT_IDLE_INTERVAL`).
const STATS_SETTLE: Duration = Duration::from_secs(11);
