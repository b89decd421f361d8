#!/usr/bin/env bash
# The queue's ceiling beside a peer, on the same PostgreSQL server in one run: no-op tasks
# drained by `timeline-worker bench` (the real pools: a fetch (which locks) of as many tasks as
# slots are free, heartbeat, and a step record that acknowledges its task in its own
# transaction) and by graphile-worker 0.17.3 (benches/queue, npm),
# each unbatched and batched (ours: fetch 100, the records of the tasks finishing together
# and their acknowledgements in one transaction, 100 slots), and ours with one pool per slot (`--fetchers CONCURRENCY`, as
# graphile-worker's slots fetch each for itself), alternating ROUNDS times. Then ours again through PgBouncer in
# transaction mode (scripts/pgbouncer.sh). Prints every run's JSON line and the medians.
#   bash scripts/bench-queue.sh [TASKS] [CONCURRENCY] [ROUNDS]   (default 20000, 8, 3)
# WORKER_BINS="A B" compares builds of `timeline-worker` instead: each round runs ours as the
# real pools run, direct and through PgBouncer, with each binary in turn (no peer).
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=${1:-20000}
conc=${2:-8}
rounds=${3:-3}
bash scripts/setup.sh --tests >&2
base=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
# Plain TCP, as graphile-worker's node-postgres client connects unless told otherwise (sqlx
# would take TLS where the server offers it): both pay the same for their round trips.
db="${base%/*}/timeline_bench_queue?sslmode=disable"
psql "$base" -qc "DROP DATABASE IF EXISTS timeline_bench_queue WITH (FORCE)" -c "CREATE DATABASE timeline_bench_queue"
psql "$base" -qc "DROP DATABASE IF EXISTS graphile_bench_queue WITH (FORCE)" -c "CREATE DATABASE graphile_bench_queue"
export SQLX_OFFLINE=true RUST_LOG=warn
cargo build --release --locked -q -p timeline -p timeline-workers --bins
bin=${CARGO_TARGET_DIR:-target}/release
[ -d benches/queue/node_modules/graphile-worker ] ||
  npm ci --prefix benches/queue --no-audit --no-fund --silent >&2
DATABASE_URL=$db "$bin/timeline" migrate >/dev/null

work=$(mktemp -d)
chmod 755 "$work" # PgBouncer runs as postgres and keeps its files in here
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bash scripts/pgbouncer.sh "$work/pgbouncer" "$port" 20 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do psql "postgres://postgres@127.0.0.1:$port/timeline_bench_queue" -qAtc "select 1" >/dev/null 2>&1 && break; sleep 0.1; done
pooled="postgres://postgres@127.0.0.1:$port/timeline_bench_queue?sslmode=disable"

ours() { DATABASE_URL=$db "$bin/timeline-worker" bench --tasks "$tasks" --concurrency "$conc" "$@"; }
ours_pooled() {
  DATABASE_URL=$pooled DATABASE_SESSION_URL=$db "$bin/timeline-worker" bench --tasks "$tasks" --concurrency "$conc" "$@"
}
peer() { node benches/queue/graphile.mjs "${base%/*}/graphile_bench_queue" "$tasks" "$conc" "$@"; }

: >"$work/runs"
if [ -n "${WORKER_BINS:-}" ]; then
  read -r -a wbins <<<"$WORKER_BINS"
  for r in $(seq "$rounds"); do
    for i in "${!wbins[@]}"; do
      w=${wbins[$i]}
      echo "bin$i-direct $(DATABASE_URL=$db "$w" bench --tasks "$tasks" --concurrency "$conc")" >>"$work/runs"
      echo "bin$i-pgbouncer $(DATABASE_URL=$pooled DATABASE_SESSION_URL=$db "$w" bench --tasks "$tasks" --concurrency "$conc")" >>"$work/runs"
    done
  done
fi
for r in $(seq "$([ -n "${WORKER_BINS:-}" ] && echo 0 || echo "$rounds")"); do
  echo "timeline $(ours)" >>"$work/runs"
  echo "graphile $(peer)" >>"$work/runs"
  echo "timeline-fetchers $(ours --fetchers "$conc")" >>"$work/runs"
  # Our batched path's slots hold their task until its group commits (graphile-worker's
  # complete in the background), so as many slots as a fetch brings in.
  echo "timeline-batched $(DATABASE_URL=$db "$bin/timeline-worker" bench --tasks "$tasks" --batch 100 --concurrency 100)" >>"$work/runs"
  echo "graphile-batched $(peer batched)" >>"$work/runs"
  echo "timeline-pgbouncer $(ours_pooled)" >>"$work/runs"
done
cat "$work/runs"
python3 - "$work/runs" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, _, js = line.partition(" ")
    runs.setdefault(name, []).append(json.loads(js))
print(f"{'way':20} {'tasks/s':>10} {'xacts/task':>11}")
med = {}
for name, rs in runs.items():
    rate = statistics.median(r["tasks_per_s"] for r in rs)
    tx = statistics.median(r["db_transactions_per_task"] for r in rs)
    med[name] = rate
    print(f"{name:20} {rate:10.0f} {tx:11.2f}")
for a, b in [("bin1-direct", "bin0-direct"), ("bin1-pgbouncer", "bin0-pgbouncer"), ("timeline", "graphile"), ("timeline-fetchers", "graphile"), ("timeline-batched", "graphile-batched"), ("timeline-pgbouncer", "timeline")]:
    if a in med and b in med:
        print(f"{a} / {b}: {med[a] / med[b]:.2f}")
PY
