#!/usr/bin/env bash
# bench/run_graphql.sh: graphql_http against streamhubd and its graphql-js
# peer, in one run, on this machine.
#
#   bench/run_graphql.sh [--quick] [--duration SECONDS] [--builddir DIR]
#                        [--seed-dir DIR] [--peer-workers N]
#
# The query, POSTed as JSON by wrk (-t2 -c50, keep-alive, --latency) with
# bench/graphql_post.lua:
#   liveStreams(first: 20) { edges { node { id title viewerCount
#     broadcaster { username followerCount } } } }
# Data: bench/graphql_http_seed makes 200 users, 100 of them live, and
# their follows in streamhubd's SQLite file through the public API, and
# dumps the same rows (same ids) for bench/peers/graphql_peer.mjs, which
# loads them into its own SQLite file.  Both servers must first give the
# same answer to the query (compared as JSON), or the run stops.
# Also measured: GET /healthz on both, the HTTP layer's own ceiling.
#
# Prints JSON lines {"bench":"graphql_http","target","endpoint","metric",
# "value","unit"} (requests_per_second, latency_p50, latency_p99, errors),
# the core count, then the ratios streamhub / peer.  Seeding registers 200
# users (one Argon2id hash each, about a minute here): --seed-dir DIR keeps
# the seed in DIR and reuses it on the next run.  The peer is one Node
# process (its default); --peer-workers N runs N (node:cluster).  Not a test: figures go to
# docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
duration=10
seed_dir=
peer_workers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) duration=3 ;;
    --duration) duration=$2; shift ;;
    --builddir) build=$2; shift ;;
    --seed-dir) seed_dir=$2; shift ;;
    --peer-workers) peer_workers=$2; shift ;;
    *) echo "usage: $0 [--quick] [--duration S] [--builddir DIR] [--seed-dir DIR] [--peer-workers N]" >&2
       exit 2 ;;
  esac
  shift
done

shd=$build/server/streamhubd
seeder=$build/bench/graphql_http_seed
for x in "$shd" "$seeder"; do
  [ -x "$x" ] || { echo "build first: ninja -C $build" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
(cd bench/peers && [ -e node_modules/better-sqlite3/build/Release/better_sqlite3.node ] ||
  npm install --no-audit --no-fund >/dev/null)
ulimit -n "$(ulimit -Hn)"

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

# ---- data ------------------------------------------------------------
sd=${seed_dir:-$tmp/seed}
mkdir -p "$sd"
if [ ! -e "$sd/seed.json" ] || [ ! -e "$sd/streamhub.db" ]; then
  rm -f "$sd"/streamhub.db* "$sd/seed.json"
  "$seeder" --db "$sd/streamhub.db" --dump "$sd/seed.json.part" >&2
  mv "$sd/seed.json.part" "$sd/seed.json"
fi
# Copies: neither server writes to the kept seed.
python3 - "$sd/streamhub.db" "$tmp/streamhub.db" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst)
PY
node bench/peers/graphql_peer.mjs --seed "$sd/seed.json" --db "$tmp/peer.db" >&2

# ---- servers ---------------------------------------------------------
shport=$(free_port)
"$shd" --listen "127.0.0.1:$shport" --store "sqlite:$tmp/streamhub.db" \
  --log-level warn --http.rate-limit-per-ip 1000000 \
  >"$tmp/sh.out" 2>"$tmp/sh.err" &
pids+=("$!")
peerport=$(free_port)
node bench/peers/graphql_peer.mjs --db "$tmp/peer.db" --port "$peerport" \
  --workers "$peer_workers" >"$tmp/peer.out" 2>&1 &
pids+=("$!")
wait_port "$shport" || { cat "$tmp/sh.err" >&2; exit 1; }
wait_port "$peerport" || { cat "$tmp/peer.out" >&2; exit 1; }

# ---- same answer first -----------------------------------------------
body='{"query":"{ liveStreams(first: 20) { edges { node { id title viewerCount broadcaster { username followerCount } } } } }"}'
ask() { curl -sS -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$1/graphql"; }
ask "$shport" >"$tmp/sh.json"
ask "$peerport" >"$tmp/peer.json"
python3 - "$tmp/sh.json" "$tmp/peer.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
edges = a.get("data", {}).get("liveStreams", {}).get("edges") if isinstance(a, dict) else None
if "errors" in a or "errors" in b or a != b or not edges or len(edges) != 20:
    sys.stderr.write("graphql_http: the answers differ or are errors:\n"
                     f"streamhub: {json.dumps(a)[:400]}\npeer: {json.dumps(b)[:400]}\n")
    sys.exit(1)
sys.stderr.write("graphql_http: both servers give the same 20 edges\n")
PY

# ---- load ------------------------------------------------------------
echo "{\"bench\":\"env\",\"metric\":\"cores\",\"value\":$(nproc),\"unit\":\"count\"}"
echo "{\"bench\":\"env\",\"metric\":\"peer_processes\",\"value\":$peer_workers,\"unit\":\"count\"}"
echo "{\"bench\":\"env\",\"metric\":\"wrk\",\"value\":\"wrk -t2 -c50 -d${duration}s --latency -s bench/graphql_post.lua\",\"unit\":\"\"}"

run() { # target endpoint port mode
  local target=$1 endpoint=$2 port=$3 mode=$4 out
  wrk -t2 -c50 -d2s -s bench/graphql_post.lua "http://127.0.0.1:$port$endpoint" \
    -- "$mode" >/dev/null                                    # warm-up
  out=$(wrk -t2 -c50 -d"${duration}s" --latency -s bench/graphql_post.lua \
    "http://127.0.0.1:$port$endpoint" -- "$mode" | sed -n 's/^wrk-json //p')
  python3 - "$target" "$endpoint" "$out" <<'PY'
import json, sys
target, endpoint, w = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
errors = sum(w["errors"].values())
def emit(metric, value, unit):
    print(json.dumps({"bench": "graphql_http", "target": target, "endpoint": endpoint,
                      "metric": metric, "value": value, "unit": unit}, separators=(",", ":")))
emit("requests_per_second", round(w["requests"] / (w["duration_us"] / 1e6), 1), "req/s")
emit("latency_p50", round(w["latency_us"]["p50"] / 1000, 3), "ms")
emit("latency_p99", round(w["latency_us"]["p99"] / 1000, 3), "ms")
emit("errors", errors, "count")
PY
}

{
  run streamhub /graphql "$shport" post
  run graphql-js /graphql "$peerport" post
  run streamhub /healthz "$shport" get
  run graphql-js /healthz "$peerport" get
} | tee "$tmp/all.jsonl"

python3 - "$tmp/all.jsonl" <<'PY'
import json, sys
v = {}
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o.get("bench") == "graphql_http":
        v[(o["target"], o["endpoint"], o["metric"])] = o["value"]
for endpoint in ("/graphql", "/healthz"):
    s_rps = v.get(("streamhub", endpoint, "requests_per_second"))
    p_rps = v.get(("graphql-js", endpoint, "requests_per_second"))
    s_p99 = v.get(("streamhub", endpoint, "latency_p99"))
    p_p99 = v.get(("graphql-js", endpoint, "latency_p99"))
    if s_rps and p_rps:
        print(json.dumps({"bench": "graphql_http", "endpoint": endpoint,
                          "metric": "throughput_ratio_vs_graphql-js",
                          "value": round(s_rps / p_rps, 2), "unit": "x (higher is better for streamhub)"}, separators=(",", ":")))
    if s_p99 and p_p99:
        print(json.dumps({"bench": "graphql_http", "endpoint": endpoint,
                          "metric": "p99_ratio_vs_graphql-js",
                          "value": round(p_p99 / s_p99, 2), "unit": "x (peer p99 / streamhub p99; higher is better for streamhub)"}, separators=(",", ":")))
PY
