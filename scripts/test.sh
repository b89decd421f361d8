#!/usr/bin/env bash
# Runs every test: formatting, lints, the unit tests and the integration tests against a real
# PostgreSQL (started by scripts/ensure-postgres.sh when none is running).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase's wall time goes to stderr, so a slow CI run says where its minutes went.
start=$SECONDS
phase() { echo "test: [$((SECONDS - start)) s] $*" >&2; }
# Queries are checked against the committed .sqlx/ cache, so a build never needs a database
# and a stale cache fails here rather than on someone else's machine.
phase setup
bash scripts/setup.sh --tests
export SQLX_OFFLINE=true
DATABASE_URL=$(scripts/ensure-postgres.sh)
export DATABASE_URL
# The crash tests' pause points are compiled in for the tests only (feature test-hooks).
features=(--features timeline/test-hooks,timeline-workers/test-hooks)
phase fmt and clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked "${features[@]}" -- -D warnings
cargo clippy --workspace --all-targets --locked -- -D warnings
# nextest, never `cargo test`: the serial groups in .config/nextest.toml keep the tests that
# measure time or memory of real processes from measuring their neighbours.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest 0.9.143 (once)" >&2
  cargo install cargo-nextest@0.9.143 --locked --quiet >&2
fi
phase nextest
cargo nextest run --workspace --locked --no-fail-fast "${features[@]}"
# Without the feature (as every other build), the binaries carry no test hook at all.
phase build without test-hooks
cargo build --workspace --bins --locked -q
for b in timeline timeline-worker; do
  if strings "${CARGO_TARGET_DIR:-target}/debug/$b" | grep -q TIMELINE_TEST_; then
    echo "test: $b contains TIMELINE_TEST_ hooks outside the test-hooks feature" >&2
    exit 1
  fi
done
# The live API against its own OpenAPI document (schemathesis): no 5xx, every answer as described.
phase schemathesis
bash scripts/schemathesis.sh 25
# Coverage-guided fuzzing (libFuzzer via cargo-fuzz on stable) of the entry points that eat
# hostile bytes, 30 s each; a crash fails the run. Long runs: `bash scripts/fuzz.sh 600`.
phase fuzz
bash scripts/fuzz.sh 30
phase done
