#!/usr/bin/env bash
# Priority lanes under load, with and without them, in one run:
#
#   bash scripts/bench-priority.sh [N] [UPLOADS]     (N import files, default 300; UPLOADS 10)
#
# For each mode in MODES (default "on queue off") on a fresh database and store:
#   on     the lanes with express pools (the default configuration)
#   queue  the lanes as queue order only (TIMELINE_INTERACTIVE_CONCURRENCY=0)
#   off    TIMELINE_PRIORITY_LANES=off: strictly oldest first
# a `timeline-worker` (all pools, both cores) and `timeline serve` (release build; PROFILE=debug
# for the dev profile); `timeline ingest` of N x 12 MP JPEGs (the deterministic corpus,
# distinct bytes per copy) and, 3 s after it starts, UPLOADS single-photo uploads through
# `POST /v1/media`, 2 s apart. Prints each upload's time from request to `completed`
# (p50/p95) next to the import's images/s.
# Goal: uploads p95 < 3 s with the lanes while the import loses < 10 % throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300}
UPLOADS=${2:-10}
PROFILE=${PROFILE:-release}
bash scripts/setup.sh
# The corpus maker needs ImageMagick 6 (a `convert` that is not ImageMagick does not count).
have_im() {
  local c
  for c in $(type -ap convert); do "$c" -version 2>/dev/null | grep -q "^Version: ImageMagick" && return 0; done
  return 1
}
if ! have_im || ! command -v exiftool >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends imagemagick libimage-exiftool-perl >&2
fi
export SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn}
corpus=target/bench-corpus
if [ ! -d "$corpus/jpg12" ]; then
  [ -f ../shared/bench/make_corpus.sh ] || { echo "needs ../shared/bench/make_corpus.sh" >&2; exit 1; }
  bash ../shared/bench/make_corpus.sh "$corpus"
fi
work=target/bench-priority
rm -rf "$work" && mkdir -p "$work/in" "$work/up"
mapfile -t src < <(ls "$corpus"/jpg12/*.jpg | sort)
for i in $(seq 0 $((N - 1))); do
  f="$work/in/$(printf 'img_%04d.jpg' "$i")"
  cp "${src[$((i % ${#src[@]}))]}" "$f"
  printf 'bench-import-%d' "$i" >> "$f"
done
for i in $(seq 0 $((UPLOADS - 1))); do
  cp "${src[$((i % ${#src[@]}))]}" "$work/up/up_$i.jpg"
  printf 'bench-upload-%d' "$i" >> "$work/up/up_$i.jpg"
done
if [ "$PROFILE" = release ]; then
  cargo build --release --locked --workspace --bins -q
  bin=${CARGO_TARGET_DIR:-target}/release
else
  cargo build --locked --workspace --bins -q
  bin=${CARGO_TARGET_DIR:-target}/debug
fi

run_mode() { # $1 = on|queue|off
  local mode=$1 db="timeline_bench_priority_$1" port
  DATABASE_URL=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
  psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  export DATABASE_URL="${DATABASE_URL%/*}/$db" TIMELINE_PRIORITY_LANES=on TIMELINE_INTERACTIVE_CONCURRENCY=1
  case $mode in
    queue) TIMELINE_INTERACTIVE_CONCURRENCY=0 ;;
    off) TIMELINE_PRIORITY_LANES=off ;;
  esac
  export TIMELINE_STORAGE="$PWD/$work/store-$mode"
  rm -rf "$TIMELINE_STORAGE"
  $bin/timeline migrate >/dev/null
  $bin/timeline users create --email "import@example.org" >/dev/null
  token=$($bin/timeline users create --email "phone@example.org" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  TIMELINE_ADDR=127.0.0.1:$port $bin/timeline serve > "$work/serve-$mode.log" 2>&1 & serve=$!
  $bin/timeline-worker > "$work/worker-$mode.log" 2>&1 & worker=$!
  trap 'kill $serve $worker 2>/dev/null; wait 2>/dev/null' EXIT
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  local t0 t1
  t0=$(date +%s.%N)
  $bin/timeline ingest "$work/in" --email import@example.org > "$work/ingest-$mode.txt" 2>&1 & ingest=$!
  sleep 3
  : > "$work/uploads-$mode.txt"
  for i in $(seq 0 $((UPLOADS - 1))); do
    python3 scripts/bench_upload.py "http://127.0.0.1:$port" "$token" "$work/up/up_$i.jpg" >> "$work/uploads-$mode.txt" &
    sleep 2
  done
  wait $ingest
  t1=$(date +%s.%N)
  wait $(jobs -p | grep -v -e "^$serve\$" -e "^$worker\$") 2>/dev/null || true
  kill $serve $worker 2>/dev/null; wait $serve $worker 2>/dev/null || true
  trap - EXIT
  python3 - "$mode" "$N" "$t0" "$t1" "$work/uploads-$mode.txt" <<'PY'
import statistics, sys
mode, n, t0, t1, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
lat = sorted(float(l) for l in open(path) if l.strip())
p = lambda q: lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))]
print(f"lanes {mode:5}: import {n / (t1 - t0):5.2f} images/s ({t1 - t0:6.1f} s) | "
      f"{len(lat)} uploads to completed: p50 {statistics.median(lat):6.2f} s  p95 {p(0.95):6.2f} s  max {lat[-1]:6.2f} s")
PY
}

echo "== $N x 12 MP import + $UPLOADS uploads, $PROFILE build, $(nproc) cores"
for m in ${MODES:-on queue off}; do run_mode "$m" | tee "$work/result-$m.txt"; done
