#!/usr/bin/env bash
# What one web process costs per `GET /v1/jobs/{id}`: CLIENTS clients (each on a connection of
# its own, as phones are) poll their jobs every second for SECONDS through one web process, once
# straight to PostgreSQL and once behind PgBouncer in transaction mode, alternating ROUNDS times.
# Prints, per run, the requests answered, errors, p50/p95/p99 in ms, PostgreSQL transactions
# per request (pg_stat_database, the idle rate subtracted) and the machine's CPU time per request
# (every process, clients included, from /proc/stat).
#
#   bash scripts/bench-poll.sh [CLIENTS] [SECONDS] [ROUNDS]     (default 1000, 20, 2)
#
# No worker runs: this is the API's own cost (scripts/cluster.sh measures it beside workers).
# PROFILE=debug uses the debug build (quicker to build; our code unoptimised, dependencies at
# opt-level 2), default release. BINS="A B" compares builds of `timeline` in the same run
# (alternating), e.g. a copy of the binary before a change and after it.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-1000}
seconds=${2:-20}
rounds=${3:-2}
profile=${PROFILE:-release}
bash scripts/setup.sh --tests >&2
base=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
server=${base%/*}
db=timeline_bench_poll
psql "$base" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
export SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn}
flag=--release
[ "$profile" = release ] || flag=
cargo build $flag --locked -q -p timeline --bin timeline --example poll_jobs
bin=$(cd "${CARGO_TARGET_DIR:-target}/$profile" && pwd)
read -r -a bins <<<"${BINS:-$bin/timeline}"
work=$(mktemp -d /tmp/timeline-poll.XXXXXX)
chmod 755 "$work" # PgBouncer runs as postgres and keeps its files in here
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sql() { psql "$server/$db" -qAtc "$1"; }
ulimit -n 20000 2>/dev/null || true

export TIMELINE_STORAGE=$work/store
DATABASE_URL="$server/$db" "$bin/timeline" migrate >/dev/null
token=$(DATABASE_URL="$server/$db" "$bin/timeline" users create --email poll@example.org |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
bouncer=$(free_port)
bash scripts/pgbouncer.sh "$work/pgbouncer" "$bouncer" 20 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do psql "postgres://postgres@127.0.0.1:$bouncer/$db" -qAtc "select 1" >/dev/null 2>&1 && break; sleep 0.1; done

# Ten jobs to follow (one photo each), made through the API itself.
port=$(free_port)
DATABASE_URL="$server/$db" TIMELINE_ADDR=127.0.0.1:$port "$bin/timeline" serve >"$work/setup.log" 2>&1 &
setup=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
jobs=()
for i in $(seq 10); do
  cp tests/fixtures/landscape_1.jpg "$work/p$i.jpg" && printf 'poll-%s' "$i" >>"$work/p$i.jpg"
  jobs+=("$(curl -sf -H "Authorization: Bearer $token" -F "file=@$work/p$i.jpg" "http://127.0.0.1:$port/v1/media" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')")
done
kill "$setup"; wait "$setup" 2>/dev/null || true

# The machine's busy CPU time so far, in ms (every process: the clients, the web process, the
# pooler and PostgreSQL), from /proc/stat: what a poll costs in all, whoever spends it.
busy_ms() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print ($2+$3+$4+$7+$8) * 1000 / hz}' /proc/stat; }
# PostgreSQL's share of it: every postgres process's CPU time, the postmaster's reaped
# children included (cutime/cstime: backends that exit during the run still count).
pg_ms() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); t += $12 + $13 + $14 + $15 } END { print t * 1000 / hz }' \
    $(grep -l '^postgres$' /proc/[0-9]*/comm 2>/dev/null | sed 's/comm$/stat/') 2>/dev/null
}
xacts() { sql "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'"; }
run() { # mode binary
  local url="$server/$db" extra=()
  if [ "$1" = pgbouncer ]; then
    url="postgres://postgres@127.0.0.1:$bouncer/$db"
    extra=(DATABASE_SESSION_URL="$server/$db")
  fi
  local port
  port=$(free_port)
  env DATABASE_URL="$url" "${extra[@]}" TIMELINE_ADDR=127.0.0.1:$port "$2" serve >"$work/serve.log" 2>&1 &
  local serve=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  sleep 1
  # pg_stat_database lags by up to a second (stats_fetch_consistency); the idle rate comes off.
  local x0 x1 idle0 idle1
  idle0=$(xacts); sleep 5; idle1=$(xacts)
  x0=$(xacts)
  local cpu0 cpu1 pg0 pg1
  cpu0=$(busy_ms)
  pg0=$(pg_ms)
  "$bin/examples/poll_jobs" "http://127.0.0.1:$port" "$token" "$clients" "$seconds" 1000 "${jobs[@]}" >"$work/poll.json"
  cpu1=$(busy_ms)
  pg1=$(pg_ms)
  sleep 2
  x1=$(xacts)
  kill "$serve"; wait "$serve" 2>/dev/null || true
  python3 - "$1 $2" "$work/poll.json" "$x0" "$x1" "$idle0" "$idle1" "$seconds" "$cpu0" "$cpu1" "$pg0" "$pg1" <<'PY'
import json, sys
mode, poll, x0, x1, i0, i1, secs, c0, c1, p0, p1 = sys.argv[1], json.load(open(sys.argv[2])), *map(float, sys.argv[3:])
idle = (i1 - i0) / 5 * (secs + 2)
per = (x1 - x0 - idle) / max(poll["requests"], 1)
cpu = (c1 - c0) / max(poll["requests"], 1)
pg = (p1 - p0) / max(poll["requests"], 1)
print(json.dumps({"mode": mode, **poll, "xacts_per_request": round(per, 2),
                  "cpu_ms_per_request": round(cpu, 3), "pg_cpu_ms_per_request": round(pg, 3)}))
PY
}
for _ in $(seq "$rounds"); do
  for b in "${bins[@]}"; do
    run direct "$b"
    run pgbouncer "$b"
  done
done
