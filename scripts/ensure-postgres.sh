#!/usr/bin/env bash
# Makes sure a PostgreSQL answers and prints the DATABASE_URL to use (on stdout, nothing else).
#
#   export DATABASE_URL=$(scripts/ensure-postgres.sh)
#
# 1. DATABASE_URL already set: use it as it is.
# 2. Something answers on 127.0.0.1:5432: use it (trust auth, user postgres).
# 3. Otherwise run a cluster of our own under target/pg: install Debian's postgresql if no
#    server binaries exist, initdb once, start it on a free port. Idempotent: a second call
#    finds the running cluster and prints its URL.
set -euo pipefail
DB_NAME=${TIMELINE_DB_NAME:-timeline}
root=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "ensure-postgres: $*" >&2; }

# Prints the URL of DB_NAME on 127.0.0.1:$1, creating the database first if it is missing (so
# tools that connect to it directly, like `#[sqlx::test]`'s setup, find it on a fresh server).
emit() {
  local port=$1 psql_bin
  psql_bin=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$psql_bin" ] && [ "$DB_NAME" != postgres ]; then
    local admin="postgres://postgres@127.0.0.1:$port/postgres"
    if ! "$psql_bin" "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
      log "creating database $DB_NAME"
      "$psql_bin" "$admin" -qc "CREATE DATABASE \"$DB_NAME\"" >&2 || true
    fi
  fi
  echo "postgres://postgres@127.0.0.1:$port/$DB_NAME"
  exit 0
}

if [ -n "${DATABASE_URL:-}" ]; then
  echo "$DATABASE_URL"; exit 0
fi

answers() { # host port
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$1" -p "$2" -t 2
  else
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
  fi
}

if answers 127.0.0.1 5432; then
  emit 5432
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  log "no PostgreSQL server found; installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq postgresql postgresql-contrib >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

pgroot="$root/target/pg"
data="$pgroot/data"
mkdir -p "$pgroot"
# initdb and postgres refuse to run as root: run them as the postgres system user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$pgroot" postgres
  chown postgres "$pgroot"
  chmod o+x "$root" "$root/target" 2>/dev/null || true
fi

if [ -f "$pgroot/port" ] && answers 127.0.0.1 "$(cat "$pgroot/port")"; then
  emit "$(cat "$pgroot/port")"
fi

if [ ! -f "$data/PG_VERSION" ]; then
  log "initdb in $data"
  as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >&2
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
echo "$port" > "$pgroot/port"
log "starting PostgreSQL on 127.0.0.1:$port"
as_pg "$bindir/pg_ctl" -D "$data" -l "$pgroot/server.log" -w -t 60 \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $pgroot -c max_connections=200 -c fsync=off" start >&2
emit "$port"
