//! Pause points for crash tests: a process told by an environment variable to wait at a named
//! point, so a test can kill it in exactly that window. Compiled only with the `test-hooks`
//! feature, which only the test command enables: a release binary has no pause point and not
//! even the variables' names (`scripts/test.sh` checks the built binaries with `strings`).

/// Waits the number of seconds in the environment variable `$var` (a literal such as
/// `"TIMELINE_TEST_PAUSE_BEFORE_COMMIT_SECS"`), if set, in builds with the `test-hooks`
/// feature of the calling crate; expands to nothing otherwise.
#[macro_export]
macro_rules! test_pause {
    ($var:literal) => {
        #[cfg(feature = "test-hooks")]
        $crate::test_hooks::pause($var).await;
    };
}

/// Waits the number of seconds in `var`, if set.
#[cfg(feature = "test-hooks")]
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
