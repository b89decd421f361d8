#!/usr/bin/env bash
# Videos/s and MB/s of probe + poster through the worker's own code (examples/bench_video:
# BMFF check + moov read, ffprobe, ffmpeg poster with frame choice, preview JPEG + thumb WebP)
# next to the reference done by hand on the same files in the same run: `ffprobe -show_format
# -show_streams` + `ffmpeg -frames:v 1` to a JPEG. Median of ROUNDS runs each, alternating.
#
#   bash scripts/bench-video.sh [ROUNDS] [FILE...]   (default: 5 rounds over the corpus clips)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rounds=${1:-5}; shift || true
if [ $# -gt 0 ]; then files=("$@"); else
  files=()
  for f in tests/fixtures/video/*.{mp4,MOV,mov,mkv,AVI,3gp} ../shared/corpus/video/quicktime-hvc1.mov; do
    case "$f" in *bad_*|*"*"*) continue;; esac
    [ -f "$f" ] && files+=("$f")
  done
fi
cargo build -q --release -p timeline-media --example bench_video
target="${CARGO_TARGET_DIR:-target}"
ours() { "$target/release/examples/bench_video" "${files[@]}"; }
byhand() {
  local out; out=$(mktemp -d)
  local t0; t0=$(date +%s.%N)
  local i=0
  for f in "${files[@]}"; do
    ffprobe -v error -print_format json -show_format -show_streams "$f" >/dev/null
    ffmpeg -v error -y -i "$f" -frames:v 1 "$out/$i.jpg"
    i=$((i + 1))
  done
  echo "$(date +%s.%N) $t0" | awk '{printf "%.4f\n", $1 - $2}'
  rm -rf "$out"
}
bytes=$(cat "${files[@]}" | wc -c)
o=(); r=()
for _ in $(seq "$rounds"); do
  o+=("$(ours | awk '{print $3}')")
  r+=("$(byhand)")
done
python3 - "${#files[@]}" "$bytes" "${o[*]}" "${r[*]}" <<'PY'
import statistics, sys
n, b = int(sys.argv[1]), int(sys.argv[2])
o = statistics.median(map(float, sys.argv[3].split()))
r = statistics.median(map(float, sys.argv[4].split()))
mb = b / 1e6
print(f"{n} clips, {mb:.1f} MB, median of {len(sys.argv[3].split())} rounds")
print(f"timeline probe+poster:          {o:.2f} s  {n/o:.1f} videos/s  {mb/o:.1f} MB/s")
print(f"ffprobe + ffmpeg -frames:v 1:   {r:.2f} s  {n/r:.1f} videos/s  {mb/r:.1f} MB/s")
print(f"ratio (reference time / ours):  {r/o:.2f}")
PY
