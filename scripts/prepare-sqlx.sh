#!/usr/bin/env bash
# Regenerates the committed `.sqlx/` query cache after a change to SQL or migrations.
# Builds against a scratch database migrated with psql (the macros need a live schema before
# the `timeline` binary that would migrate it can be compiled), then keeps only fresh entries.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
url="${base%/*}/timeline_sqlx_prepare"
psql "$base" -qc 'DROP DATABASE IF EXISTS timeline_sqlx_prepare' -c 'CREATE DATABASE timeline_sqlx_prepare'
for f in migrations/*.sql; do psql "$url" -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null; done
# apalis-postgres's own query macros also run live while DATABASE_URL is set: give them their schema.
apalis=$(cargo metadata --format-version 1 | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="apalis-postgres"))')
for f in "$(dirname "$apalis")"/migrations/*.sql; do psql "$url" -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null; done
rm -rf .sqlx && mkdir .sqlx
# Touch every crate so each query macro runs again and writes its file. A build with the
# tests' features, as scripts/test.sh makes, so its dependencies are reused.
touch core/src/lib.rs src/lib.rs workers/src/lib.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$PWD/.sqlx" DATABASE_URL="$url" cargo build --workspace --all-targets \
  --features timeline/test-hooks,timeline-workers/test-hooks --quiet
# Keep only our own queries: apalis-postgres's macros write theirs here too, but the crate
# ships them in its own cache (our queries on apalis's tables stay).
for f in "$(dirname "$apalis")"/.sqlx/*.json; do rm -f ".sqlx/$(basename "$f")"; done
echo "wrote $(ls .sqlx | wc -l) query files to .sqlx/"
