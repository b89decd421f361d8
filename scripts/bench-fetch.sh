#!/usr/bin/env bash
# One queue fetch (`apalis.get_jobs`, one task) at several queue depths, timed by pgbench on the
# same server in one run: the fetch as `timeline migrate` installs it now, and as it was before
# (benches/queue/get_jobs_before.sql). Each depth has as many finished tasks beside it (the
# history retention keeps). Prints each run's mean latency and the medians per depth.
#   bash scripts/bench-fetch.sh [FETCHES] [ROUNDS] [DEPTH...]   (default 2500, 3, 3000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
fetches=${1:-2500}
rounds=${2:-3}
shift $(($# < 2 ? $# : 2))
depths=("$@")
[ ${#depths[@]} -gt 0 ] || depths=(3000 100000)
base=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
db="${base%/*}/timeline_bench_fetch"
psql "$base" -qc "DROP DATABASE IF EXISTS timeline_bench_fetch WITH (FORCE)" -c "CREATE DATABASE timeline_bench_fetch"
export SQLX_OFFLINE=true RUST_LOG=warn
cargo build --release --locked -q -p timeline --bin timeline
DATABASE_URL=$db "${CARGO_TARGET_DIR:-target}/release/timeline" migrate >/dev/null
psql "$db" -q -f benches/queue/get_jobs_before.sql \
  -c "INSERT INTO apalis.workers (id, worker_type, storage_name) VALUES ('bench', 'q', 'pg')"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# N tasks due a minute ago, and N finished ones.
load() {
  psql "$db" -q -c "DELETE FROM apalis.jobs" -c "
    INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, done_at)
    SELECT 'q' || g, 'q', '\\x7b7d'::bytea, CASE WHEN g <= $1 THEN 'Pending' ELSE 'Done' END,
           0, 25, now() - interval '1 minute', 0, CASE WHEN g > $1 THEN now() END
    FROM generate_series(1, 2 * $1) g" -c "VACUUM ANALYZE apalis.jobs"
}
for depth in "${depths[@]}"; do
  for r in $(seq "$rounds"); do
    for fn in get_jobs_before apalis.get_jobs; do
      load "$depth"
      echo "SELECT id FROM $fn('bench', 'q', 1);" >"$work/fetch.sql"
      ms=$(pgbench -n -c1 -t "$fetches" -f "$work/fetch.sql" "$db" 2>/dev/null |
        sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
      echo "$depth ${fn#apalis.} $ms" | tee -a "$work/runs"
    done
  done
done
python3 - "$work/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    depth, fn, ms = line.split()
    runs.setdefault((int(depth), fn), []).append(float(ms))
print(f"{'queued':>8} {'before (ms)':>12} {'now (ms)':>9} {'ratio':>6}")
for depth in sorted({d for d, _ in runs}):
    b = statistics.median(runs[(depth, "get_jobs_before")])
    a = statistics.median(runs[(depth, "get_jobs")])
    print(f"{depth:8} {b:12.3f} {a:9.3f} {b / a:6.1f}")
PY
psql "$base" -qc "DROP DATABASE IF EXISTS timeline_bench_fetch WITH (FORCE)"
