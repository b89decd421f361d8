//! Pause points for crash tests: a process told by an environment variable to wait at a named
//! point, so a test can kill it in exactly that window. Unset (always, in production) a pause
//! costs one environment lookup.

/// Waits the number of seconds in `var` (e.g. `TIMELINE_TEST_PAUSE_BEFORE_COMMIT_SECS`), if set.
pub async fn pause(var: &str) {
    if let Some(secs) = std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
    {
        tracing::warn!(hook = var, secs = secs.as_secs_f64(), "test hook: pausing");
        tokio::time::sleep(secs).await;
    }
}
