#!/usr/bin/env bash
# An export's import against a plain ingest of the same photos, in one run.
#
#   bash scripts/bench-import.sh [N] [ROUNDS]     (N photos, default 2000; ROUNDS, default 1)
#
# Makes the deterministic 12 MP corpus (../shared/bench/make_corpus.sh) once into
# target/bench-corpus and repeats its 20 JPEGs to N files (each copy with a distinct trailer
# after the JPEG end marker, so none is a duplicate of another). The same N files are then
#   1. a folder, given to `timeline ingest` (one user);
#   2. a two-part Google Takeout (half of the photos and a third of their sidecars in part 1,
#      the rest in part 2; photos stored, JSON deflated, as Google writes them), given to
#      `timeline import` (another user, so nothing is a duplicate).
# Both run end to end through one release `timeline-worker` (store, rows, queue, hash, EXIF
# and geocoding, renditions, end state) and wait for the last file. ROUNDS > 1 alternates the
# order. Prints photos/s of each, the ratio import/ingest, and the peak RSS of each command
# (`/usr/bin/time`) and of the worker (VmHWM): the archive is N x ~4.5 MB (2000: ~9 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
ROUNDS=${2:-1}
bash scripts/setup.sh
command -v exiftool >/dev/null && convert -version 2>/dev/null | grep -q ImageMagick || {
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libimage-exiftool-perl imagemagick >&2; }
[ -x /usr/bin/time ] || { SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo; $SUDO apt-get install -y -qq time >&2; }
DATABASE_URL=$(TIMELINE_DB_NAME=timeline_import_bench scripts/ensure-postgres.sh)
export DATABASE_URL SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn}

corpus=target/bench-corpus
if [ ! -d "$corpus/jpg12" ]; then
  [ -f ../shared/bench/make_corpus.sh ] || { echo "needs ../shared/bench/make_corpus.sh" >&2; exit 1; }
  bash ../shared/bench/make_corpus.sh "$corpus"
fi
work=target/bench-import
rm -rf "$work" && mkdir -p "$work/in" "$work/store"
mapfile -t src < <(ls "$corpus"/jpg12/*.jpg | sort)
for i in $(seq 0 $((N - 1))); do
  f="$work/in/$(printf 'img_%04d.jpg' "$i")"
  cp "${src[$((i % ${#src[@]}))]}" "$f"
  printf 'bench-copy-%d' "$i" >> "$f"
done
# The Takeout: Google's folder and sidecar names; a photo's JSON may be in the other part.
python3 - "$work" "$N" <<'PY'
import json, os, sys, zipfile
work, n = sys.argv[1], int(sys.argv[2])
year = "Takeout/Google Photos/Photos from 2019"
parts = [zipfile.ZipFile(f"{work}/takeout-00{k}.zip", "w") for k in (1, 2)]
for i in range(n):
    name = f"img_{i:04d}.jpg"
    photo_part = parts[0] if i < n // 2 else parts[1]
    photo_part.write(f"{work}/in/{name}", f"{year}/{name}", compress_type=zipfile.ZIP_STORED)
    sidecar = {"title": name,
               "photoTakenTime": {"timestamp": str(1565600000 + i * 60), "formatted": ""},
               "geoDataExif": {"latitude": 47.3769, "longitude": 8.5417, "altitude": 0.0},
               "description": f"photo {i}"}
    json_part = parts[0] if i % 3 == 0 else parts[1]
    json_part.writestr(f"{year}/{name}.supplemental-metadata.json", json.dumps(sidecar),
                       compress_type=zipfile.ZIP_DEFLATED)
for p in parts:
    p.close()
PY
echo "== archive: $(du -ch "$work"/takeout-00*.zip | tail -1 | cut -f1) in 2 parts, $N photos"

cargo build --release --locked --workspace --bins -q
bin=${CARGO_TARGET_DIR:-target}/release
$bin/timeline migrate
export TIMELINE_STORAGE="$PWD/$work/store"
RUST_LOG=info $bin/timeline-worker > "$work/worker.log" 2>&1 & worker=$!
trap 'kill $worker 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 300); do grep -q "worker pools starting" "$work/worker.log" && break; sleep 0.1; done

# Runs one command for a new user; appends "seconds peak_rss_kb" to $work/<what>.txt.
run() {
  local what=$1; shift
  local email="bench-$what+$(date +%s%N)@example.org"
  $bin/timeline users create --email "$email" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f %M -o "$work/rss" "$@" --email "$email" > "$work/$what.log" 2>&1 \
    || { cat "$work/$what.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  tail -n 3 "$work/$what.log" | grep -v '^ingest:' >&2 || true
  echo "$(python3 -c "print($t1 - $t0)") $(cat "$work/rss")" >> "$work/$what.txt"
}
rm -f "$work"/ingest.txt "$work"/import.txt
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="ingest import"; else order="import ingest"; fi
  for what in $order; do
    echo "== round $r: $what"
    case $what in
      ingest) run ingest "$bin/timeline" ingest "$work/in" ;;
      import) run import "$bin/timeline" import "$work/takeout-001.zip" "$work/takeout-002.zip" ;;
    esac
  done
done
worker_hwm=$(awk '/VmHWM/ {print $2}' "/proc/$worker/status")

python3 - "$N" "$work" "$worker_hwm" <<'PY'
import statistics, sys
n, work, worker_kb = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def load(what):
    rows = [tuple(map(float, l.split())) for l in open(f"{work}/{what}.txt")]
    return statistics.median(r[0] for r in rows), max(r[1] for r in rows), len(rows)
(ti, ri, k), (tm, rm, _) = load("ingest"), load("import")
print(f"timeline ingest (folder):   {ti:.1f} s, {n / ti:.1f} photos/s, peak RSS {ri / 1024:.0f} MB (median of {k})")
print(f"timeline import (Takeout):  {tm:.1f} s, {n / tm:.1f} photos/s, peak RSS {rm / 1024:.0f} MB")
print(f"ratio: import at {ti / tm:.2f}x the rate of ingest; worker peak RSS {worker_kb / 1024:.0f} MB")
PY
