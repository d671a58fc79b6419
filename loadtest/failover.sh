#!/usr/bin/env bash
# Failover time of a cluster (issue 25): kill → first accepted bid for the killed node's
# market on its new owner, over KILLS kill -9s.
#
# A Redis of its own (AOF, appendfsync $FSYNC), NODES `gavel node`s over MARKETS markets
# (lease_ttl_ms and heartbeat_ms as config/default.toml's [cluster] says: 1000 and 200),
# and the prober (`gavel-loadtest probe`): in every market one bid at a time, $INTERVAL_MS
# after the last answer, re-resolving through the front doors on any disconnect or
# `unavailable`. Kill k targets the owner of market k mod MARKETS: its time is taken, the
# node is killed with SIGKILL, the prober's log is read until that market accepts a bid on
# another node; then the node is restarted (same id and front door) and the cluster must be
# balanced again, with every market accepting, before the next kill.
#
#   loadtest/failover.sh OUTDIR
#
# Writes OUTDIR/failover.txt: one line per kill (market, killed node, new owner, ms) and
# min / median / max. After the run the nodes are stopped and `gavel replay --verify
# --all-markets` must pass (OUTDIR/replay.txt).
#
# Knobs (environment): KILLS=24 NODES=3 MARKETS=4 INTERVAL_MS=5 FSYNC=everysec
# SETTLE_S=1 (after balance, before the next kill) SERVER_CPU=0 GEN_CPU=1 GAVEL_BIN=PATH.
# Needs the release build (cargo build --release -p gavel -p gavel-loadtest), redis-server,
# curl, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
# shellcheck source=loadtest/cluster.sh
source "$ROOT/loadtest/cluster.sh"
KILLS="${KILLS:-24}"; NODES="${NODES:-3}"; MARKETS="${MARKETS:-4}"
INTERVAL_MS="${INTERVAL_MS:-5}"; FSYNC="${FSYNC:-everysec}"; SETTLE_S="${SETTLE_S:-1}"
PROBE_PID=""
cleanup() {
    [ -n "$PROBE_PID" ] && kill "$PROBE_PID" 2>/dev/null
    for p in "${NODE_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null
    true
}
trap cleanup EXIT
rm -rf "$OUT"/node-*.log "$OUT/probe.log" "$OUT/kills.txt" "$OUT/redis"

read -ra NAMES <<<"$(market_names "$MARKETS")"
cluster_config "$OUT/cluster.toml" "${NAMES[@]}"
start_redis "$OUT/redis" "$FSYNC"
for ((i = 0; i < NODES; i++)); do start_node "$i" "$OUT/cluster.toml"; done
for ((i = 0; i < NODES; i++)); do wait_port "${NODE_PORTS[$i]}"; done
wait_balanced 0 "$NODES"

FRONTS=()
for ((i = 0; i < NODES; i++)); do FRONTS+=(--front "$(front "$i")"); done
# Long enough for every kill; stopped once they are done.
taskset -c "$GEN_CPU" "$BIN/gavel-loadtest" probe "${FRONTS[@]}" --interval-ms "$INTERVAL_MS" \
    --duration-s $((KILLS * 30 + 60)) --log "$OUT/probe.log" >"$OUT/probe.txt" 2>&1 &
PROBE_PID=$!

# accepted_since MARKET T_MS NOT_NODE [FROM_BYTE]: the first `accepted` line of MARKET
# after T_MS (unix ms) from a node other than NOT_NODE ("-" for any), reading the log from
# FROM_BYTE on (so a long run does not rescan it all), or nothing.
accepted_since() {
    tail -c +"$((${4:-0} + 1))" "$OUT/probe.log" 2>/dev/null | awk -v m="$1" -v t="$2" -v n="$3" \
        '$2 == m && $4 == "accepted" && $1 > t && $3 != n {print; exit}' || true
    # (awk's early exit makes tail die of SIGPIPE, which pipefail would call a failure)
}
log_size() { stat -c %s "$OUT/probe.log" 2>/dev/null || echo 0; }

now_ms() { local t="$EPOCHREALTIME"; echo "${t/./}" | cut -c1-13; }

# Every market accepting before the first kill.
t="$(now_ms)"
for m in "${NAMES[@]}"; do
    for _ in $(seq 1 300); do [ -n "$(accepted_since "$m" "$t" -)" ] && break; sleep 0.1; done
    [ -n "$(accepted_since "$m" "$t" -)" ] || { echo "market $m never accepted a bid: see $OUT/probe.log"; exit 1; }
done

: >"$OUT/kills.txt"
for ((k = 0; k < KILLS; k++)); do
    m="${NAMES[$((k % MARKETS))]}"
    # Ask a node that stays up for the owner.
    owner="$(owner_of 0 "$m")"
    victim=""
    for ((i = 0; i < NODES; i++)); do [ "${NODE_IDS[$i]}" = "$owner" ] && victim="$i"; done
    [ -n "$victim" ] || { echo "kill $k: no owner of $m in the map"; exit 1; }
    asker=$(((victim + 1) % NODES))
    from="$(log_size)"
    t_kill="$(now_ms)"
    kill -KILL "${NODE_PIDS[$victim]}"
    wait "${NODE_PIDS[$victim]}" 2>/dev/null || true
    line=""
    for _ in $(seq 1 300); do
        line="$(accepted_since "$m" "$t_kill" "$owner" "$from")"
        [ -n "$line" ] && break
        sleep 0.05
    done
    [ -n "$line" ] || { echo "kill $k: market $m accepted nothing on another node within 15 s"; exit 1; }
    read -r t_acc _ new_owner _ <<<"$line"
    ms="$(awk -v a="$t_acc" -v b="$t_kill" 'BEGIN {printf "%.1f", a - b}')"
    echo "kill $((k + 1)): market $m, killed $owner at $t_kill, accepted on $new_owner after $ms ms" \
        | tee -a "$OUT/kills.txt"
    start_node "$victim" "$OUT/cluster.toml"
    wait_port "${NODE_PORTS[$victim]}"
    wait_balanced "$asker" "$NODES"
    # Every market accepting again on the balanced cluster.
    from="$(log_size)"; t="$(now_ms)"
    for mm in "${NAMES[@]}"; do
        for _ in $(seq 1 100); do [ -n "$(accepted_since "$mm" "$t" - "$from")" ] && break; sleep 0.05; done
    done
    sleep "$SETTLE_S"
done

kill "$PROBE_PID" 2>/dev/null || true; wait "$PROBE_PID" 2>/dev/null || true; PROBE_PID=""
stop_cluster
grep -oE "after [0-9.]+ ms" "$OUT/kills.txt" | awk '{print $2}' | python3 -c '
import sys, statistics as s
t = [float(x) for x in sys.stdin]
print(f"{len(t)} kills: min {min(t):.1f} ms, median {s.median(t):.1f}, max {max(t):.1f}")
print("each (ms): " + ", ".join(f"{x:.1f}" for x in t))' >"$OUT/summary.tmp"
{
    echo "failover: kill -9 -> first accepted bid for the market on its new owner"
    echo "nodes $NODES, markets $MARKETS, lease_ttl_ms/heartbeat_ms from [cluster] (1000/200 by default), prober every $INTERVAL_MS ms, AOF $FSYNC"
    cat "$OUT/kills.txt" "$OUT/summary.tmp"
} >"$OUT/failover.txt"
rm -f "$OUT/summary.tmp"
if replay_all "$OUT/cluster.toml" "$OUT/replay.txt"; then
    echo "gavel replay --verify --all-markets: passed ($(grep -c '^market ' "$OUT/replay.txt") markets)" >>"$OUT/failover.txt"
else
    echo "gavel replay --verify --all-markets: FAILED (see $OUT/replay.txt)" | tee -a "$OUT/failover.txt"
    exit 1
fi
# Every bid the prober saw accepted, across every kill, is in its market's journal: the
# market's one lot holds at least as many bids, at a price no lower than the highest
# accepted amount; and at most as many more as bids went unanswered (the socket closed or
# the answer timed out: a kill can come between a bid made durable and its answer) plus
# one (in flight when the prober stopped).
python3 - "$OUT/probe.log" "$OUT/replay.txt" <<'PY' | tee -a "$OUT/failover.txt"
import sys
acc, top, lost = {}, {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 5 and f[3] == "accepted":
        acc[f[1]] = acc.get(f[1], 0) + 1
        top[f[1]] = max(top.get(f[1], 0), int(f[4]))
    elif len(f) >= 5 and (f[3] in ("closed", "timeout") or f[3].startswith("error:")):
        lost[f[1]] = lost.get(f[1], 0) + 1
journal, market = {}, None
for line in open(sys.argv[2]):
    if line.startswith("market "):
        market = line.split()[1].rstrip(":")
    elif market and " bids=" in line:
        kv = dict(x.split("=", 1) for x in line.split()[2:] if "=" in x)
        journal[market] = (int(kv["bids"]), int(kv["price"]))
bad = []
for m, n in sorted(acc.items()):
    bids, price = journal.get(m, (0, 0))
    if not (n <= bids <= n + lost.get(m, 0) + 1 and price >= top[m]):
        bad.append(f"{m}: {n} accepted up to {top[m]}, {lost.get(m, 0)} unanswered, journal {bids} bids at {price}")
print("acknowledged bids in the journals: " + ("all there (" + ", ".join(
    f"{m} {n}" for m, n in sorted(acc.items())) + " accepted)" if not bad else "DIFFERENCES: " + "; ".join(bad)))
sys.exit(1 if bad else 0)
PY
cat "$OUT/failover.txt"
