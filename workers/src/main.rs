//! `timeline-worker`: the worker pools (the `worker` process type).

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(timeline_workers::decoder::CHILD_ARG) {
        return timeline_workers::decoder::child_main(&args[1..]);
    }
    worker()
}

#[tokio::main]
async fn worker() -> ExitCode {
    timeline_core::telemetry::init();
    match timeline_workers::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            ExitCode::FAILURE
        }
    }
}
