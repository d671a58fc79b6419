#!/usr/bin/env bash
# Counts the instructions gavel executes per bid: gavel (Redis journal, everysec) under
# `valgrind --tool=callgrind` with instrumentation off until the steady phase has run
# WARM_S seconds, on for WINDOW_S seconds, then off; instructions divided by the bids
# answered meanwhile (from /metrics). Unlike CPU time on a shared VM, the count barely
# moves between runs of one binary (±3%: how bids batch still depends on timing), so it
# can tell two builds apart by a few percent. At this rate each bid is its own wake-up,
# so the count includes the per-wake-up work that batching spreads out at high load.
#
#   loadtest/callgrind.sh OUTDIR [RATE]          (RATE: bids/s, 1000 by default)
#   GAVEL_BIN=/path/to/other/gavel loadtest/callgrind.sh OUTDIR
#
# Writes OUTDIR/callgrind.out (for callgrind_annotate) and OUTDIR/summary.txt. Needs
# valgrind, curl and a release build (`debug = 1` gives callgrind the symbols).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"; RATE="${2:-1000}"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
GAVEL="${GAVEL_BIN:-$BIN/gavel}"
SERVER_CPU="${SERVER_CPU:-0}"; GEN_CPU="${GEN_CPU:-1}"
WARM_S="${WARM_S:-12}"; WINDOW_S="${WINDOW_S:-15}"
ADMIN="callgrind-admin"
ulimit -n "$(ulimit -Hn)"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bids() { curl -s "http://127.0.0.1:$GPORT/metrics" | awk '/^gavel_bids_total/ {s += $2} END {print s + 0}'; }

RPORT=$(port); GPORT=$(port)
rm -rf "$OUT/redis"; mkdir -p "$OUT/redis"
taskset -c "$SERVER_CPU" redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$OUT/redis" \
    --appendonly yes --appendfsync everysec --save "" --logfile "$OUT/redis/log" &
RPID=$!
sleep 0.5
GAVEL_ADMIN_TOKEN="$ADMIN" GAVEL_GATEWAY__BID_RATE_PER_S=10000000 \
GAVEL_GATEWAY__BID_BURST=10000000 GAVEL_GATEWAY__MAX_INFLIGHT_BIDS=100000 \
GAVEL_AUCTION__MIN_DURATION_S=1 GAVEL_LOG__FILTER=warn \
    taskset -c "$SERVER_CPU" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$OUT/callgrind.out" "$GAVEL" serve --listen "127.0.0.1:$GPORT" \
    --redis "redis://127.0.0.1:$RPORT/" >"$OUT/gavel.log" 2>&1 &
GPID=$!
trap 'kill $GPID $RPID 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$GPORT/healthz" >/dev/null && break; sleep 1; done
GAVEL_ADMIN_TOKEN="$ADMIN" taskset -c "$GEN_CPU" "$BIN/gavel-loadtest" steady --rate "$RATE" \
    --duration-s $((WARM_S + WINDOW_S + 8)) --dealers 400 --auctions 200 \
    --url "ws://127.0.0.1:$GPORT" --quiet --out "$OUT/report.json" >"$OUT/run.txt" 2>&1 &
LPID=$!
# The steady phase has begun once the first bid is answered (setup comes before it).
for _ in $(seq 120); do [ "$(bids)" -gt 0 ] && break; sleep 1; done
sleep "$WARM_S"
b0=$(bids)
callgrind_control -i on "$GPID" >/dev/null
sleep "$WINDOW_S"
callgrind_control -i off "$GPID" >/dev/null
b1=$(bids)
wait "$LPID" || true
kill -INT "$GPID"; wait "$GPID" 2>/dev/null || true
ir=$(awk '/Collected :/ {print $NF}' "$OUT/gavel.log" | tail -n 1)
echo "$(basename "$GAVEL"): $((b1 - b0)) bids in the window, $ir instructions," \
    "$((ir / (b1 - b0 > 0 ? b1 - b0 : 1))) per bid" | tee "$OUT/summary.txt"
grep -E "correctness" "$OUT/run.txt" || tail -n 3 "$OUT/run.txt"
