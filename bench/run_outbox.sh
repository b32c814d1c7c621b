#!/usr/bin/env bash
# bench/run_outbox.sh: outbox_throughput against a throwaway RabbitMQ.
#
#   bench/run_outbox.sh [--builddir DIR] [outbox_throughput flags...]
#
# Starts Debian's rabbitmq-server (the script under /usr/lib/rabbitmq/bin)
# on a free loopback port with its own epmd port, node name and data
# directory (HOME too: the Erlang cookie), waits until the AMQP port
# accepts connections, runs bench/outbox_throughput against it (events
# from the store through the outbox to a consumer, beside the floor of
# publishing the same messages straight to the broker with confirms) and
# prints its JSON lines.  The broker (its process group) and its epmd are
# stopped by PID.  Not a test: figures go to docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --builddir) build=$2; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
bin=$build/bench/outbox_throughput
[ -x "$bin" ] || { echo "build first: ninja -C $build" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
while [ $((port + 20000)) -gt 65535 ]; do port=$(free_port); done
epmd_port=$(free_port)
tmp=$(mktemp -d)
rmq_pid=
cleanup() {
  if [ -n "$rmq_pid" ]; then kill -9 -- "-$rmq_pid" 2>/dev/null || true; fi
  for p in $(pgrep -x epmd || true); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null |
        grep -qx "ERL_EPMD_PORT=$epmd_port"; then
      kill -9 "$p" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
echo '[].' >"$tmp/enabled_plugins"
: >"$tmp/rabbitmq.conf"
HOME=$tmp RABBITMQ_NODE_PORT=$port RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_NODENAME="shbench$$@localhost" ERL_EPMD_PORT=$epmd_port \
  RABBITMQ_MNESIA_BASE=$tmp/mnesia RABBITMQ_LOG_BASE=$tmp/log \
  RABBITMQ_ENABLED_PLUGINS_FILE=$tmp/enabled_plugins \
  RABBITMQ_CONFIG_FILE=$tmp/rabbitmq RABBITMQ_PID_FILE=$tmp/pid \
  setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$tmp/rabbit.log" 2>&1 &
rmq_pid=$!
for _ in $(seq 600); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null ||
  { tail -20 "$tmp/rabbit.log" >&2; echo "rabbitmq-server did not start" >&2; exit 1; }
"$bin" --amqp "amqp://guest:guest@127.0.0.1:$port/%2f" "${args[@]}"
