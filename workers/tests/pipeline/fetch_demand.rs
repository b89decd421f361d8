//! A step pool's fetch takes as many tasks as the pool has slots free
//! (`timeline_workers::backend`): all of an idle pool's slots in one statement, and never a
//! task that no slot can start, which would sit locked to the pool while another host or an
//! upload waited for it. Driven through the real backend and the real pools' settings
//! (`pools::config`), with tasks that finish only when the test lets them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use timeline_workers::ack::Acked;
use timeline_workers::backend::StepStorage;

const QUEUE: &str = "demand-test";
const SLOTS: usize = 4;
const TASKS: usize = 10;

#[sqlx::test(migrations = false)]
async fn a_pool_fetches_as_many_tasks_as_it_has_slots_free(pool: PgPool) {
    timeline::db::migrate::run(&pool).await.expect("migrate");
    enqueue(&pool, TASKS).await;
    let gate = Arc::new(Semaphore::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(run_pool(pool.clone(), gate.clone(), stopped));

    // Idle, the pool fills its slots in one fetch: one statement, one `lock_at`.
    let held = wait_for(&pool, |c| c.running == SLOTS as i64).await;
    assert_eq!(
        held.fetch_times, 1,
        "one fetch for all free slots: {held:?}"
    );

    // One slot frees: the pool takes one more task, not a batch it cannot start.
    gate.add_permits(1);
    let after_one = wait_for(&pool, |c| c.done == 1 && c.running == SLOTS as i64).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = counts(&pool).await;
    assert_eq!(settled, after_one, "nothing fetched beyond the free slot");
    assert_eq!(settled.running, SLOTS as i64, "{settled:?}");
    assert_eq!(settled.pending, (TASKS - SLOTS - 1) as i64, "{settled:?}");

    // Every task ends done, each once.
    gate.add_permits(TASKS);
    let end = wait_for(&pool, |c| c.done == TASKS as i64).await;
    assert_eq!((end.running, end.pending), (0, 0), "{end:?}");
    let _ = stop.send(());
    running.await.expect("the pool's task").expect("the pool");
}

/// `QUEUE`'s tasks by state, and how many distinct fetches hold the running ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    pending: i64,
    running: i64,
    done: i64,
    fetch_times: i64,
}

async fn counts(pool: &PgPool) -> Counts {
    let (pending, running, done, fetch_times): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'Pending'),
                count(*) FILTER (WHERE status = 'Running'),
                count(*) FILTER (WHERE status = 'Done'),
                count(DISTINCT lock_at) FILTER (WHERE status = 'Running')
         FROM apalis.jobs WHERE job_type = $1",
    )
    .bind(QUEUE)
    .fetch_one(pool)
    .await
    .expect("count the tasks");
    Counts {
        pending,
        running,
        done,
        fetch_times,
    }
}

/// Polls [`counts`] until `ready` holds (30 s at most).
async fn wait_for(pool: &PgPool, ready: impl Fn(&Counts) -> bool) -> Counts {
    let started = Instant::now();
    loop {
        let now = counts(pool).await;
        if ready(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the queue never got there: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn enqueue(pool: &PgPool, n: usize) {
    let tasks = (0..n)
        .map(|i| TaskBuilder::new(serde_json::to_vec(&i).expect("a number")).build())
        .collect();
    let mut tx = pool.begin().await.expect("begin");
    apalis_postgres::queries::push_tasks(&mut *tx, QUEUE, tasks)
        .await
        .expect("push the tasks");
    tx.commit().await.expect("commit");
}

/// One pool of `SLOTS` slots with the real pools' settings, until `stopped`; each task waits
/// for a permit of `gate`.
async fn run_pool(
    pool: PgPool,
    gate: Arc<Semaphore>,
    stopped: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), MonitorError> {
    let build = move |restarts: usize| {
        let config = timeline_workers::pools::config(QUEUE, SLOTS);
        let db = timeline_core::db::tx::TxPool::from(pool.clone());
        let backend = StepStorage::<usize>::new(&db, config, Some(SLOTS), Acked::default())
            .poll_with_strategy(Strategy::new().interval(Duration::from_millis(50)));
        WorkerBuilder::new(format!("{QUEUE}-{restarts}"))
            .backend(backend)
            .data(gate.clone())
            .concurrency(SLOTS)
            .parallelize(tokio::spawn)
            .build(wait_for_gate)
    };
    Monitor::new()
        .register(build)
        .run_with_signal(async {
            let _ = stopped.await;
            Ok(())
        })
        .await
}

async fn wait_for_gate(_task: usize, gate: Data<Arc<Semaphore>>) -> Result<(), BoxDynError> {
    gate.acquire().await?.forget();
    Ok(())
}
