#!/usr/bin/env bash
# Runs every test: formatting, lints, the unit tests and the integration tests against a real
# PostgreSQL (started by scripts/ensure-postgres.sh when none is running).
set -euo pipefail
cd "$(dirname "$0")/.."
# Queries are checked against the committed .sqlx/ cache, so a build never needs a database
# and a stale cache fails here rather than on someone else's machine.
bash scripts/setup.sh --tests
export SQLX_OFFLINE=true
DATABASE_URL=$(scripts/ensure-postgres.sh)
export DATABASE_URL
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# nextest, never `cargo test`: the serial groups in .config/nextest.toml keep the tests that
# measure time or memory of real processes from measuring their neighbours.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest 0.9.143 (once)" >&2
  cargo install cargo-nextest@0.9.143 --locked --quiet >&2
fi
cargo nextest run --workspace --locked --no-fail-fast
# The live API against its own OpenAPI document (schemathesis): no 5xx, every answer as described.
bash scripts/schemathesis.sh 25
# Coverage-guided fuzzing (libFuzzer via cargo-fuzz on stable) of the entry points that eat
# hostile bytes, 30 s each; a crash fails the run. Long runs: `bash scripts/fuzz.sh 600`.
bash scripts/fuzz.sh 30
