#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL and Redis on free loopback ports.
#
#   scripts/with-services.sh COMMAND [ARG]...
#
# Exports, for the command:
#   STREAMHUB_TEST_PG_URI     postgresql://postgres@127.0.0.1:PORT/streamhub_test
#   STREAMHUB_TEST_REDIS_URI  redis://127.0.0.1:PORT
# Both servers live in one temporary directory (data, sockets, logs) that is
# removed, with the servers stopped, when this script exits, whatever the
# command's outcome.  The command's exit status is returned.
#
# PostgreSQL refuses to run as root, so as root it runs as the `postgres`
# user (Debian's package creates it) in a directory that user owns.
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG]..." >&2; exit 2; }

pgbin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$pgbin/initdb" ] || { echo "$0: PostgreSQL server binaries not found (scripts/setup.sh installs them)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "$0: redis-server not found" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/streamhub-services.XXXXXX")
chmod 755 "$tmp"
pg_pid_started=""
redis_pid=""

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$pg_pid_started" ]; then
    as_pg "$pgbin/pg_ctl" -D "$tmp/pg" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PostgreSQL: trust auth on loopback, its unix socket in the temp dir.
mkdir "$tmp/pg" "$tmp/run"
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "$0: no postgres user" >&2; exit 1; }
  chown postgres: "$tmp/pg" "$tmp/run"
fi
pg_port=$(free_port)
as_pg "$pgbin/initdb" -D "$tmp/pg" -U postgres -A trust -E UTF8 \
  --no-locale >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log" >&2; exit 1; }
pg_pid_started=yes
as_pg "$pgbin/pg_ctl" -D "$tmp/pg" -l "$tmp/run/postgres.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $pg_port -k $tmp/run -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
  start >/dev/null \
  || { cat "$tmp/run/postgres.log" >&2; exit 1; }
as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres streamhub_test

# Redis: no persistence, in the foreground of a background job.
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
  --appendonly no --daemonize no --dir "$tmp" \
  --logfile "$tmp/redis.log" &
redis_pid=$!
for _ in $(seq 1 100); do
  if redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; then
    break
  fi
  kill -0 "$redis_pid" 2>/dev/null || { cat "$tmp/redis.log" >&2; exit 1; }
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null

export STREAMHUB_TEST_PG_URI="postgresql://postgres@127.0.0.1:$pg_port/streamhub_test"
export STREAMHUB_TEST_REDIS_URI="redis://127.0.0.1:$redis_port"
echo "with-services: PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port" >&2

# Not exec: the trap must still stop the servers afterwards.
set +e
"$@"
rc=$?
set -e
exit "$rc"
