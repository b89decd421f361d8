//! Prometheus metrics (`GET /metrics` on the web process and on each worker's
//! `--metrics-addr`, each served by its own crate): the recorder, the metric names and their help, and the gauges read from
//! the database at scrape time. Counters and histograms are recorded where things happen
//! (HTTP middleware, the worker's step wrapper) through the `metrics` facade.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

pub const QUEUE_JOBS: &str = "timeline_queue_jobs";
pub const QUEUE_OLDEST_PENDING: &str = "timeline_queue_oldest_pending_seconds";
pub const QUEUE_WAIT: &str = "timeline_queue_wait_seconds";
pub const STEP_DURATION: &str = "timeline_step_duration_seconds";
pub const MEDIA_TOTAL: &str = "timeline_media_total";
pub const WORKERS_ALIVE: &str = "timeline_workers_alive";
pub const HTTP_REQUESTS: &str = "timeline_http_requests_total";
pub const HTTP_DURATION: &str = "timeline_http_request_duration_seconds";
pub const REPLICA_READS: &str = "timeline_replica_reads_total";
pub const REPLICA_STALENESS: &str = "timeline_replica_staleness_seconds";

/// The process's recorder, installed on first use (a second install, as in tests that start
/// several servers in one process, reuses the first).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            // Queue waits span milliseconds (an idle pool) to hours (a big import's tail).
            .set_buckets_for_metric(
                Matcher::Full(QUEUE_WAIT.into()),
                &[
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(STEP_DURATION.into()),
                    &[
                        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0,
                    ],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(HTTP_DURATION.into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
                    ],
                )
            });
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(e) => {
                tracing::warn!(error = %e, "metric buckets refused; using summaries");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows ours only");
        }
        describe();
        handle
    })
}

fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        QUEUE_JOBS,
        "Tasks in each queue by state (pending, running, retrying, failed), read from the database"
    );
    describe_gauge!(
        QUEUE_OLDEST_PENDING,
        Unit::Seconds,
        "Age of the oldest task that is due and waiting for a worker, per queue"
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time from enqueue to a worker starting the task (first attempts), per queue and lane"
    );
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Time a processing step took, per step and outcome (ok, retry, failed)"
    );
    describe_counter!(
        MEDIA_TOTAL,
        "Media files that reached an end state in this process, per kind and status"
    );
    describe_gauge!(
        WORKERS_ALIVE,
        "Worker pools with a heartbeat in the last 20 seconds, per queue"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, per method, route and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request (headers sent), per method and route"
    );
    describe_counter!(
        REPLICA_READS,
        "Reads that could go to the read replica (DATABASE_READ_URL), per server that answered \
         (replica, primary) and why the primary did (lagging, unavailable, not_there_yet, token)"
    );
    describe_gauge!(
        REPLICA_STALENESS,
        Unit::Seconds,
        "Bound on the read replica's staleness at its last sample (+Inf until known)"
    );
}

/// Records where a read that could go to the replica was answered, and why the primary did.
pub fn replica_read(served_by: &'static str, reason: &'static str) {
    ::metrics::counter!(REPLICA_READS, "served_by" => served_by, "reason" => reason).increment(1);
}

/// Database-derived gauges are re-read at most this often, however often scrapers come.
const REFRESH: Duration = Duration::from_secs(5);

/// The exposition text: refreshes the queue gauges from the database (best effort: with the
/// database away the last values stay, and the scrape still answers), then renders.
pub async fn render(pool: &PgPool) -> String {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let due = LAST
        .lock()
        .map(|mut last| {
            let due = last.is_none_or(|t| t.elapsed() >= REFRESH);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        })
        .unwrap_or(true);
    let handle = handle();
    if due
        && let Err(e) = tokio::time::timeout(Duration::from_secs(3), refresh(pool))
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    {
        tracing::warn!(error = %e, "could not read the queue gauges");
    }
    handle.render()
}

async fn refresh(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let gauges = crate::db::queue::gauges(&mut tx).await?;
    for q in gauges {
        for (state, n) in [
            ("pending", q.pending),
            ("running", q.running),
            ("retrying", q.retrying),
            ("failed", q.failed),
        ] {
            ::metrics::gauge!(QUEUE_JOBS, "queue" => q.queue.clone(), "state" => state)
                .set(n as f64);
        }
        ::metrics::gauge!(QUEUE_OLDEST_PENDING, "queue" => q.queue.clone())
            .set(q.oldest_pending_secs);
        ::metrics::gauge!(WORKERS_ALIVE, "queue" => q.queue.clone()).set(q.workers_alive as f64);
    }
    Ok(())
}

/// Records one answered HTTP request (`route` is the matched route pattern, never the raw
/// path: ids would explode the label set).
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    ::metrics::counter!(HTTP_REQUESTS, "method" => method.to_owned(), "route" => route.to_owned(),
                      "status" => status.to_string())
    .increment(1);
    ::metrics::histogram!(HTTP_DURATION, "method" => method.to_owned(), "route" => route.to_owned())
        .record(elapsed.as_secs_f64());
}

/// The text exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
