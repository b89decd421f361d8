#!/usr/bin/env bash
# Upload throughput into a real S3-compatible server (s3s-fs), the ways in one run:
#   direct:   object_store's multipart put of the file (examples/s3_put.rs), no HTTP in between,
#             4 parts in flight;
#   serial:   the same, one 8 MiB part at a time (s3_put --serial): the store's speed with one
#             part in flight, the ceiling of any client that sends one part per request;
#   api:      POST /v1/media with the file as the raw body (curl -T, streamed from disk);
#   tus:      POST /v1/uploads, then PATCH in 8 MiB chunks (scripts/bench_tus.py);
#   tus50:    the same in 50 MiB chunks (under a 100 MB body cap).
# They alternate, ROUNDS times; prints each one's median seconds and MB/s, and the ratios.
#   bash scripts/bench-upload.sh [SIZE_MIB] [ROUNDS]      (default 2048 MiB, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-2048}
rounds=${2:-3}
bash scripts/setup.sh --tests >&2
base=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
export DATABASE_URL="${base%/*}/timeline_bench_upload" SQLX_OFFLINE=true RUST_LOG=warn
psql "$base" -qc "DROP DATABASE IF EXISTS timeline_bench_upload WITH (FORCE)" -c "CREATE DATABASE timeline_bench_upload"
cargo build --release --locked -q --bin timeline --example s3_put
bin=${CARGO_TARGET_DIR:-target}/release
s3fs=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A real clip looped to the size (stream copy), so the API accepts it as a video.
src="tests/fixtures/video/Issue 515 (java).mp4"
loops=$(( size_mib * 1048576 / $(stat -c %s "$src") + 1 ))
ffmpeg -v error -y -stream_loop "$loops" -i "$src" -c copy -map 0 -fs $((size_mib * 1048576)) "$work/big.mp4"
bytes=$(stat -c %s "$work/big.mp4")

s3port=$(free_port)
mkdir -p "$work/s3/photos"
"$s3fs" --host 127.0.0.1 --port "$s3port" --access-key bench --secret-key bench-secret "$work/s3" >/dev/null 2>&1 &
pids+=($!)
export TIMELINE_STORAGE=s3://photos/bench AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret \
  AWS_REGION=us-east-1 AWS_ENDPOINT="http://127.0.0.1:$s3port" AWS_ALLOW_HTTP=true \
  AWS_VIRTUAL_HOSTED_STYLE_REQUEST=false
"$bin/timeline" migrate >/dev/null
token=$("$bin/timeline" users create --email bench-upload@example.org |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
port=$(free_port)
TIMELINE_ADDR=127.0.0.1:$port "$bin/timeline" serve >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

: >"$work/times"
for r in $(seq "$rounds"); do
  t=$("$bin/examples/s3_put" "$work/big.mp4" | cut -d' ' -f1); echo "direct $t" >>"$work/times"
  t=$("$bin/examples/s3_put" "$work/big.mp4" --serial | cut -d' ' -f1); echo "serial $t" >>"$work/times"
  t=$(curl -sS --fail -o /dev/null -w '%{time_total}' -X POST -T "$work/big.mp4" -H "Authorization: Bearer $token" \
        -H "Content-Type: application/octet-stream" "http://127.0.0.1:$port/v1/media?filename=big.mp4")
  echo "api $t" >>"$work/times"
  t=$(python3 scripts/bench_tus.py "http://127.0.0.1:$port" "$token" "$work/big.mp4" 8388608)
  echo "tus $t" >>"$work/times"
  t=$(python3 scripts/bench_tus.py "http://127.0.0.1:$port" "$token" "$work/big.mp4" 52428800)
  echo "tus50 $t" >>"$work/times"
  echo "round $r: $(tail -5 "$work/times" | tr '\n' ' ')" >&2
  # Keep the server's disk from filling: the stored copies are not needed.
  find "$work/s3/photos" -type f -delete
done
python3 - "$work/times" "$bytes" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
size = int(sys.argv[2])
ways = ("direct", "serial", "api", "tus", "tus50")
med = {k: statistics.median(float(t) for n, t in rows if n == k) for k in ways}
print(f"{size / 2**20:.0f} MiB into s3s-fs, medians of {len(rows) // len(ways)} alternating rounds:")
for k, s in med.items():
    print(f"  {k:6} {s:7.2f} s  {size / s / 1e6:7.1f} MB/s")
r = lambda a, b: med[b] / med[a]
print(f"  api/direct: {r('api', 'direct'):.2f}x   tus(8 MiB)/api: {r('tus', 'api'):.2f}x   "
      f"tus(8 MiB)/serial: {r('tus', 'serial'):.2f}x   tus(50 MiB)/api: {r('tus50', 'api'):.2f}x")
PY
