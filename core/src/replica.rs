//! A streaming replica for the API's reads, and the bound on how stale they may be.
//!
//! The web process samples the primary's WAL position every few hundred milliseconds and
//! asks the replica how far it has replayed. Once the replica has replayed past a sample
//! taken at time `t`, it holds every transaction committed before `t`: its staleness is at
//! most `now - t`. Reads go to the replica only while that bound is within
//! `DATABASE_READ_MAX_LAG_MS`. The bound decays on its own: a replica that stops replaying,
//! a sampler that stops, or a replica that cannot be reached all end its use within the
//! bound, with no request waiting on it. Replay timestamps (`pg_last_xact_replay_timestamp`)
//! are not used: on a quiet primary they age while the replica is in fact current.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// No sample is known to be replayed yet.
const NEVER: u64 = u64::MAX;

/// Samples kept while the replica is behind them (at the shortest period, 51 s of them).
const MAX_SAMPLES: usize = 1024;

/// A replica pool and the freshness of its data.
#[derive(Debug, Clone)]
pub struct Replica {
    pool: PgPool,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    base: Instant,
    max_lag: Duration,
    /// Milliseconds after `base` at which the primary's position was last sampled, of the
    /// latest sample the replica has replayed; [`NEVER`] before the first.
    covered_ms: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn cover(&self, at_ms: u64) {
        let prev = self.covered_ms.load(Ordering::Relaxed);
        if prev == NEVER || at_ms > prev {
            self.covered_ms.store(at_ms, Ordering::Relaxed);
        }
    }

    fn staleness(&self) -> Option<Duration> {
        let covered = self.covered_ms.load(Ordering::Relaxed);
        (covered != NEVER).then(|| Duration::from_millis(self.now_ms().saturating_sub(covered)))
    }
}

impl Replica {
    /// Uses `replica` for reads while it is within `max_lag` of `primary`, measured by a task
    /// started here (call inside the runtime; it ends when the last clone is dropped).
    pub fn start(primary: PgPool, replica: PgPool, max_lag: Duration) -> Self {
        let shared = Arc::new(Shared {
            base: Instant::now(),
            max_lag,
            covered_ms: AtomicU64::new(NEVER),
        });
        tokio::spawn(sample(primary, replica.clone(), Arc::downgrade(&shared)));
        Self {
            pool: replica,
            shared,
        }
    }

    /// The replica's pool while its data is within the bound; `None` sends the read to the
    /// primary.
    pub fn pool_if_fresh(&self) -> Option<&PgPool> {
        self.staleness()
            .is_some_and(|s| s <= self.shared.max_lag)
            .then_some(&self.pool)
    }

    /// The bound on the replica's staleness now: `None` until it is first known.
    pub fn staleness(&self) -> Option<Duration> {
        self.shared.staleness()
    }
}

/// How often the positions are sampled: a quarter of the bound, so a healthy replica is
/// never taken for a lagging one by the sampling alone, within 50 ms and 1 s.
fn period(max_lag: Duration) -> Duration {
    (max_lag / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// The sampling loop: ends when the [`Replica`] is dropped.
async fn sample(primary: PgPool, replica: PgPool, shared: std::sync::Weak<Shared>) {
    let mut samples: VecDeque<(u64, i64)> = VecDeque::new();
    let mut healthy = true;
    loop {
        let Some(s) = shared.upgrade() else { return };
        let every = period(s.max_lag);
        let outcome = tick(&primary, &replica, &s, &mut samples).await;
        match (&outcome, healthy) {
            (Err(e), true) => {
                tracing::warn!(error = %e, "read replica: lag unknown, reads go to the primary")
            }
            (Ok(()), false) => tracing::info!("read replica: lag measured again"),
            _ => {}
        }
        healthy = outcome.is_ok();
        ::metrics::gauge!(crate::metrics::REPLICA_STALENESS)
            .set(s.staleness().map_or(f64::INFINITY, |d| d.as_secs_f64()));
        drop(s);
        tokio::time::sleep(every).await;
    }
}

/// One sample of the primary, one look at the replica.
async fn tick(
    primary: &PgPool,
    replica: &PgPool,
    shared: &Shared,
    samples: &mut VecDeque<(u64, i64)>,
) -> Result<(), sqlx::Error> {
    // Taken before the question is sent: whatever committed before it is at or before the
    // position the primary answers with.
    let at = shared.now_ms();
    let mut tx = primary.begin().await?;
    let lsn = crate::db::replica::primary_position(&mut tx).await?;
    tx.commit().await?;
    if samples.len() == MAX_SAMPLES {
        samples.pop_front();
    }
    samples.push_back((at, lsn));
    let mut tx = replica.begin().await?;
    let replayed = crate::db::replica::replayed_position(&mut tx).await?;
    tx.commit().await?;
    match replayed {
        // Not a standby: its data is the current data.
        None => shared.cover(at),
        Some(replayed) => {
            if let Some(at) = covered(samples, replayed) {
                shared.cover(at);
            }
        }
    }
    Ok(())
}

/// The time of the latest sample at or before `replayed`, dropping the samples before it
/// (replay only moves forward, so they will never be the answer again).
fn covered(samples: &mut VecDeque<(u64, i64)>, replayed: i64) -> Option<u64> {
    let n = samples
        .iter()
        .take_while(|(_, lsn)| *lsn <= replayed)
        .count();
    if n == 0 {
        return None;
    }
    samples.drain(..n - 1);
    samples.front().map(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_replayed_sample_bounds_the_staleness() {
        let mut s: VecDeque<(u64, i64)> = [(0, 100), (10, 100), (20, 250), (30, 400)].into();
        assert_eq!(covered(&mut s, 99), None);
        assert_eq!(s.len(), 4);
        assert_eq!(covered(&mut s, 100), Some(10));
        assert_eq!(covered(&mut s, 300), Some(20));
        assert_eq!(s, VecDeque::from([(20, 250), (30, 400)]));
        assert_eq!(covered(&mut s, 400), Some(30));
        assert_eq!(covered(&mut s, 400), Some(30));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_period_is_a_quarter_of_the_bound_within_limits() {
        assert_eq!(
            period(Duration::from_millis(1000)),
            Duration::from_millis(250)
        );
        assert_eq!(period(Duration::from_millis(10)), Duration::from_millis(50));
        assert_eq!(period(Duration::from_secs(60)), Duration::from_secs(1));
    }
}
