#!/usr/bin/env bash
# End-to-end ingestion throughput against the reference tools, in one run, on the same files.
#
#   bash scripts/bench-ingest.sh [N]      (N files, default 100)
#
# Makes the deterministic 12 MP corpus (../shared/bench/make_corpus.sh) once into
# target/bench-corpus, repeats its 20 JPEGs to N files (each copy gets a distinct trailer
# after the JPEG end marker: decoders ignore it, but the hash differs, so no copy is skipped
# as a duplicate), then times
#   1. `timeline ingest` through a release `timeline-worker` (all pools, both cores): store,
#      rows, queue, SHA-256, EXIF + geocoding, preview + thumb, end state;
#   2. the reference tools, each given all files in one call: vipsthumbnail --size 250,
#      vipsthumbnail --size 1440, exiftool -n -json, sha256sum; one after the other, then
#      all four at once (their best case on several cores).
# and prints images/s for each and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
bash scripts/setup.sh
for tool in vipsthumbnail exiftool convert; do
  command -v $tool >/dev/null || { SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo;
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libvips-tools libimage-exiftool-perl imagemagick >&2; break; }
done
DATABASE_URL=$(TIMELINE_DB_NAME=timeline_ingest_bench scripts/ensure-postgres.sh)
export DATABASE_URL SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn}

corpus=target/bench-corpus
if [ ! -d "$corpus/jpg12" ]; then
  [ -f ../shared/bench/make_corpus.sh ] || { echo "needs ../shared/bench/make_corpus.sh" >&2; exit 1; }
  bash ../shared/bench/make_corpus.sh "$corpus"
fi
work=target/bench-ingest
rm -rf "$work" && mkdir -p "$work/in" "$work/ref" "$work/store"
mapfile -t src < <(ls "$corpus"/jpg12/*.jpg | sort)
for i in $(seq 0 $((N - 1))); do
  f="$work/in/$(printf 'img_%03d.jpg' "$i")"
  cp "${src[$((i % ${#src[@]}))]}" "$f"
  printf 'bench-copy-%d' "$i" >> "$f"
done

cargo build --release --locked --workspace --bins -q
bin=${CARGO_TARGET_DIR:-target}/release
$bin/timeline migrate
email="bench+$(date +%s%N)@example.org"
$bin/timeline users create --email "$email" >/dev/null
export TIMELINE_STORAGE="$PWD/$work/store"
RUST_LOG=info $bin/timeline-worker > "$work/worker.log" 2>&1 & worker=$!
trap 'kill $worker 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 300); do grep -q "worker pools starting" "$work/worker.log" && break; sleep 0.1; done

echo "== timeline ingest of $N x 12 MP JPEG"
t0=$(date +%s.%N)
$bin/timeline ingest "$work/in" --email "$email"
t1=$(date +%s.%N)

echo "== reference tools on the same files"
r0=$(date +%s.%N)
vipsthumbnail --size 250 -o "$PWD/$work/ref/%s_250.jpg" "$work"/in/*.jpg
vipsthumbnail --size 1440 -o "$PWD/$work/ref/%s_1440.jpg" "$work"/in/*.jpg
exiftool -n -json "$work"/in/*.jpg > "$work/ref/exif.json"
sha256sum "$work"/in/*.jpg > "$work/ref/sha256.txt"
r1=$(date +%s.%N)
rm -rf "$work/ref" && mkdir -p "$work/ref"
c0=$(date +%s.%N)
vipsthumbnail --size 250 -o "$PWD/$work/ref/%s_250.jpg" "$work"/in/*.jpg & p1=$!
vipsthumbnail --size 1440 -o "$PWD/$work/ref/%s_1440.jpg" "$work"/in/*.jpg & p2=$!
exiftool -n -json "$work"/in/*.jpg > "$work/ref/exif.json" & p3=$!
sha256sum "$work"/in/*.jpg > "$work/ref/sha256.txt" & p4=$!
wait $p1 $p2 $p3 $p4   # not the worker, also a child of this shell
c1=$(date +%s.%N)

python3 - "$N" "$t0" "$t1" "$r0" "$r1" "$c0" "$c1" <<'PY'
import sys
n, t0, t1, r0, r1, c0, c1 = int(sys.argv[1]), *map(float, sys.argv[2:])
ours, ref, conc = n / (t1 - t0), n / (r1 - r0), n / (c1 - c0)
print(f"timeline ingest: {t1 - t0:.1f} s, {ours:.1f} images/s (end to end)")
print(f"reference tools: {r1 - r0:.1f} s, {ref:.1f} images/s (vipsthumbnail x2 + exiftool + sha256sum)")
print(f"reference tools at once: {c1 - c0:.1f} s, {conc:.1f} images/s (the four run concurrently)")
print(f"ratio: {ours / ref:.2f}x the reference, {ours / conc:.2f}x the reference run concurrently")
PY
