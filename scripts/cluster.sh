#!/usr/bin/env bash
# A platform of several "hosts" on one machine, as an operator would run it across machines:
# PostgreSQL, PgBouncer in transaction mode (scripts/pgbouncer.sh), an S3 server (s3s-fs), 2 web
# processes and up to WORKERS worker processes, each host in a working folder of its own (no
# shared filesystem: originals and renditions live in S3, spools are per host). Every process
# reaches PostgreSQL through the pooler, and DATABASE_SESSION_URL for its one or two sessions.
# Where the machine allows it (root and `ip netns`), each host runs in a network namespace of
# its own behind a veth pair, reaching the shared services over an address (10.77.<host>.1) as
# it would across machines; its sessions then go through a second PgBouncer in session mode
# (one server connection per client, as direct). NO_NETNS=1 runs every host on loopback.
#
# STORE=garage runs the store as a Garage 2.5.0 cluster instead of s3s-fs: 3 nodes, each with
# its own folders, replication factor 3 (every object on every node; writes and reads need 2 of
# 3). The web processes and odd workers address node 1, even workers node 2, and node 3 is
# killed with -9 mid-import with worker1, so the import finishes on 2 of 3 nodes. Garage is
# AGPL: it runs here as a separate server, never linked. `cargo install garage --version 2.5.0
# --locked` (once, about 15 minutes on 2 cores) if it is not on the PATH.
#
# The scenario:
#   1. PHOTOS distinct photos are uploaded through both web processes with one worker host up;
#   2. mid-import two more worker hosts start, and the first is killed with -9 while it holds
#      a task;
#   2b. with network namespaces, worker3's link is cut for 60 s (not killed) while it holds a
#      task: its tasks return to the queue after the heartbeat timeout, and its late finishes
#      duplicate nothing;
#   3. everything completes: every file `completed`, one original and two renditions per file
#      in the store (counted by `timeline maintenance --audit-store`, which pages through it,
#      and no orphan), every original read back through the API with its recorded SHA-256 and
#      both renditions served; every queue task acknowledged; per-host step counts show the
#      spread;
#   4. CLIENTS HTTP clients poll their jobs for 20 s across both web processes while a second
#      batch is processed (p95 of GET /v1/jobs/{id}); PostgreSQL's connections for the database
#      are sampled all along and their peak printed.
#
#   [STORE=garage] bash scripts/cluster.sh [WORKERS] [PHOTOS] [CLIENTS]   (default 6, 300, 1000;
#   with WORKERS under 3 the one host works alone: no worker kill, no network cut)
# Exits non-zero if any check fails. KEEP=1 keeps the working folder. WEB_BIN=PATH runs the web
# processes from another build of `timeline` (an A/B of a change to the API in this setting),
# WORKER_BIN=PATH the worker hosts from another build of `timeline-worker`.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-6}
photos=${2:-300}
clients=${3:-1000}
concurrency=${TIMELINE_CONCURRENCY:-4}
# Worker hosts would have CPUs of their own; on one machine they run at a lower priority
# (nice), so that their thumbnails do not take the cores from the web processes, the pooler and
# PostgreSQL. WORKER_NICE=0 shares the cores evenly.
worker_nice=${WORKER_NICE:-10}
bash scripts/setup.sh --tests >&2
base=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
server=${base%/*}
db=timeline_cluster
psql "$base" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
export SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn}
cargo build --release --locked -q -p timeline -p timeline-workers --bins --example poll_jobs
bin=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)
s3fs=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")
store=${STORE:-s3s-fs}
case $store in
  s3s-fs) ;;
  garage)
    garage=$(command -v garage || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage")
    if [ ! -x "$garage" ]; then
      echo "cluster: installing garage 2.5.0 (once, about 15 minutes)" >&2
      cargo install garage --version 2.5.0 --locked -q
    fi ;;
  *) echo "cluster: STORE must be s3s-fs or garage, not $store" >&2; exit 2 ;;
esac

work=$(mktemp -d /tmp/timeline-cluster.XXXXXX)
chmod 755 "$work" # PgBouncer runs as postgres and keeps its files in here
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "cluster: FAILED: $*" >&2; exit 1; }
say() { echo "cluster: $*" >&2; }
sql() { psql "$server/$db" -qAtc "$1"; }

netns=false
if [ "$(id -u)" = 0 ] && [ -z "${NO_NETNS:-}" ] && ip netns add "tlprobe$$" 2>/dev/null; then
  ip netns del "tlprobe$$"
  netns=true
fi
namespaces=()
cleanup_netns() { for n in "${namespaces[@]}"; do ip netns del "$n" 2>/dev/null || true; done; }
trap 'cleanup; cleanup_netns' EXIT

# The shared services (on every address when hosts have their own network).
listen=127.0.0.1
$netns && listen='*'
bouncer_port=$(free_port)
PGBOUNCER_LISTEN=$listen bash scripts/pgbouncer.sh "$work/pgbouncer" "$bouncer_port" 20 >/dev/null 2>&1 &
pids+=($!)
session_port=$(free_port)
if $netns; then
  PGBOUNCER_LISTEN='*' PGBOUNCER_POOL_MODE=session \
    bash scripts/pgbouncer.sh "$work/pgbouncer-session" "$session_port" 100 >/dev/null 2>&1 &
  pids+=($!)
fi
s3host=127.0.0.1
$netns && s3host=0.0.0.0
key_id=cluster key_secret=cluster-secret
declare -A garage_pid
# Garage node N: its folders, RPC on loopback, its S3 API where the hosts reach it.
start_garage() { # index
  local dir=$work/garage$1
  mkdir -p "$dir"
  cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:${garage_rpc[$1]}"
rpc_public_addr = "127.0.0.1:${garage_rpc[$1]}"
rpc_secret = "$rpc_secret"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "$s3host:${garage_s3[$1]}"
EOF
  RUST_LOG=warn "$garage" -c "$dir/garage.toml" server >"$dir/log" 2>&1 &
  garage_pid[$1]=$!
  pids+=($!)
}
gctl() { "$garage" -c "$work/garage1/garage.toml" "$@"; }
if [ "$store" = garage ]; then
  rpc_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  key_id=GK$(python3 -c 'import secrets; print(secrets.token_hex(12))')
  key_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  declare -A garage_rpc garage_s3
  for n in 1 2 3; do garage_rpc[$n]=$(free_port) garage_s3[$n]=$(free_port); start_garage "$n"; done
  ids=()
  for n in 1 2 3; do
    for _ in $(seq 100); do
      id=$("$garage" -c "$work/garage$n/garage.toml" node id -q 2>/dev/null) && break
      sleep 0.2
    done
    [ -n "${id:-}" ] || fail "garage node $n did not start: $(tail -5 "$work/garage$n/log")"
    ids+=("${id%%@*}")
    [ "$n" = 1 ] || gctl node connect "$id" >/dev/null
    id=
  done
  gctl layout assign -z dc1 -c 1G "${ids[@]}" >/dev/null
  gctl layout apply --version 1 >/dev/null
  gctl bucket create photos >/dev/null
  gctl key import --yes -n cluster "$key_id" "$key_secret" >/dev/null
  gctl bucket allow --read --write --owner photos --key cluster >/dev/null
  say "garage: 3 nodes, replication factor 3 ($(gctl status 2>/dev/null | grep -c 'dc1') in the layout)"
  s3port=${garage_s3[1]}
else
  s3port=$(free_port)
  mkdir -p "$work/s3/photos"
  "$s3fs" --host "$s3host" --port "$s3port" --access-key cluster --secret-key cluster-secret "$work/s3" >/dev/null 2>&1 &
  pids+=($!)
fi
for port in "$bouncer_port" $($netns && echo "$session_port"); do
  for _ in $(seq 100); do psql "postgres://postgres@127.0.0.1:$port/$db" -qAtc "select 1" >/dev/null 2>&1 && break; sleep 0.1; done
done

# What every host's processes are given, reaching the services at $1.
host_env() { # address [store port]
  local sess="$server/$db"
  $netns && sess="postgres://postgres@$1:$session_port/$db?sslmode=disable"
  echo "DATABASE_URL=postgres://postgres@$1:$bouncer_port/$db?sslmode=disable"
  echo "DATABASE_SESSION_URL=$sess"
  echo "AWS_ENDPOINT=http://$1:${2:-$s3port}"
}
export DATABASE_MAX_CONNECTIONS=20
export TIMELINE_STORAGE=s3://photos/cluster AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$key_secret \
  AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true AWS_VIRTUAL_HOSTED_STYLE_REQUEST=false
DATABASE_URL="$server/$db" "$bin/timeline" migrate >/dev/null
token=$(DATABASE_URL="$server/$db" "$bin/timeline" users create --email cluster@example.org |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# A host's network: with namespaces, its own (address 10.77.N.2, the machine at 10.77.N.1);
# else loopback. Sets $host_addr, $gateway, $veth and $ns.
host_net() { # index
  if $netns; then
    ns="tl$$-$1" veth="tlv$$-$1"
    ip netns add "$ns"
    namespaces+=("$ns")
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip addr add "10.77.$1.1/24" dev "$veth"
    ip link set "$veth" up
    ip netns exec "$ns" ip addr add "10.77.$1.2/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$ns" ip link set lo up
    host_addr=10.77.$1.2 gateway=10.77.$1.1
  else
    ns="" veth="" host_addr=127.0.0.1 gateway=127.0.0.1
  fi
}
# A host: its own network and folder, one process. Sets $host_pid.
declare -A host_veth
start_host() { # index name command...   ($host_store: the store port to address, if not node 1)
  local index=$1 name=$2; shift 2
  host_net "$index"
  host_veth[$name]=$veth
  mkdir -p "$work/hosts/$name/spool"
  local envs
  mapfile -t envs < <(host_env "$gateway" "${host_store:-}")
  local run=(env "${envs[@]}" TIMELINE_SPOOL_DIR="$work/hosts/$name/spool" "$@")
  [ -n "$ns" ] && run=(ip netns exec "$ns" "${run[@]}")
  (cd "$work/hosts/$name" && exec "${run[@]}" >log 2>&1) &
  host_pid=$!
  pids+=("$host_pid")
}
webs=()
for i in 1 2; do
  port=$(free_port)
  TIMELINE_ADDR=0.0.0.0:$port start_host "$i" "web$i" "${WEB_BIN:-$bin/timeline}" serve
  webs+=("http://$host_addr:$port")
done
for w in "${webs[@]}"; do
  for _ in $(seq 100); do curl -sf "$w/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "$w/healthz" >/dev/null || fail "web process at $w did not start"
done
declare -A worker_pid
start_worker() { # index
  local host_store=
  [ "$store" = garage ] && [ $(($1 % 2)) = 0 ] && host_store=${garage_s3[2]}
  start_host "$((10 + $1))" "worker$1" nice -n "$worker_nice" "${WORKER_BIN:-$bin/timeline-worker}" --concurrency "$concurrency"
  worker_pid[$1]=$host_pid
}

# Peak of PostgreSQL's connections to the database, sampled all along.
(while :; do sql "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'client backend'" >>"$work/connections" 2>/dev/null; sleep 0.5; done) &
pids+=($!)

# Distinct photos: the fixtures with a suffix after the image data.
mkdir -p "$work/photos"
python3 - "$work/photos" "$photos" <<'PY'
import os, sys
src = "tests/fixtures"
names = ["DSCN0010.jpg", "gps_sahara.jpg", "landscape_1.jpg", "no_exif.jpg", "Kodak_CX7530.jpg"]
out, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    data = open(os.path.join(src, names[i % len(names)]), "rb").read()
    open(os.path.join(out, f"{i:05}.jpg"), "wb").write(data + f"cluster-{i}".encode())
PY

# Uploads the photos matching GLOB, 10 per request, alternating web processes, with $1
# requests in flight; prints the job ids.
upload() { # glob
  find "$work/photos" -type f -name "$1" | sort | split -l 10 - "$work/batch."
  local i=0
  for b in "$work"/batch.*; do
    local args=()
    while read -r f; do args+=(-F "file=@$f"); done <"$b"
    curl -sS --fail -H "Authorization: Bearer $token" "${args[@]}" "${webs[$((i % 2))]}/v1/media" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])'
    rm "$b"
    i=$((i + 1))
  done
}

# Waits (sampling every 0.1 s, at most 30 s) until worker host $1 holds a task; sets $held
# (its tasks) and $left (files not done).
wait_holding() {
  held=0
  for _ in $(seq 300); do
    held=$(sql "SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done', 'Failed', 'Killed') AND lock_by ~ '-${worker_pid[$1]}-[0-9a-f]{32}-[0-9]+\$'")
    [ "$held" -gt 0 ] && break
    sleep 0.1
  done
  left=$(sql "SELECT count(*) FROM media_files WHERE processing_status NOT IN ('completed', 'failed', 'duplicate')")
}

say "import of $photos photos with one worker host"
start_worker 1
started=$(date +%s.%N)
upload '*' >"$work/jobs" &
uploader=$!
# With fewer than 3 workers, the one host works alone (the connections' figure for 1 worker);
# the store's faults still happen.
faults=false
[ "$workers" -ge 3 ] && faults=true
if $faults; then
  # This machine uploads and processes the first batch in under 10 s, so the others join
  # early and the first host is killed at the first moment it holds a task (sampled every
  # 0.1 s, at most 30 s): that task must come back after the heartbeat timeout and finish on
  # another host. (Killing a host that had just joined, 10 s in, found the import already
  # done and tested nothing.)
  sleep 2
  say "two more worker hosts join"
  start_worker 2
  start_worker 3
  wait_holding 1
  say "worker1 killed with -9 mid-import (pid ${worker_pid[1]}, holding $held tasks; $left files not done)"
  kill -9 "${worker_pid[1]}"
else
  sleep 10
fi
if [ "$store" = garage ]; then
  say "garage node 3 killed with -9 mid-import (pid ${garage_pid[3]})"
  kill -9 "${garage_pid[3]}"
fi
if $netns && $faults; then
  # Cut at a moment worker3 holds a task too, so that the task must come back from a host
  # that is still running and will finish it late.
  wait_holding 3
  say "worker3's network cut for 60 s (it keeps running; holding $held tasks; $left files not done)"
  ip link set "${host_veth[worker3]}" down
fi
wait "$uploader" || fail "an upload was refused"
for i in $(seq 4 "$workers"); do start_worker "$i"; done
if $netns && $faults; then
  sleep 60
  ip link set "${host_veth[worker3]}" up
  say "worker3's network is back"
fi

# Everything ends.
deadline=$(( $(date +%s) + 600 ))
while :; do
  left=$(sql "SELECT count(*) FROM media_files WHERE processing_status NOT IN ('completed','failed','duplicate')")
  [ "$left" = 0 ] && break
  [ "$(date +%s)" -lt "$deadline" ] || fail "$left files never ended"
  sleep 1
done
elapsed=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
completed=$(sql "SELECT count(*) FROM media_files WHERE processing_status = 'completed'")
[ "$completed" = "$photos" ] || fail "$completed of $photos files completed: $(sql "SELECT processing_status, count(*), min(error_message) FROM media_files GROUP BY 1")"
# Every task acknowledged: a step that a dead or cut host held returns to the queue about 20 s
# after its last heartbeat and is run again (a no-op for a file that has ended), so allow that.
deadline=$(( $(date +%s) + 90 ))
while :; do
  open=$(sql "SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done')")
  [ "$open" = 0 ] && break
  [ "$(date +%s)" -lt "$deadline" ] ||
    fail "$open queue tasks not acknowledged: $(sql "SELECT job_type, status, attempts, lock_by, left(last_result::text, 200) FROM apalis.jobs WHERE status <> 'Done'")"
  sleep 1
done
# The store, paged through by the operator's audit (any S3 store): every object named, none
# orphaned.
audit=$(DATABASE_URL="$server/$db" AWS_ENDPOINT="http://127.0.0.1:$s3port" "$bin/timeline" maintenance --audit-store)
read -r objects orphans < <(python3 -c 'import json,sys; a=json.loads(sys.argv[1])["audit"]; print(a["objects_seen"], a["orphan_objects_deleted"])' "$audit")
[ "$objects" = $((photos * 3)) ] || fail "$objects objects in the store for $photos photos (want $((photos * 3))): $audit"
[ "$orphans" = 0 ] || fail "$orphans orphan objects in the store"
# Nothing lost: every original read back through the API has the SHA-256 recorded at upload,
# and both of its renditions are served.
sql "SELECT id || ' ' || file_hash FROM media_files" >"$work/hashes"
python3 - "${webs[0]}" "$token" "$work/hashes" <<'PY' || fail "an object could not be read back"
import hashlib, sys, urllib.request
base, token, rows = sys.argv[1], sys.argv[2], [l.split() for l in open(sys.argv[3]) if l.strip()]
def get(path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()
bad = [i for i, h in rows if hashlib.sha256(get(f"/v1/media/{i}/original")).hexdigest() != h]
for i, _ in rows:
    for kind in ("thumb", "preview"):
        assert get(f"/v1/media/{i}/thumbnails/{kind}"), (i, kind)
if bad:
    sys.exit(f"{len(bad)} originals differ from their recorded hash: {bad[:5]}")
print(f"cluster: {len(rows)} originals read back with their recorded SHA-256, renditions served", file=sys.stderr)
PY
pending=$(sql "SELECT (SELECT count(*) FROM pending_objects) + (SELECT count(*) FROM upload_sessions)")
[ "$pending" = 0 ] || fail "$pending pending objects or sessions left"
say "import: $photos photos completed in ${elapsed} s; $objects objects; nothing pending"

# Many clients following their jobs while a second batch is processed.
mkdir -p "$work/photos2"
python3 - "$work/photos" "$work/photos2" <<'PY'
import os, sys
src, out = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src))[:100]:
    open(os.path.join(out, "b" + name), "wb").write(open(os.path.join(src, name), "rb").read() + b"-second")
PY
mv "$work"/photos2/* "$work/photos/"
upload 'b*' >"$work/jobs2" &
uploader=$!
mapfile -t jobs <"$work/jobs"
say "$clients clients poll their jobs for 20 s (half on each web process)"
half=$((clients / 2))
"$bin/examples/poll_jobs" "${webs[0]}" "$token" "$half" 20 1000 "${jobs[@]}" >"$work/poll1" &
p1=$!
"$bin/examples/poll_jobs" "${webs[1]}" "$token" "$((clients - half))" 20 1000 "${jobs[@]}" >"$work/poll2" &
p2=$!
wait "$p1" "$p2"
wait "$uploader" || fail "a second-batch upload was refused"
cat "$work/poll1" "$work/poll2"
# The second batch ends too; then who did the work, over both imports (the first one's
# photos arrive no faster than one host processes them, so later hosts mostly take part in the
# second, which is uploaded with every host up).
deadline=$(( $(date +%s) + 600 ))
while [ "$(sql "SELECT count(*) FROM media_files WHERE processing_status NOT IN ('completed','failed','duplicate')")" != 0 ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the second batch never ended"
  sleep 1
done
# Who did the work: each step's task is locked by the pool that ran it, named
# <queue>-<host>-<pid>-<uuid>-<restart> (a finished task keeps it as metadata -> 'done_by').
echo "steps per worker host (pid), both imports:"
for i in "${!worker_pid[@]}"; do
  n=$(sql "SELECT count(*) FROM apalis.jobs WHERE coalesce(lock_by, metadata -> 'done_by') ~ '-${worker_pid[$i]}-[0-9a-f]{32}-[0-9]+\$'")
  echo "  worker$i (${worker_pid[$i]}): $n"
done | sort

python3 - "$work/poll1" "$work/poll2" "$work/connections" <<'PY'
import json, sys
polls = [json.load(open(p)) for p in sys.argv[1:3]]
errors = sum(p["errors"] for p in polls)
p95 = max(p["p95_ms"] for p in polls)
peak = max(int(l) for l in open(sys.argv[3]) if l.strip())
print(f"polling: {sum(p['requests'] for p in polls)} requests, {errors} errors, p95 {p95:.1f} ms (worst web process)")
print(f"PostgreSQL connections to the database, peak over the run: {peak}")
PY
say "done"
