#!/usr/bin/env bash
# Does history slow the platform down? The same import of N photos, measured in PostgreSQL's
# own counters (pg_stat_database deltas: transactions, rows read by scans, rows fetched by
# index, rows written, buffer hits and reads) on an empty database, then again after loading
# HISTORY photos of another user's history: completed media rows, their three step records,
# their three finished queue rows (kept, as retention keeps a day's) and their upload jobs.
# Prints the per-photo figures of both runs and their ratios (goal: within 20 %).
#
#   bash scripts/bench-history.sh [N] [HISTORY]     (default 100 photos, 1000000 history)
#   PROFILE=debug bash scripts/bench-history.sh ...  (rows do not depend on the build; transactions
#     do a little: a slower import takes more of the pools' timed polls and heartbeats)
#
# The photos are the repository's JPEG fixtures, repeated with a distinct trailer after the
# JPEG end marker (so none is a duplicate). Everything runs on a database of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
HISTORY=${2:-1000000}
PROFILE=${PROFILE:-release}
bash scripts/setup.sh
base=$(TIMELINE_DB_NAME=postgres scripts/ensure-postgres.sh)
db_name=timeline_history_bench
db="${base%/*}/$db_name"
psql "$base" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" -c "CREATE DATABASE $db_name"
export DATABASE_URL=$db SQLX_OFFLINE=true RUST_LOG=${RUST_LOG:-warn}

if [ "$PROFILE" = release ]; then
  cargo build --release --locked -q -p timeline -p timeline-workers --bins
else
  cargo build --locked -q -p timeline -p timeline-workers --bins
fi
bin=${CARGO_TARGET_DIR:-target}/$PROFILE
work=target/bench-history
rm -rf "$work" && mkdir -p "$work/empty" "$work/loaded" "$work/again" "$work/store"
mapfile -t src < <(ls tests/fixtures/*.jpg | sort)
for run in empty loaded again; do
  for i in $(seq 0 $((N - 1))); do
    f="$work/$run/$(printf 'img_%04d.jpg' "$i")"
    cp "${src[$((i % ${#src[@]}))]}" "$f"
    printf 'history-bench-%s-%d' "$run" "$i" >> "$f"
  done
done

$bin/timeline migrate
export TIMELINE_STORAGE="$PWD/$work/store"
$bin/timeline-worker > "$work/worker.log" 2>&1 & worker=$!
trap 'kill $worker 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 300); do grep -q "worker pools starting" "$work/worker.log" && break; sleep 0.1; done

# The database's counters. A backend reports what it did when it goes idle, at most once a
# second, and an idle one within 10 s: wait that long so that every process's share is in.
counters() {
  sleep 11
  psql "$db" -qAtF' ' -c "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched,
      tup_inserted + tup_updated + tup_deleted, blks_hit, blks_read,
      (SELECT sum(coalesce(seq_tup_read, 0)) FROM pg_stat_all_tables
       WHERE schemaname IN ('public', 'apalis')),
      (SELECT sum(coalesce(idx_tup_fetch, 0)) FROM pg_stat_all_tables
       WHERE schemaname IN ('public', 'apalis'))
    FROM pg_stat_database WHERE datname = current_database()"
}

# One import of the photos in folder $1 by a new user, after an idle window of the same
# database (the worker's polling, the counters' own queries: subtracted by time); prints the
# counters around both and their times.
measure() {
  local email="history-$1-$(date +%s%N)@example.org"
  $bin/timeline users create --email "$email" >/dev/null
  local idle0 i0 before t0 t1 after t2
  idle0=$(counters)
  i0=$(date +%s.%N)
  before=$(counters)
  t0=$(date +%s.%N)
  $bin/timeline ingest "$work/$1" --email "$email" >/dev/null
  t1=$(date +%s.%N)
  after=$(counters)
  t2=$(date +%s.%N)
  echo "$idle0 $before $after $i0 $t0 $t1 $t2"
}

echo "== import of $N photos, empty database" >&2
empty=$(measure empty)

echo "== loading $HISTORY photos of history" >&2
h0=$(date +%s)
psql "$db" -q -v ON_ERROR_STOP=1 -v n="$HISTORY" <<'SQL'
BEGIN;
-- Bulk mode, as a restore would load it: no audit or FK triggers (the rows are consistent).
SET LOCAL session_replication_role = replica;
INSERT INTO users (id, email, password_hash, first_name, last_name)
VALUES ('00000000-0000-4000-8000-00000000b15e', 'history@example.org',
        '$argon2id$v=19$m=19456,t=2,p=1$aGlzdG9yeWhpc3Rvcnk$aGlzdG9yeWhpc3RvcnloaXN0b3J5aGlzdG9yeWhpcw',
        'History', 'Bench');
-- One upload job per 100 photos, completed and sealed.
INSERT INTO data_processing_jobs (id, user_id, job_type, status, sealed, progress, total_count,
                                  completed_count, created_at, started_at, completed_at, updated_at)
SELECT md5('job' || j)::uuid, '00000000-0000-4000-8000-00000000b15e', 'media_ingest', 'completed', true,
       100, 100, 100, t, t, t, t
FROM (SELECT j, now() - make_interval(mins => (:n - j * 100) * 5) AS t
      FROM generate_series(0, (:n - 1) / 100) j) s;
INSERT INTO media_files (id, user_id, filename, file_path, thumbnail_path, preview_path, file_size,
                         mime_type, file_hash, processing_status, width, height, taken_at,
                         created_at, updated_at)
SELECT m, '00000000-0000-4000-8000-00000000b15e', 'IMG_' || i || '.jpg',
       'media/00000000-0000-4000-8000-00000000b15e/' || m || '/original',
       'media/00000000-0000-4000-8000-00000000b15e/' || m || '/thumb',
       'media/00000000-0000-4000-8000-00000000b15e/' || m || '/preview',
       3000000, 'image/jpeg', encode(sha256(int8send(i)), 'hex'), 'completed', 4000, 3000,
       t, t, t
FROM (SELECT i, md5(i::text)::uuid AS m, now() - make_interval(mins => (:n - i) * 5) AS t
      FROM generate_series(1, :n) i) s;
INSERT INTO data_processing_job_media (job_id, media_file_id, user_id, position, counted_status)
SELECT md5('job' || ((i - 1) / 100))::uuid, md5(i::text)::uuid, '00000000-0000-4000-8000-00000000b15e', i % 100, 'completed'
FROM generate_series(1, :n) i;
INSERT INTO media_processing_steps (media_file_id, step, user_id, status, pipeline_version)
SELECT md5(i::text)::uuid, s, '00000000-0000-4000-8000-00000000b15e', 'succeeded', 1
FROM generate_series(1, :n) i, unnest(ARRAY['hash', 'exif', 'thumbnail']) s;
-- Their queue rows, finished within the last day (what retention keeps).
INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, done_at,
                         lock_at, priority)
SELECT convert_to(json_build_object('media_file_id', md5(i::text)::uuid,
                                    'job_id', md5('job' || ((i - 1) / 100))::uuid,
                                    'priority', 0)::text, 'UTF8'),
       md5(s || i)::uuid::text, s, 'Done', 1, 5, t, t, t, 0
FROM (SELECT i, now() - make_interval(secs => (:n - i) * 86400.0 / :n) AS t
      FROM generate_series(1, :n) i) g, unnest(ARRAY['hash', 'exif', 'thumbnail']) s;
COMMIT;
VACUUM ANALYZE;
SQL
h1=$(date +%s)
echo "   loaded in $((h1 - h0)) s" >&2

echo "== import of $N photos, loaded database" >&2
loaded=$(measure loaded)
echo "== and again (the run-to-run spread)" >&2
again=$(measure again)

python3 - "$N" "$HISTORY" "$empty" "$loaded" "$again" <<'PY'
import sys
n, history = int(sys.argv[1]), int(sys.argv[2])
# The database's counters include the system catalogs (each new connection reads them);
# the last two are our tables' alone.
names = ["transactions", "rows read by scans", "rows fetched by index", "rows written",
         "buffer hits", "buffer reads", "our tables: scan rows", "our tables: index rows"]
k = len(names)
def per_photo(line):
    v = [float(x) for x in line.split()]
    idle, before, after = v[0:k], v[k:2 * k], v[2 * k:3 * k]
    i0, t0, t1, t2 = v[3 * k:3 * k + 4]
    # The idle window ran from i0 to t0; the import's, from t0 to t2 (its import, then the
    # wait for the counters).
    scale = (t2 - t0) / (t0 - i0)
    return [(a - b - (b - i) * scale) / n for i, b, a in zip(idle, before, after)], t1 - t0
e, te = per_photo(sys.argv[3])
l, tl = per_photo(sys.argv[4])
g, tg = per_photo(sys.argv[5])
print(f"per photo, import of {n} photos; history: {history:,} photos")
print(f"{'':26}{'empty':>10}{'loaded':>10}{'again':>10}{'ratios':>14}")
worst = 0.0
for name, a, b, c in zip(names, e, l, g):
    r1, r2 = (b / a, c / a) if a else (float("nan"), float("nan"))
    if name != "buffer reads":
        worst = max(worst, abs(r1 - 1), abs(r2 - 1))
    print(f"{name:26}{a:10.1f}{b:10.1f}{c:10.1f}{r1:7.2f}{r2:7.2f}")
print(f"{'import time (s)':26}{te:10.1f}{tl:10.1f}{tg:10.1f}{tl / te:7.2f}{tg / te:7.2f}")
print(f"largest difference of a loaded run (buffer reads aside: the cache is cold after the "
      f"load): {worst:.0%} ({'within' if worst <= 0.2 else 'over'} the 20 % goal)")
PY
