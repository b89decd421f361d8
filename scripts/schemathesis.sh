#!/usr/bin/env bash
# Property-based API testing against a live server, from its own OpenAPI document:
# schemathesis (PyPI, pinned) generates requests for every operation of /openapi.json, with a
# real token, and checks that no answer is a 5xx and that every answer's status, content type
# and body match the document.
#
#   bash scripts/schemathesis.sh [MAX_EXAMPLES]     (default 25 per operation)
#
# Uses the debug build of `timeline` (scripts/test.sh has built it), a fresh database and store.
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${1:-25}
target=${CARGO_TARGET_DIR:-target}
venv=$target/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
  echo "schemathesis: installing 4.32.5 into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5" >&2
fi
[ -x "$target/debug/timeline" ] || SQLX_OFFLINE=true cargo build --locked -q --bin timeline
base=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
db=timeline_schemathesis
psql "$base" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
export DATABASE_URL="${base%/*}/$db" RUST_LOG=${RUST_LOG:-warn}
store=$(mktemp -d)
export TIMELINE_STORAGE="$store"
"$target/debug/timeline" migrate >/dev/null
token=$("$target/debug/timeline" users create --email api-fuzz@example.org |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TIMELINE_ADDR=127.0.0.1:$port "$target/debug/timeline" serve > "$store/serve.log" 2>&1 & serve=$!
trap 'kill $serve 2>/dev/null; wait $serve 2>/dev/null; rm -rf "$store"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
# One real photo, so some generated requests meet an existing file.
curl -sf -H "Authorization: Bearer $token" -F "file=@tests/fixtures/landscape_1.jpg" \
  "http://127.0.0.1:$port/v1/media" >/dev/null
SCHEMATHESIS_HOOKS=scripts/schemathesis_hooks.py "$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "$EXAMPLES" --workers 1 --seed 20261202 --request-timeout 30 --no-color
if grep -q "panicked" "$store/serve.log"; then
  echo "schemathesis: the server panicked:" >&2
  grep -A5 panicked "$store/serve.log" >&2
  exit 1
fi
