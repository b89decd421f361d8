#!/usr/bin/env bash
# A PostgreSQL primary and a streaming replica of it (a hot standby), each a cluster of its
# own under DIR, for the read-replica test and for trying DATABASE_READ_URL by hand:
#   scripts/replica.sh start DIR PRIMARY_PORT REPLICA_PORT
#   scripts/replica.sh stop DIR          (both, and DIR removed)
#   scripts/replica.sh kill-replica DIR  (the standby only, at once, as a crash would)
# Debian's PostgreSQL binaries (the newest installed), trust authentication on 127.0.0.1 only.
# The primary is made by initdb, the replica by `pg_basebackup -R` (streaming replication,
# `primary_conninfo` written for it). `start` on a DIR that already holds both starts
# whichever is not running. `fsync=off`: these clusters are scratch, made to be thrown away;
# never run a real one so.
set -euo pipefail
usage="usage: replica.sh start DIR PRIMARY_PORT REPLICA_PORT | stop DIR | kill-replica DIR"
cmd=${1:?$usage}
dir=${2:?$usage}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] && [ -x "$bin/initdb" ] ||
  { echo "replica.sh: PostgreSQL's server binaries are not installed (scripts/setup.sh)" >&2; exit 1; }
# PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
running() { as_pg "$bin/pg_ctl" -D "$1" status >/dev/null 2>&1; }
start_cluster() { # data dir, port, log
  running "$1" && return 0
  as_pg "$bin/pg_ctl" -D "$1" -l "$3" -w -t 60 start \
    -o "-p $2 -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" >/dev/null
}

case $cmd in
start)
  primary_port=${3:?$usage}
  replica_port=${4:?$usage}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/primary/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/primary" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
      --no-sync >/dev/null
    # initdb's pg_hba.conf already lets 127.0.0.1 replicate (with -A trust).
    cat >> "$dir/primary/postgresql.conf" <<CONF
wal_level = replica
max_wal_senders = 4
hot_standby = on
timezone = 'UTC'
CONF
  fi
  start_cluster "$dir/primary" "$primary_port" "$dir/primary.log"
  if [ ! -f "$dir/replica/PG_VERSION" ]; then
    as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
      -D "$dir/replica" -R -X stream -c fast --no-sync
  fi
  start_cluster "$dir/replica" "$replica_port" "$dir/replica.log"
  ;;
stop)
  [ -d "$dir" ] || exit 0
  for cluster in replica primary; do
    if [ -f "$dir/$cluster/PG_VERSION" ] && running "$dir/$cluster"; then
      as_pg "$bin/pg_ctl" -D "$dir/$cluster" -m immediate -w stop >/dev/null || true
    fi
  done
  rm -rf "$dir"
  ;;
kill-replica)
  as_pg "$bin/pg_ctl" -D "$dir/replica" -m immediate -w stop >/dev/null
  ;;
*)
  echo "$usage" >&2
  exit 2
  ;;
esac
