//! Many clients following their jobs at once, as phones do after an upload: each of CLIENTS
//! tasks polls `GET /v1/jobs/{id}` (one of the given job ids, round robin) every INTERVAL_MS for
//! SECONDS, on a connection of its own. Prints one JSON line: requests, errors (non-200 or
//! transport), and latency percentiles in milliseconds.
//!
//!   cargo run --release --example poll_jobs -- BASE TOKEN CLIENTS SECONDS INTERVAL_MS JOB_ID...

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, token, clients, seconds, interval, jobs @ ..] = args.as_slice() else {
        return Err("usage: poll_jobs BASE TOKEN CLIENTS SECONDS INTERVAL_MS JOB_ID...".into());
    };
    if jobs.is_empty() {
        return Err("give at least one job id".into());
    }
    let clients: usize = clients.parse()?;
    let until = Instant::now() + Duration::from_secs_f64(seconds.parse()?);
    let interval = Duration::from_millis(interval.parse()?);
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        // One connection per client, as separate devices would have.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()?;
        let url = format!("{base}/v1/jobs/{}", jobs[i % jobs.len()]);
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            // Spread the clients' first requests over one interval.
            tokio::time::sleep(interval.mul_f64(i as f64 / clients as f64)).await;
            let (mut times, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < until {
                let started = Instant::now();
                match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        times.push(started.elapsed().as_secs_f64() * 1e3);
                    }
                    _ => errors += 1,
                }
                tokio::time::sleep(interval.saturating_sub(started.elapsed())).await;
            }
            (times, errors)
        }));
    }
    let (mut times, mut errors) = (Vec::new(), 0u64);
    for t in tasks {
        let (t, e) = t.await?;
        times.extend(t);
        errors += e;
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    use std::io::Write as _;
    writeln!(
        std::io::stdout().lock(),
        "{{\"clients\":{clients},\"requests\":{},\"errors\":{errors},\"p50_ms\":{:.1},\"p95_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1}}}",
        times.len(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    )?;
    Ok(())
}
