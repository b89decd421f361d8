#!/usr/bin/env bash
# The cost of the killable decoder (image decoding in a reused child process, issue 9) on the
# deterministic 12 MP corpus: per-photo median of the worker's child path next to an
# in-process render of the same photos, alternating rounds, in one run.
#
#   bash scripts/bench-decoder.sh [ROUNDS]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The corpus maker needs a real ImageMagick `convert` and exiftool.
have_im() {
  local c
  for c in $(type -ap convert); do "$c" -version 2>/dev/null | grep -q "^Version: ImageMagick" && return 0; done
  return 1
}
if ! have_im || ! command -v exiftool >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends imagemagick libimage-exiftool-perl >&2
fi
corpus=target/bench-corpus
if [ ! -d "$corpus/jpg12" ]; then
  [ -f ../shared/bench/make_corpus.sh ] || { echo "needs ../shared/bench/make_corpus.sh" >&2; exit 1; }
  bash ../shared/bench/make_corpus.sh "$corpus"
fi
SQLX_OFFLINE=true cargo build -q --release --locked -p timeline-workers --example bench_decoder
"${CARGO_TARGET_DIR:-target}/release/examples/bench_decoder" "${1:-5}" "$corpus"/jpg12/*.jpg
