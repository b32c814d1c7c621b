#!/usr/bin/env bash
# bench/run_ws.sh: ws_fanout and ws_idle against streamhubd and its peers,
# in one run, on this machine.
#
#   bench/run_ws.sh [--quick] [--clients N] [--idle N] [--builddir DIR]
#
# Peers: npm's ws (bench/peers/ws_server.mjs) and nginx with Nchan
# (Debian's nginx-light and libnginx-mod-nchan; installed here if absent),
# with one and two workers.  Prints the load generator's JSON lines, then
# the ratios.  Not a test: figures go to docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
clients=10000
idle=19000
messages=100
broadcasts=20
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) clients=1000; idle=2000; messages=20; broadcasts=5 ;;
    --clients) clients=$2; shift ;;
    --idle) idle=$2; shift ;;
    --builddir) build=$2; shift ;;
    *) echo "usage: $0 [--quick] [--clients N] [--idle N] [--builddir DIR]" >&2; exit 2 ;;
  esac
  shift
done

ulimit -n "$(ulimit -Hn)"
load=$build/bench/ws_load
[ -x "$load" ] || { echo "build first: ninja -C $build" >&2; exit 1; }
if [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    nginx-light libnginx-mod-nchan >/dev/null
fi
(cd bench/peers && [ -d node_modules ] || npm install --no-audit --no-fund >/dev/null)

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

echo "{\"bench\":\"env\",\"metric\":\"cores\",\"value\":$(nproc),\"unit\":\"count\"}"
threads=2

run_target() { # name port pid ws_path pub_path protocol sub_msg [api key]
  local name=$1 port=$2 pid=$3 wsp=$4 pubp=$5 proto=$6 sub=$7 key=${8:-}
  local keyarg=()
  [ -n "$key" ] && keyarg=(--api-key "$key")
  "$load" --target "$name" --port "$port" --ws-path "$wsp" --pub-path "$pubp" \
    --protocol "$proto" --sub-msg "$sub" "${keyarg[@]}" --clients "$clients" \
    --threads "$threads" --messages "$messages" --broadcasts "$broadcasts" \
    --pid "$pid" || echo "{\"bench\":\"ws_fanout\",\"target\":\"$name\",\"metric\":\"failed\",\"value\":1,\"unit\":\"\"}"
  "$load" --target "$name" --mode idle --port "$port" --ws-path "$wsp" \
    --protocol "$proto" --sub-msg "$sub" --clients "$idle" --threads "$threads" \
    --pid "$pid" || echo "{\"bench\":\"ws_idle\",\"target\":\"$name\",\"metric\":\"failed\",\"value\":1,\"unit\":\"\"}"
}

# streamhubd
port=$(free_port)
"$build/server/streamhubd" --listen "127.0.0.1:$port" --store "sqlite:$tmp/sh.db" \
  --api-key bench-key-0123456789 --log-level warn --ws.send-buffer-bytes 16777216 \
  --http.rate-limit-per-ip 1000000 >"$tmp/sh.out" 2>"$tmp/sh.err" &
shpid=$!; pids+=("$shpid")
wait_port "$port"
run_target streamhub "$port" "$shpid" /ws /api/v1/publish streamhub.v1 \
  '{"id":1,"op":"subscribe","channel":"app:bench"}' bench-key-0123456789 | tee "$tmp/streamhub.jsonl"
kill "$shpid"; wait "$shpid" 2>/dev/null || true

# npm ws
port=$(free_port)
node bench/peers/ws_server.mjs "$port" >"$tmp/ws.out" 2>&1 &
wspid=$!; pids+=("$wspid")
wait_port "$port"
run_target ws "$port" "$wspid" / /publish "" "" | tee "$tmp/ws.jsonl"
kill "$wspid"; wait "$wspid" 2>/dev/null || true

# nginx + Nchan, one worker then two
for workers in 1 2; do
  port=$(free_port)
  mkdir -p "$tmp/nchan$workers"
  sed -e "s|@PORT@|$port|" -e "s|@DIR@|$tmp/nchan$workers|" -e "s|@WORKERS@|$workers|" \
    bench/peers/nchan.conf.in >"$tmp/nchan$workers/nginx.conf"
  nginx -c "$tmp/nchan$workers/nginx.conf" -p "$tmp/nchan$workers" &
  ngpid=$!; pids+=("$ngpid")
  wait_port "$port"
  # RSS of the workers (the master holds no connections): ws_load reads one
  # pid; with two workers the idle figure is per worker that took them.
  wpid=$(pgrep -P "$ngpid" | head -1)
  run_target "nchan-$workers" "$port" "${wpid:-$ngpid}" /sub /pub "" "" | tee "$tmp/nchan$workers.jsonl"
  kill "$ngpid"; wait "$ngpid" 2>/dev/null || true
done

python3 - "$tmp" <<'PY'
import json, sys, os
d = sys.argv[1]
def load(name):
    out = {}
    p = os.path.join(d, name + ".jsonl")
    if not os.path.exists(p): return out
    for line in open(p):
        try: o = json.loads(line)
        except ValueError: continue
        out[(o["bench"], o["metric"])] = o["value"]
    return out
sh = load("streamhub")
for peer in ("ws", "nchan1", "nchan2"):
    p = load(peer)
    def ratio(bench, metric, invert=False):
        a, b = sh.get((bench, metric)), p.get((bench, metric))
        if not a or not b: return None
        return round(b / a if invert else a / b, 2)
    for bench, metric, inv in (("ws_fanout", "deliveries_per_second", False),
                               ("ws_fanout", "broadcast_latency_p99", True),
                               ("ws_idle", "rss_per_connection", True)):
        r = ratio(bench, metric, inv)
        if r is not None:
            print(json.dumps({"bench": bench, "metric": f"{metric}_ratio_vs_{peer}",
                              "value": r, "unit": "x (higher is better for streamhub)"}))
PY
