#!/usr/bin/env bash
# bench/run_cluster.sh: fan-out across three streamhubd nodes on one Redis,
# beside one node, in one run, on this machine.
#
#   bench/run_cluster.sh [--quick] [--clients N] [--builddir DIR]
#
# N subscribers (50,000 by default; --quick: 3,000) of one channel
# (app:bench), spread evenly over three nodes that share one Redis bus
# and one store, every broadcast published through one node by REST and
# delivered to all N.  Beside it, in the same run, one node with the
# share of one cluster node (N/3 subscribers), on the local bus and on the
# same Redis bus, so that the figures compare what one node does alone,
# what the Redis path costs it, and what three nodes do together.
#
# One process holds at most the open-files limit of sockets (20,000 here),
# so the subscribers come from several ws_load processes (sub mode, at
# most 16,000 each) and the broadcasts from one more (pub mode): B spaced
# broadcasts (1 s apart) for publish-to-receive latency (p50, p99 over every delivery,
# CLOCK_MONOTONIC being one clock for all the processes), then M back to
# back for deliveries per second (first publish to last delivery).  Each
# node's RSS before and after its subscribers connected, divided by them:
# user-space memory per connection (kernel socket buffers are not in RSS).
#
# Prints one JSON object per line, {"bench","target","metric","value",
# "unit"}.  Not a test: figures go to docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
clients=50000
broadcasts=20
messages=50
interval=1000     # ms between latency broadcasts: one fan-out to 50,000
                  # takes most of a second here, and they must not overlap
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) clients=3000; broadcasts=5; messages=10; interval=250 ;;
    --clients) clients=$2; shift ;;
    --builddir) build=$2; shift ;;
    *) echo "usage: $0 [--quick] [--clients N] [--builddir DIR]" >&2; exit 2 ;;
  esac
  shift
done

ulimit -n "$(ulimit -Hn)"
load=$build/bench/ws_load
shd=$build/server/streamhubd
[ -x "$load" ] && [ -x "$shd" ] || { echo "build first: ninja -C $build" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server not found" >&2; exit 1; }
KEY=bench-key-0123456789
PER_PROC=16000

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
emit() { # target metric value unit
  printf '{"bench":"ws_cluster","target":"%s","metric":"%s","value":%s,"unit":"%s"}\n' "$@"
}

echo "{\"bench\":\"env\",\"metric\":\"cores\",\"value\":$(nproc),\"unit\":\"count\"}"

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
wait_port "$rport"

# run_phase NAME BUS NODES SUBSCRIBERS
run_phase() {
  local name=$1 bus=$2 nnodes=$3 n=$4
  local dir=$tmp/$name ports=() npids=() i
  mkdir -p "$dir"
  for ((i = 0; i < nnodes; i++)); do
    local port
    port=$(free_port)
    "$shd" --listen "127.0.0.1:$port" --store "sqlite:$dir/sh.db" --bus "$bus" \
      --api-key "$KEY" --log-level warn --ws.send-buffer-bytes 16777216 \
      --http.rate-limit-per-ip 1000000 >"$dir/node$i.out" 2>"$dir/node$i.err" &
    npids+=($!); pids+=($!)
    wait_port "$port" || { echo "node $i of $name did not start: $(cat "$dir/node$i.err")" >&2; return 1; }
    ports+=("$port")
  done
  local portlist
  portlist=$(IFS=,; echo "${ports[*]}")
  declare -A rss0
  for p in "${npids[@]}"; do rss0[$p]=$(rss_kib "$p"); done

  # Subscribers: ceil(n / PER_PROC) processes, each spread over every node.
  local nprocs=$(( (n + PER_PROC - 1) / PER_PROC )) spids=() k
  for ((k = 0; k < nprocs; k++)); do
    local share=$(( n / nprocs + (k < n % nprocs ? 1 : 0) ))
    "$load" --mode sub --target "$name" --ports "$portlist" --clients "$share" \
      --threads 1 --broadcasts "$broadcasts" --messages "$messages" \
      --out "$dir/lat$k.bin" >"$dir/sub$k.jsonl" 2>"$dir/sub$k.err" &
    spids+=($!); pids+=($!)
  done
  # Every subscriber ready (or a process gone: it says why).
  for ((k = 0; k < nprocs; k++)); do
    until grep -q '"ready"' "$dir/sub$k.jsonl" 2>/dev/null; do
      if ! kill -0 "${spids[$k]}" 2>/dev/null; then
        echo "$name: subscriber process $k failed: $(cat "$dir/sub$k.err")" >&2
        return 1
      fi
      sleep 0.2
    done
  done
  sleep 1
  local total=0
  for p in "${npids[@]}"; do
    local r1 d
    r1=$(rss_kib "$p")
    d=$(( (r1 - ${rss0[$p]}) * 1024 ))
    total=$((total + d))
  done
  emit "$name" nodes "$nnodes" count
  emit "$name" subscribers "$n" count
  emit "$name" rss_per_connection "$((total / n))" bytes

  "$load" --mode pub --target "$name" --port "${ports[0]}" --api-key "$KEY" \
    --broadcasts "$broadcasts" --messages "$messages" --interval-ms "$interval" \
    >"$dir/pub.jsonl" 2>"$dir/pub.err" \
    || { echo "$name: publisher failed: $(cat "$dir/pub.err")" >&2; return 1; }
  local failed=0
  for ((k = 0; k < nprocs; k++)); do
    wait "${spids[$k]}" || failed=1
  done
  python3 - "$dir" "$name" "$nprocs" <<'PY'
import array, json, os, sys
d, name, nprocs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def lines(p):
    out = {}
    for l in open(p):
        try: o = json.loads(l)
        except ValueError: continue
        out[o["metric"]] = o["value"]
    return out
pub = lines(os.path.join(d, "pub.jsonl"))
lat = array.array("I")
got = want = lgot = lwant = 0
last = 0
for k in range(nprocs):
    s = lines(os.path.join(d, f"sub{k}.jsonl"))
    got += s.get("deliveries", 0); want += s.get("deliveries_expected", 0)
    lgot += s.get("latency_deliveries", 0); lwant += s.get("latency_deliveries_expected", 0)
    last = max(last, s.get("last_rx_ns", 0))
    p = os.path.join(d, f"lat{k}.bin")
    if os.path.exists(p):
        with open(p, "rb") as f: lat.frombytes(f.read())
def emit(metric, value, unit):
    print(json.dumps({"bench": "ws_cluster", "target": name, "metric": metric,
                      "value": value, "unit": unit}, separators=(",", ":")))
emit("deliveries", got, "count")
emit("deliveries_expected", want, "count")
emit("latency_deliveries", lgot, "count")
emit("latency_deliveries_expected", lwant, "count")
t0 = pub.get("burst_start_ns", 0)
if last > t0 > 0:
    emit("deliveries_per_second", round(got / ((last - t0) / 1e9)), "1/s")
if lat:
    v = sorted(lat)
    emit("publish_to_receive_p50", round(v[len(v) // 2] / 1000, 3), "ms")
    emit("publish_to_receive_p99", round(v[(len(v) * 99) // 100] / 1000, 3), "ms")
    emit("publish_to_receive_max", round(v[-1] / 1000, 3), "ms")
emit("burst_publish_seconds", pub.get("burst_publish_seconds"), "s")
PY
  [ "$failed" = 0 ] || emit "$name" incomplete 1 flag
  for p in "${npids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
}

share=$(( clients / 3 ))
run_phase one-node-local local 1 "$share"
run_phase one-node-redis "redis://127.0.0.1:$rport" 1 "$share"
run_phase three-nodes-redis "redis://127.0.0.1:$rport" 3 "$clients"
