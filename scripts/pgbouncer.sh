#!/usr/bin/env bash
# Runs PgBouncer (Debian's 1.18) in the foreground in transaction mode, configured as the
# platform needs it behind a transaction pooler (docs/SCALING.md):
#   scripts/pgbouncer.sh DIR PORT [POOL_SIZE] [UPSTREAM_HOST] [UPSTREAM_PORT]
# DIR receives the configuration, the auth file and the log. Every database of the upstream
# server is reachable under its own name (`* =`), each with at most POOL_SIZE server
# connections (default 20). Environment: PGBOUNCER_LISTEN (default 127.0.0.1; `*` for every
# address) and PGBOUNCER_POOL_MODE (default transaction; scripts/cluster.sh also runs one in
# session mode, for the sessions of hosts in their own network namespaces).
#
# `server_reset_query_always = 1` with RESET below is required: sqlx names the statements it
# prepares, and without a statement cache it never closes them; `DEALLOCATE ALL` drops them when
# a transaction hands its server connection back, so two clients' names never collide there.
# The rest ends any session state a transaction could leave behind (advisory locks, settings,
# cursors, LISTENs, temporary tables): RESET is `DISCARD ALL` spelled out, less `DISCARD PLANS`,
# so the plans each server connection caches for the PL/pgSQL functions of a job poll survive
# (migrations/20261207000027_poll_plans_kept.sql; `DISCARD ALL` works too, at the cost of
# planning every poll again, docs/SCALING.md). The statements run as one implicit transaction
# block (`DISCARD ALL` may run in none, these may); should one fail, PgBouncer closes that
# server connection rather than reuse it.
# PGBOUNCER_RESET_QUERY replaces it, for experiments only (docs/SCALING.md measures one).
# `timezone=UTC` on the databases: sqlx opens every connection with `TimeZone=UTC`; server
# connections opened the same way keep it across the reset, where otherwise PgBouncer sends a
# `SET TimeZone` before every transaction (one more server transaction each, measured).
set -euo pipefail
RESET='CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES'
dir=${1:?usage: pgbouncer.sh DIR PORT [POOL_SIZE] [UPSTREAM_HOST] [UPSTREAM_PORT]}
port=${2:?port}
pool_size=${3:-20}
upstream_host=${4:-127.0.0.1}
upstream_port=${5:-5432}
bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$bin" ] || { echo "pgbouncer.sh: pgbouncer is not installed (scripts/setup.sh --tests)" >&2; exit 1; }
mkdir -p "$dir"
# One descriptor per client and per server connection.
ulimit -n 20000 2>/dev/null || true
dir=$(cd "$dir" && pwd)
echo '"postgres" ""' > "$dir/users.txt"
# Keepalives as PostgreSQL's own (migrations/20261207000029_vanished_clients.sql): a client
# host that vanished (no FIN, no RST) is noticed in about 2 minutes, not hours.
cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=$upstream_host port=$upstream_port timezone=UTC

[pgbouncer]
listen_addr = ${PGBOUNCER_LISTEN:-127.0.0.1}
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = ${PGBOUNCER_POOL_MODE:-transaction}
default_pool_size = $pool_size
max_client_conn = 5000
server_reset_query = ${PGBOUNCER_RESET_QUERY:-$RESET}
server_reset_query_always = 1
ignore_startup_parameters = extra_float_digits
tcp_keepalive = 1
tcp_keepidle = 60
tcp_keepintvl = 10
tcp_keepcnt = 6
tcp_user_timeout = 120000
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = postgres
stats_users = postgres
INI
# pgbouncer refuses to run as root: it switches to Debian's `postgres` user itself (`-u`), so
# this process stays pgbouncer's own and a kill reaches it.
if [ "$(id -u)" = 0 ]; then
  chown -R postgres "$dir"
  runuser -u postgres -- test -w "$dir" ||
    { echo "pgbouncer.sh: user postgres cannot write $dir (is a parent folder private?)" >&2; exit 1; }
  exec "$bin" -u postgres "$dir/pgbouncer.ini"
fi
exec "$bin" "$dir/pgbouncer.ini"
