#!/usr/bin/env bash
# Installs the build tools the media crate needs, if missing (idempotent, Debian/Ubuntu):
# cmake + nasm build the bundled libjpeg-turbo 3 (turbojpeg) and libheif (libheif-rs
# embedded-libheif); libde265-dev gives libheif its HEVC decoder; pkg-config finds it.
# ffmpeg/ffprobe probe videos and audio and cut poster frames (run as child processes, so a
# hostile clip costs one process, not a worker); prlimit (util-linux) caps their memory.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v nasm >/dev/null || missing+=(nasm)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v c++ >/dev/null || missing+=(g++)
pkg-config --exists libde265 2>/dev/null || missing+=(libde265-dev)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v ffprobe >/dev/null || missing+=(ffmpeg)
command -v prlimit >/dev/null || missing+=(util-linux)
# `--tests`: also what only the tests use. The operators' surface: promtool checks /metrics
# (Debian's prometheus package), Chromium runs the dashboard test (driven by playwright-core
# from npm, below); Node and Python run the real tus clients; PgBouncer is the pooler.
tests=false
[ "${1:-}" = "--tests" ] && tests=true
if $tests; then
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v npm >/dev/null || missing+=(npm)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  # A real transaction pooler for the pooler test (scripts/pgbouncer.sh runs it).
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null || missing+=(pgbouncer)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

$tests || exit 0

# playwright-core for the dashboard test, from tests/browser/package-lock.json (it downloads
# no browser: the test uses Debian's chromium).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "setup: installing tests/browser npm packages" >&2
  npm ci --prefix tests/browser --no-audit --no-fund --silent >&2
fi

# Real tus clients for the resumable-upload tests (workers/tests/pipeline/tus.rs):
# tus-js-client under Node (tests/tus/package-lock.json) and tuspy in a venv under target/.
if [ ! -d tests/tus/node_modules/tus-js-client ]; then
  echo "setup: installing tests/tus npm packages" >&2
  npm ci --prefix tests/tus --no-audit --no-fund --silent >&2
fi
tus_venv=${CARGO_TARGET_DIR:-target}/tus-venv
if [ ! -x "$tus_venv/bin/python" ] || ! "$tus_venv/bin/python" -c 'import tusclient' 2>/dev/null; then
  echo "setup: installing tuspy into $tus_venv" >&2
  python3 -m venv "$tus_venv"
  "$tus_venv/bin/pip" install -q -r tests/tus/requirements.txt >&2
fi

# A real S3-compatible server for the storage-fault tests (workers/tests/pipeline/s3_faults.rs):
# s3s-fs serves a directory over the S3 API. 0.14.1 is the last release building on Rust 1.95;
# built once into cargo's bin directory (a few minutes), then found there.
if ! command -v s3s-fs >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
  echo "setup: installing s3s-fs 0.14.1 (once)" >&2
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet >&2
fi

# cargo-fuzz for the coverage-guided fuzz runs (scripts/fuzz.sh; libFuzzer is built by the
# libfuzzer-sys crate with g++).
if ! command -v cargo-fuzz >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]; then
  echo "setup: installing cargo-fuzz 0.13.1 (once)" >&2
  cargo install cargo-fuzz@0.13.1 --locked --quiet >&2
fi
