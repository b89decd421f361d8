#!/usr/bin/env bash
# Coverage-guided fuzzing of the entry points that eat hostile bytes (libFuzzer via cargo-fuzz,
# on stable Rust: `-s none` passes only stable flags, see ../shared/notes/components.md).
#
#   bash scripts/fuzz.sh SECONDS [TARGET...]     (targets: exif image sniff video; default all)
#
# Seeds: every fixture under tests/fixtures up to 3 MiB (the slow/ timeout fixtures left out),
# copied into target/fuzz-corpus/TARGET, where the corpus libFuzzer grows is kept between runs.
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(exif image sniff video)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz@0.13.1 --locked --quiet
for t in "${TARGETS[@]}"; do
  corpus=target/fuzz-corpus/$t
  if [ ! -d "$corpus" ]; then
    mkdir -p "$corpus"
    find tests/fixtures -type f -size -3M ! -path '*/slow/*' ! -name '*.md' ! -name '*.json' \
      ! -name '*.py' ! -name '*.tsv' -exec cp {} "$corpus/" \;
  fi
  echo "fuzz: $t for ${SECS}s" >&2
  # rss_limit: the image target decodes up to 16 MP; timeout: one input over 30 s is a finding.
  (cd fuzz && cargo fuzz run -s none --target-dir ../target/fuzz "$t" "../$corpus" -- \
    -max_total_time="$SECS" -rss_limit_mb=3072 -timeout=30 -print_final_stats=1 2>&1) |
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss|cov:|==[0-9]+==|.*(panicked|ERROR|SUMMARY))' |
    tail -n 6 >&2
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz: $t found a crash (see fuzz/artifacts/$t)" >&2; exit 1; }
done
