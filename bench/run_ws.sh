#!/usr/bin/env bash
# bench/run_ws.sh: ws_fanout, ws_rates and ws_idle against streamhubd and
# its peers, in one run, on this machine.
#
#   bench/run_ws.sh [--quick] [--runs R] [--clients N] [--idle N]
#                   [--messages M] [--rates R1,R2,...] [--rate-ms MS]
#                   [--builddir DIR]
#
# Targets, each R times in turn (so that a change in the machine's load
# falls on all of them alike): streamhubd with one loop and with N loops
# (N = the cores; `loops` key), npm's ws (bench/peers/ws_server.mjs), and
# nginx with Nchan (Debian's nginx-light and libnginx-mod-nchan; installed
# here if absent) with one and N workers.  One-loop and one-worker servers,
# and ws (one thread), are pinned to core 0 and the load generator to the
# others; N-loop and N-worker servers are not pinned.  A server whose
# `loops` key is unknown runs its one loop only, and says so.
#
# Prints the load generator's JSON lines (with "run"), then medians over
# the runs and each ratio to a peer taken within a run, median over runs.
# Server CPU seconds per delivery compare runs on a busy machine.  Not a
# test: figures go to docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
clients=10000
idle=19000
messages=100
broadcasts=20
runs=3
rates=1,2,5,10,20,50
rate_ms=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) clients=1000; idle=2000; messages=20; broadcasts=5; runs=1; rates=10,50 ;;
    --runs) runs=$2; shift ;;
    --clients) clients=$2; shift ;;
    --idle) idle=$2; shift ;;
    --rates) rates=$2; shift ;;
    --rate-ms) rate_ms=$2; shift ;;
    --messages) messages=$2; shift ;;
    --builddir) build=$2; shift ;;
    *) echo "usage: $0 [--quick] [--runs R] [--clients N] [--idle N] [--messages M] [--rates R1,...] [--rate-ms MS] [--builddir DIR]" >&2; exit 2 ;;
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

cores=$(nproc)
echo "{\"bench\":\"env\",\"metric\":\"cores\",\"value\":$cores,\"unit\":\"count\"}"
echo "{\"bench\":\"env\",\"metric\":\"load_average_1m\",\"value\":$(cut -d' ' -f1 /proc/loadavg),\"unit\":\"\"}"
threads=2
# Pinned: the server on core 0, the load generator on the others.
srv_pin=(); load_pin=()
if [ "$cores" -ge 2 ]; then
  srv_pin=(taskset -c 0); load_pin=(taskset -c "1-$((cores - 1))")
fi

# mode: fanout (ws_fanout, ws_rates) or idle (ws_idle, on a fresh server:
# one that has just fanned out holds freed memory its new connections reuse).
mode=fanout
run_target() { # run name pinned port pids ws_path pub_path protocol sub_msg [api key]
  local run=$1 name=$2 pinned=$3 port=$4 spids=$5 wsp=$6 pubp=$7 proto=$8 sub=$9
  local key=${10:-} keyarg=() pin=()
  [ -n "$key" ] && keyarg=(--api-key "$key")
  [ "$pinned" = 1 ] && pin=("${load_pin[@]}")
  if [ "$mode" = fanout ]; then
    "${pin[@]}" "$load" --target "$name" --port "$port" --ws-path "$wsp" \
      --pub-path "$pubp" --protocol "$proto" --sub-msg "$sub" "${keyarg[@]}" \
      --clients "$clients" --threads "$threads" --messages "$messages" \
      --broadcasts "$broadcasts" --rates "$rates" --rate-ms "$rate_ms" \
      --pids "$spids" \
      --pid "${spids%%,*}" \
      || echo "{\"bench\":\"ws_fanout\",\"target\":\"$name\",\"metric\":\"failed\",\"value\":1,\"unit\":\"\"}"
  fi
  if [ "$mode" = idle ]; then
    "${pin[@]}" "$load" --target "$name" --mode idle --port "$port" --ws-path "$wsp" \
      --protocol "$proto" --sub-msg "$sub" --clients "$idle" --threads "$threads" \
      --pids "$spids" \
      || echo "{\"bench\":\"ws_idle\",\"target\":\"$name\",\"metric\":\"failed\",\"value\":1,\"unit\":\"\"}"
  fi
}

# Add "run" to each JSON line, keep a copy for the summary.
tag() { python3 -u -c '
import json, sys
for line in sys.stdin:
    try: o = json.loads(line)
    except ValueError: print(line, end=""); continue
    o["run"] = int(sys.argv[1]); print(json.dumps(o))' "$1" | tee -a "$tmp/all.jsonl"; }

streamhub() { # run loops
  local run=$1 loops=$2 name=streamhub-$2 pinned=0 pin=() args=()
  [ "$loops" = 1 ] && { pinned=1; pin=("${srv_pin[@]}"); name=streamhub-1; }
  [ "$loops" != 1 ] && name=streamhub-N
  args=(--loops "$loops")
  if [ -z "${loops_ok:-}" ]; then
    if "$build/server/streamhubd" --help 2>&1 | grep -- '^  --loops ' >/dev/null; then
      loops_ok=yes
    else
      loops_ok=no
    fi
  fi
  if [ "$loops_ok" = no ]; then
    [ "$loops" != 1 ] && { echo "{\"bench\":\"ws_fanout\",\"target\":\"$name\",\"metric\":\"loops_unsupported\",\"value\":1,\"unit\":\"\"}"; return; }
    args=()
  fi
  local port; port=$(free_port)
  "${pin[@]}" "$build/server/streamhubd" --listen "127.0.0.1:$port" \
    --store "sqlite:$tmp/sh$run-$loops.db" "${args[@]}" \
    --api-key bench-key-0123456789 --log-level warn \
    --ws.send-buffer-bytes 16777216 --http.rate-limit-per-ip 1000000 \
    >"$tmp/sh.out" 2>"$tmp/sh.err" &
  local shpid=$!; pids+=("$shpid")
  wait_port "$port"
  run_target "$run" "$name" "$pinned" "$port" "$shpid" /ws /api/v1/publish streamhub.v1 \
    '{"id":1,"op":"subscribe","channel":"app:bench"}' bench-key-0123456789 | tag "$run"
  kill "$shpid"; wait "$shpid" 2>/dev/null || true
}

npm_ws() { # run
  local run=$1 port; port=$(free_port)
  "${srv_pin[@]}" node bench/peers/ws_server.mjs "$port" >"$tmp/ws.out" 2>&1 &
  local wspid=$!; pids+=("$wspid")
  wait_port "$port"
  run_target "$run" ws 1 "$port" "$wspid" / /publish "" "" | tag "$run"
  kill "$wspid"; wait "$wspid" 2>/dev/null || true
}

nchan() { # run workers
  local run=$1 workers=$2 port pin=() pinned=0 name=nchan-N
  [ "$workers" = 1 ] && { pin=("${srv_pin[@]}"); pinned=1; name=nchan-1; }
  port=$(free_port)
  mkdir -p "$tmp/nchan$run-$workers"
  sed -e "s|@PORT@|$port|" -e "s|@DIR@|$tmp/nchan$run-$workers|" -e "s|@WORKERS@|$workers|" \
    bench/peers/nchan.conf.in >"$tmp/nchan$run-$workers/nginx.conf"
  "${pin[@]}" nginx -c "$tmp/nchan$run-$workers/nginx.conf" -p "$tmp/nchan$run-$workers" &
  local ngpid=$!; pids+=("$ngpid")
  wait_port "$port"
  # The workers hold the connections: their CPU and RSS are the server's
  # (summed over the workers).
  local wpids; wpids=$(pgrep -P "$ngpid" | paste -sd, -)
  run_target "$run" "$name" "$pinned" "$port" "${wpids:-$ngpid}" /sub /pub "" "" | tag "$run"
  kill "$ngpid"; wait "$ngpid" 2>/dev/null || true
}

for run in $(seq "$runs"); do
  streamhub "$run" 1
  streamhub "$run" "$cores"
  npm_ws "$run"
  nchan "$run" 1
  nchan "$run" "$cores"
done
mode=idle
streamhub 1 1
streamhub 1 "$cores"
npm_ws 1
nchan 1 1
nchan 1 "$cores"
echo "{\"bench\":\"env\",\"metric\":\"load_average_1m_end\",\"value\":$(cut -d' ' -f1 /proc/loadavg),\"unit\":\"\"}"

python3 - "$tmp/all.jsonl" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
val = {}                       # (run, target, bench, metric) -> value
for o in rows:
    if "target" in o and "run" in o:
        val[(o["run"], o["target"], o["bench"], o["metric"])] = o["value"]
runs = sorted({k[0] for k in val})
targets = sorted({k[1] for k in val})
metrics = [("ws_fanout", "deliveries_per_second", False),
           ("ws_fanout", "broadcast_latency_p50", True),
           ("ws_fanout", "broadcast_latency_p99", True),
           ("ws_fanout", "server_cpu_per_delivery", True),
           ("ws_fanout", "server_cpu_per_delivery_spaced", True),
           ("ws_idle", "rss_per_connection", True)]
for t in targets:
    for b, m, _ in metrics:
        v = [val[(r, t, b, m)] for r in runs if (r, t, b, m) in val]
        if v:
            print(json.dumps({"bench": b, "target": t, "metric": m + "_median",
                              "value": statistics.median(v), "runs": len(v)}))
for sh in ("streamhub-1", "streamhub-N"):
    for peer in ("ws", "nchan-1", "nchan-N", "streamhub-1"):
        if peer == sh:
            continue
        for b, m, lower in metrics:
            rs = []
            for r in runs:
                a, p = val.get((r, sh, b, m)), val.get((r, peer, b, m))
                if a and p:
                    rs.append(p / a if lower else a / p)
            if rs:
                print(json.dumps({"bench": b, "metric": f"{m}_ratio_{sh}_vs_{peer}",
                                  "value": round(statistics.median(rs), 2), "runs": len(rs),
                                  "unit": "x, median of per-run ratios (higher is better for streamhub)"}))
PY
