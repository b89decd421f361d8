//! The `timeline` binary: see `timeline --help` and `cli`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    timeline::telemetry::init();
    match timeline::cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "command failed");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
