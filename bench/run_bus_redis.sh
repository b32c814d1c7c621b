#!/usr/bin/env bash
# bench/run_bus_redis.sh: what the Redis bus costs per event, and one
# node's fan-out with bus = redis beside bus = local, in one run.
#
#   bench/run_bus_redis.sh [--clients N] [--messages N] [--builddir DIR]
#
# Starts a throwaway redis-server (no persistence) on a free port, then
# streamhubd twice (local, then redis) under bench/ws_load's fanout mode,
# and prints its JSON lines, followed by:
#   redis_cost round_trips_per_publish  EVALSHA calls per publish
#   redis_cost commands_per_publish     commands Redis ran per publish
#                                       (INFO commandstats over 200
#                                       publishes, the script's own calls)
#   redis_cost bytes_per_event          MEMORY USAGE of the channel's key
#                                       holding those events, per event
#   ratio deliveries_per_second ...     redis / local
# Not a test: figures go to docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
clients=2000
messages=200
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients=$2; shift ;;
    --messages) messages=$2; shift ;;
    --builddir) build=$2; shift ;;
    *) echo "usage: $0 [--clients N] [--messages N] [--builddir DIR]" >&2; exit 2 ;;
  esac
  shift
done

ulimit -n "$(ulimit -Hn)"
load=$build/bench/ws_load
[ -x "$load" ] || { echo "build first: ninja -C $build" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=("$!")
wait_port "$rport"
rcli() { redis-cli -p "$rport" "$@"; }

run_node() { # name bus
  local name=$1 bus=$2 port pid
  port=$(free_port)
  "$build/server/streamhubd" --listen "127.0.0.1:$port" --store "sqlite:$tmp/$name.db" \
    --bus "$bus" --api-key bench-key-0123456789 --log-level warn \
    --ws.send-buffer-bytes 16777216 --http.rate-limit-per-ip 1000000 \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!; pids+=("$pid")
  wait_port "$port"
  # --target streamhub: its publish body; the file names the bus.
  "$load" --target streamhub --port "$port" --api-key bench-key-0123456789 \
    --clients "$clients" --threads 2 --messages "$messages" --broadcasts 20 \
    --pid "$pid" | sed "s/\"target\":\"streamhub\"/\"target\":\"streamhub-$name\"/" | tee "$tmp/$name.jsonl"
  if [ "$name" = redis ]; then
    # The cost of a publish alone: 200 of them, counted from zero.
    rcli CONFIG RESETSTAT >/dev/null
    python3 - "$port" <<'PY'
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for i in range(200):
    body = json.dumps({"channel": "app:cost", "data": {"seq": i, "pad": "x" * 64}})
    c.request("POST", "/api/v1/publish", body,
              {"Content-Type": "application/json",
               "Authorization": "Apikey bench-key-0123456789"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
    rcli INFO commandstats >"$tmp/commandstats"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_node local local
rcli CONFIG RESETSTAT >/dev/null
run_node redis "redis://127.0.0.1:$rport"

# Commands per publish: every command Redis ran over the script calls.
python3 - "$tmp" "$rport" <<'PY'
import json, os, subprocess, sys
d, port = sys.argv[1], sys.argv[2]
def cli(*a):
    return subprocess.run(["redis-cli", "-p", port, *a], capture_output=True,
                          text=True, check=True).stdout
stats = {}
for line in open(os.path.join(d, "commandstats")):
    if line.startswith("cmdstat_"):
        name, rest = line.strip()[8:].split(":", 1)
        kv = dict(x.split("=") for x in rest.split(","))
        stats[name] = int(kv["calls"])
pubs = 200
evals = stats.get("evalsha", 0) + stats.get("eval", 0)
inner = sum(v for k, v in stats.items()
            if k not in ("evalsha", "eval", "ping", "config"))
def emit(metric, value, unit):
    print(json.dumps({"bench": "redis_cost", "target": "redis",
                      "metric": metric, "value": value, "unit": unit}))
# The health PINGs and the claim tick run meanwhile: left out.
emit("round_trips_per_publish", round(evals / pubs, 2), "calls")
emit("commands_per_publish", round(inner / pubs, 2), "calls")
emit("commands_by_name", {k: v for k, v in stats.items()}, "calls")
key = "sh:app:cost"
n = int(cli("HGET", key, "n").strip() or 0)
mem = cli("MEMORY", "USAGE", key, "SAMPLES", "0").strip()
if n > 0 and mem:
    emit("history_events", n, "count")
    emit("bytes_per_event", round(int(mem) / n, 1), "bytes")
    emit("event_data_bytes", len(json.dumps({"seq": 100, "pad": "x" * 64},
                                            separators=(",", ":"))), "bytes")
def load(name):
    out = {}
    for line in open(os.path.join(d, name + ".jsonl")):
        try: o = json.loads(line)
        except ValueError: continue
        out[o["metric"]] = o["value"]
    return out
lo, re_ = load("local"), load("redis")
for m in ("deliveries_per_second", "broadcast_latency_p50",
          "broadcast_latency_p99"):
    if lo.get(m) and re_.get(m):
        print(json.dumps({"bench": "ratio", "target": "redis/local",
                          "metric": m, "value": round(re_[m] / lo[m], 2),
                          "unit": "x"}))
PY
