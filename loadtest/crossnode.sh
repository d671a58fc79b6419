#!/usr/bin/env bash
# What a cluster adds to a bid's latency (issue 25).
#
# 1. Reaching the wrong node: on NODES nodes over MARKETS markets, a client that asks node
#    0's front door for a market node 0 does not serve (GET /v1/cluster, fresh connection)
#    and then opens its WebSocket on the owner, against a client that connects to the
#    owner directly; each timed to its first bid's answer, TRIALS of each, alternated
#    (`gavel-loadtest crossnode`).
# 2. Once connected, a bid never crosses nodes: steady-state bid latency and CPU per bid on
#    a cluster's market server (1 node, 1 market) against `gavel serve` on the same Redis,
#    same load and rate, alternated ROUNDS times (A B A B): a market server is
#    `server::start`, the code `gavel serve` runs, so the figures should agree.
#
#   loadtest/crossnode.sh OUTDIR
#
# Writes OUTDIR/crossnode.txt. Knobs (environment): TRIALS=1000 NODES=3 MARKETS=4
# RATE=2000 DURATION_S=20 DEALERS=400 AUCTIONS=200 ROUNDS=2 FSYNC=everysec SERVER_CPU=0
# GEN_CPU=1 GAVEL_BIN=PATH. Needs the release build, redis-server, curl, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
# shellcheck source=loadtest/cluster.sh
source "$ROOT/loadtest/cluster.sh"
TRIALS="${TRIALS:-1000}"; NODES="${NODES:-3}"; MARKETS="${MARKETS:-4}"
RATE="${RATE:-2000}"; DURATION_S="${DURATION_S:-20}"; DEALERS="${DEALERS:-400}"
AUCTIONS="${AUCTIONS:-200}"; ROUNDS="${ROUNDS:-2}"; FSYNC="${FSYNC:-everysec}"
SERVE_PID=""
cleanup() {
    for p in "${NODE_PIDS[@]}" $SERVE_PID; do kill -KILL "$p" 2>/dev/null; done
    [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null
    true
}
trap cleanup EXIT
rm -rf "$OUT"/node-*.log "$OUT/redis"

# 1. The wrong node.
read -ra NAMES <<<"$(market_names "$MARKETS")"
cluster_config "$OUT/cluster.toml" "${NAMES[@]}"
start_redis "$OUT/redis" "$FSYNC"
for ((i = 0; i < NODES; i++)); do start_node "$i" "$OUT/cluster.toml"; done
for ((i = 0; i < NODES; i++)); do wait_port "${NODE_PORTS[$i]}"; done
wait_balanced 0 "$NODES"
{
    echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    gen crossnode --front "$(front 0)" --trials "$TRIALS" --out "$OUT/crossnode.json"
} 2>&1 | tee "$OUT/crossnode.txt"
stop_cluster

# 2. A market server against `gavel serve`, same Redis, alternated.
cluster_config "$OUT/one.toml" north
LOAD=(--dealers "$DEALERS" --auctions "$AUCTIONS" --rate "$RATE" --duration-s "$DURATION_S" --quiet)
for ((r = 1; r <= ROUNDS; r++)); do
    NODE_PORTS=(); start_node 0 "$OUT/one.toml"; wait_port "${NODE_PORTS[0]}"; wait_balanced 0 1
    gen steady --front "$(front 0)" "${LOAD[@]}" --cpu-pids "${NODE_PIDS[0]},$REDIS_PID" \
        --label "market-server-$r" --out "$OUT/market-server-$r.json" >"$OUT/market-server-$r.txt" 2>&1
    stop_cluster
    port="$(free_port)"
    "${GAVEL_SERVE[@]}" --redis "redis://127.0.0.1:$REDIS_PORT/" --listen "127.0.0.1:$port" \
        </dev/null >"$OUT/serve-$r.log" 2>&1 &
    SERVE_PID=$!; wait_port "$port"
    gen steady --url "ws://127.0.0.1:$port" "${LOAD[@]}" --cpu-pids "$SERVE_PID,$REDIS_PID" \
        --label "serve-$r" --out "$OUT/serve-$r.json" >"$OUT/serve-$r.txt" 2>&1
    stop "$SERVE_PID"; SERVE_PID=""
done
python3 - "$OUT" "$ROUNDS" <<'PY' | tee -a "$OUT/crossnode.txt"
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
print("steady state, same Redis, same load: accepted/s, ack p50 / p99 ms, µs CPU (gavel + redis) per accepted bid, correctness, load average before")
for r in range(1, rounds + 1):
    for name in ("market-server", "serve"):
        j = json.load(open(f"{out}/{name}-{r}.json"))
        p = j["phases"][0]
        print(f"  {name:14} round {r}: {p['accepted_rate']:.0f}/s, p50 {p['ack_latency']['p50_ms']:.2f}, "
              f"p99 {p['ack_latency']['p99_ms']:.2f}, {p.get('cpu_us_per_accepted') or 0:.1f} µs/bid, "
              f"{'OK' if j['correctness']['ok'] else 'FAILED'}, load {j['loadavg_before']}")
PY
