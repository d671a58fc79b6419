#!/usr/bin/env bash
# Throughput and CPU per bid of a cluster by nodes and markets (issue 25): for each of
# CONFIGS ("NODES×MARKETS"), a fresh Redis (AOF, appendfsync $FSYNC) and the nodes, all
# pinned to core SERVER_CPU, the generator on GEN_CPU; `steady --front` at each of RATES,
# then a ramp to the highest rate sustained (p99 ack ≤ P99_MS, every bid answered, results
# ≥ 95% of offered). CPU per bid: utime + stime of every gavel node and the Redis over
# each phase (from /proc, `--cpu-pids`) ÷ the phase's accepted bids.
#
#   loadtest/scaleout.sh OUTDIR
#
# Writes OUTDIR/scaleout.txt. Knobs (environment): CONFIGS="1x1 1x4 3x4 3x12"
# RATES="2000 5000" DURATION_S=20 DEALERS=480 AUCTIONS=240 (a multiple of every market
# count) START_RATE=5000 FACTOR=1.25 STEP_S=4 P99_MS=100 REFINE=3 MAX_RATE=400000 NO_RAMP=1 IDLE_S=10 FSYNC=everysec
# SERVER_CPU=0 GEN_CPU=1 GAVEL_BIN=PATH. Needs the release build, redis-server, curl,
# python3.
#
# On a 2-core machine every node shares one core with the Redis: what this shows is the
# cost of a bid and how it grows with nodes and markets, not the capacity of more machines.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
# shellcheck source=loadtest/cluster.sh
source "$ROOT/loadtest/cluster.sh"
CONFIGS="${CONFIGS:-1x1 1x4 3x4 3x12}"; RATES="${RATES:-2000 5000}"
DURATION_S="${DURATION_S:-20}"; DEALERS="${DEALERS:-480}"; AUCTIONS="${AUCTIONS:-240}"
START_RATE="${START_RATE:-5000}"; FACTOR="${FACTOR:-1.25}"; STEP_S="${STEP_S:-4}"
P99_MS="${P99_MS:-100}"; REFINE="${REFINE:-3}"; MAX_RATE="${MAX_RATE:-400000}"; FSYNC="${FSYNC:-everysec}"
IDLE_S="${IDLE_S:-10}"
cleanup() {
    for p in "${NODE_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null
    true
}
trap cleanup EXIT

for cfg in $CONFIGS; do
    nodes="${cfg%x*}"; markets="${cfg#*x}"
    dir="$OUT/$cfg"; rm -rf "$dir"; mkdir -p "$dir"
    read -ra NAMES <<<"$(market_names "$markets")"
    cluster_config "$dir/cluster.toml" "${NAMES[@]}"
    start_redis "$dir/redis" "$FSYNC"
    NODE_PORTS=()
    for ((i = 0; i < nodes; i++)); do OUT="$dir" start_node "$i" "$dir/cluster.toml"; done
    for ((i = 0; i < nodes; i++)); do wait_port "${NODE_PORTS[$i]}"; done
    wait_balanced 0 "$nodes"
    pids="$(IFS=,; echo "${NODE_PIDS[*]},$REDIS_PID")"
    # What the cluster costs with no bids at all (heartbeats, leases, control-stream
    # reads), over IDLE_S: the fixed part of each phase's CPU.
    c0="$(cpu_of "${NODE_PIDS[@]}" "$REDIS_PID")"; sleep "$IDLE_S"
    c1="$(cpu_of "${NODE_PIDS[@]}" "$REDIS_PID")"
    awk -v a="$c0" -v b="$c1" -v s="$IDLE_S" 'BEGIN {printf "%.4f\n", (b - a) / s}' >"$dir/idle-cores.txt"
    echo "$cfg: idle $(cat "$dir/idle-cores.txt") cores (load $(cut -d' ' -f1-3 /proc/loadavg))"
    LOAD=(--front "$(front 0)" --dealers "$DEALERS" --auctions "$AUCTIONS" --quiet --cpu-pids "$pids")
    for rate in $RATES; do
        echo "$cfg: steady $rate/s (load $(cut -d' ' -f1-3 /proc/loadavg))"
        gen steady "${LOAD[@]}" --rate "$rate" --duration-s "$DURATION_S" --label "$cfg-$rate" \
            --out "$dir/steady-$rate.json" >"$dir/steady-$rate.txt" 2>&1 \
            || { echo "steady failed: see $dir/steady-$rate.txt"; tail -n 5 "$dir/steady-$rate.txt"; }
    done
    if [ -z "${NO_RAMP:-}" ]; then
        echo "$cfg: ramp (load $(cut -d' ' -f1-3 /proc/loadavg))"
        gen ramp "${LOAD[@]}" --start-rate "$START_RATE" --factor "$FACTOR" --step-s "$STEP_S" \
            --p99-ms "$P99_MS" --refine "$REFINE" --max-rate "$MAX_RATE" --label "$cfg-ramp" \
            --out "$dir/ramp.json" >"$dir/ramp.txt" 2>&1 \
            || { echo "ramp failed: see $dir/ramp.txt"; tail -n 5 "$dir/ramp.txt"; }
    fi
    stop_cluster
    if replay_all "$dir/cluster.toml" "$dir/replay.txt"; then echo "$cfg: replay --verify --all-markets passed"
    else echo "$cfg: replay --verify --all-markets FAILED (see $dir/replay.txt)"; fi
    stop "$REDIS_PID"; REDIS_PID=""
done

python3 - "$OUT" $CONFIGS <<'PY' | tee "$OUT/scaleout.txt"
import glob, json, os, sys
out, configs = sys.argv[1], sys.argv[2:]
def row(cfg, what, p, j, idle):
    lat = p["ack_latency"]
    cpu = p.get("watched_cpu_s") or 0
    # The phase's wall time: its length, or longer when answers trailed.
    wall = max(p["duration_s"], p["acks"] / p["ack_rate"] if p["ack_rate"] else 0)
    marginal = (cpu - idle * wall) * 1e6 / p["accepted"] if p["accepted"] else 0
    return (f"| {cfg} | {what} | {p['accepted_rate']:.0f} | {p['ack_rate']:.0f} | {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} "
            f"| {p.get('cpu_us_per_accepted') or 0:.1f} | {marginal:.1f} | {cpu / wall:.2f} "
            f"| {'OK' if j['correctness']['ok'] else 'FAILED'} | {j['loadavg_before'].split()[0]} |")
print("| nodes×markets | phase | accepted/s | results/s | ack p50 / p99 ms | µs CPU per accepted bid | of which above idle | cores busy | check | load |")
print("|---|---|---|---|---|---|---|---|---|---|")
for cfg in configs:
    d = f"{out}/{cfg}"
    idle = float(open(f"{d}/idle-cores.txt").read())
    print(f"| {cfg} | idle | | | | | | {idle:.3f} | | |")
    for f in sorted(glob.glob(f"{d}/steady-*.json"), key=lambda x: int(x.split("-")[-1][:-5])):
        j = json.load(open(f))
        print(row(cfg, f"steady {j['params']['rate']:.0f}/s", j["phases"][0], j, idle))
    f = f"{d}/ramp.json"
    if os.path.exists(f):
        j = json.load(open(f))
        best = j.get("max_sustained_offered")
        ph = [p for p in j["phases"] if p["offered_rate"] == best and p["sustained"]]
        if ph:
            print(row(cfg, f"ramp: highest sustained {best:.0f}/s", ph[-1], j, idle))
        else:
            print(f"| {cfg} | ramp: nothing sustained | | | | | | | | {j['loadavg_before'].split()[0]} |")
PY
