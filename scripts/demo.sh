#!/usr/bin/env bash
# The main job end to end, on a fresh machine: database, build, migrate, seed, then the whole
# platform (API + worker pools) ingesting a camera roll made of the sample photos shipped in
# tests/fixtures plus videos, a Live Photo pair, a Motion Photo and an audio file from
# tests/fixtures/video, printing the job's progress and, per file, its kind, status, taken_at,
# place, size (and duration) and thumbnail sizes; then a video upload through the HTTP API.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATABASE_URL=$(scripts/ensure-postgres.sh)
export DATABASE_URL SQLX_OFFLINE=true
export TIMELINE_STORAGE=${TIMELINE_STORAGE:-$PWD/data}
export TIMELINE_ADDR=${TIMELINE_ADDR:-127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export RUST_LOG=${RUST_LOG:-warn}

echo "== build (release)"
cargo build --release --locked --workspace --bins
bin=${CARGO_TARGET_DIR:-target}/release

echo "== migrate and seed"
$bin/timeline migrate
$bin/timeline seed

echo "== start the platform (web + worker, as in the Procfile)"
$bin/timeline serve & web=$!
# Its warnings (about the hostile files) go to a log beside the binaries.
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$bin/timeline-worker --metrics-addr "127.0.0.1:$metrics_port" 2>>"$bin/demo-worker.log" & worker=$!
trap 'kill $web $worker 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 50); do curl -fs "http://$TIMELINE_ADDR/healthz" >/dev/null && break; sleep 0.2; done

email="demo+$(date +%s)@example.org"
creds=$($bin/timeline users create --email "$email" --name Demo)
token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$creds")
echo "user $email created"

echo "== ingest a camera roll: tests/fixtures photos + videos, Live/Motion Photos, audio (bad/ holds hostile files, ingested next)"
samples=$(mktemp -d)
find tests/fixtures -maxdepth 1 -type f ! -name '*.md' ! -name '*.json' -exec cp {} "$samples/" \;
for f in with-gps.mov "Issue 515 (java).mp4" video_mkv.mkv MVI_4823.AVI IMG_7943.HEIC IMG_7943_HEVC.MOV \
         motion_google.jpg "Issue 337 (dotnet).m4a" bad_truncated_mdat.mp4; do
  cp "tests/fixtures/video/$f" "$samples/"
done
$bin/timeline ingest "$samples" --email "$email" --list --timeout-secs 600

echo "== hostile files through the same queues"
$bin/timeline ingest tests/fixtures/bad --email "$email" --timeout-secs 600 || true

echo "== the HTTP API: upload one photo again (a duplicate) and poll its job"
resp=$(curl -fsS -X POST "http://$TIMELINE_ADDR/v1/media" -H "Authorization: Bearer $token" \
  -F "file=@tests/fixtures/DSCN0010.jpg")
echo "$resp"
job=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["job"]["id"])' "$resp")
for _ in $(seq 100); do
  j=$(curl -fsS "http://$TIMELINE_ADDR/v1/jobs/$job" -H "Authorization: Bearer $token")
  echo "$j" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("job", j["status"], str(j["progress"])+"%", json.dumps({k: j["output_data"].get(k) for k in ("completed","failed","duplicate")}))'
  echo "$j" | grep -q '"status":"completed"' && break
  sleep 0.3
done

echo "== the HTTP API: upload a video, then read its detail and the first 100 bytes by Range"
resp=$(curl -fsS -X POST "http://$TIMELINE_ADDR/v1/media?filename=rotated.mp4" -H "Authorization: Bearer $token" \
  -H 'Content-Type: video/mp4' --data-binary @tests/fixtures/video/video_rotate.mp4)
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["media"][0]["id"])' "$resp")
for _ in $(seq 100); do
  m=$(curl -fsS "http://$TIMELINE_ADDR/v1/media/$id" -H "Authorization: Bearer $token")
  echo "$m" | grep -q '"processing_status":"\(completed\|failed\)"' && break
  sleep 0.3
done
echo "$m" | python3 -c 'import json,sys; m=json.load(sys.stdin); print({k: m[k] for k in ("kind","processing_status","duration_ms","width","height","taken_at","taken_at_source")}, m["metadata"].get("video_codec"), m["metadata"].get("rotation"), "deg")'
curl -fsS -o /dev/null -D - -r 0-99 "http://$TIMELINE_ADDR/v1/media/$id/original" -H "Authorization: Bearer $token" \
  | grep -iE '^(HTTP|content-range|content-length|content-type)'

echo "== live progress of that job (Server-Sent Events: it has ended, so the state and the summary)"
curl -fsSN --max-time 10 "http://$TIMELINE_ADDR/v1/jobs/$job/events" -H "Authorization: Bearer $token" \
  | grep '^event:' | tr '\n' ' '; echo

echo "== operators: metrics (web and worker), reprocess, the API description, the dashboard"
curl -fsS "http://$TIMELINE_ADDR/metrics" | grep -E '^timeline_(queue_jobs|workers_alive)\{queue="thumbnail"' || true
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -E '^timeline_media_total' || true
$bin/timeline reprocess --missing
curl -fsS "http://$TIMELINE_ADDR/openapi.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("openapi", d["openapi"], len(d["paths"]), "paths")'
admin=$($bin/timeline users create --admin --email "ops+$(date +%s%N)@example.org" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -fsS "http://$TIMELINE_ADDR/admin" -H "Authorization: Bearer $admin" | grep -oE '<h2>[A-Za-z]+</h2>' | tr '\n' ' '; echo
echo "   (sign in at http://$TIMELINE_ADDR/admin/login with an operator's token)"
rm -rf "$samples"
echo "== done"
