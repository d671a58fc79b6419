#!/usr/bin/env bash
# Does a snapshot stall acknowledgements? gavel on the Redis journal (a Redis of its own,
# appendonly, appendfsync $FSYNC), its book grown by a prefill until a snapshot of it is
# large (PREFILL_RATE bids/s for PREFILL_S s: every bid leaves a receipt), then a soak by
# the same dealers at RATE bids/s for SOAK_S s with a snapshot every SNAPSHOT_EVERY_S s.
# The soak reports ack latency per WINDOW_S window, each marked by whether a snapshot ran
# in it (gavel's /metrics snapshot counters), and both kinds pooled; gavel's log gives
# each snapshot's size and times. Ends with `gavel replay --verify` and the check of every
# acknowledged bid against the journal.
#
#   loadtest/snapsoak.sh OUTDIR
#
# Knobs (environment): PREFILL_RATE=20000 PREFILL_S=90 RATE=5000 SOAK_S=240 WINDOW_S=10
# SNAPSHOT_EVERY_S=30 FSYNC=everysec DEALERS=400 AUCTIONS=200 SERVER_CPU=0 GEN_CPU=1
# GAVEL_BIN=PATH. Needs `cargo build --release -p gavel -p gavel-loadtest`, redis-server.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
# shellcheck source=loadtest/servers.sh
source "$ROOT/loadtest/servers.sh"
PREFILL_RATE="${PREFILL_RATE:-20000}"; PREFILL_S="${PREFILL_S:-90}"
RATE="${RATE:-5000}"; SOAK_S="${SOAK_S:-240}"; WINDOW_S="${WINDOW_S:-10}"
SNAPSHOT_EVERY_S="${SNAPSHOT_EVERY_S:-30}"; FSYNC="${FSYNC:-everysec}"
DEALERS="${DEALERS:-400}"; AUCTIONS="${AUCTIONS:-200}"
ulimit -n "$(ulimit -Hn)"

rm -rf "$OUT/redis"
start_redis "$OUT/redis" "$FSYNC"
GPORT="$(free_port)"
# Snapshots by time only, so they land in the soak at a known spacing.
GAVEL_ENGINE__SNAPSHOT_EVERY_S="$SNAPSHOT_EVERY_S" \
GAVEL_ENGINE__SNAPSHOT_EVERY_COMMANDS=1000000000000 GAVEL_LOG__FILTER=info \
    "${GAVEL_SERVE[@]}" --listen "127.0.0.1:$GPORT" --redis "redis://127.0.0.1:$REDIS_PORT/" \
    >"$OUT/gavel.log" 2>&1 &
GPID=$!
trap 'kill $GPID $REDIS_PID 2>/dev/null || true' EXIT
wait_port "$GPORT"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/summary.txt"
gen soak --url "ws://127.0.0.1:$GPORT" --dealers "$DEALERS" --auctions "$AUCTIONS" \
    --listing-duration-s 7200 --prefill-rate "$PREFILL_RATE" --prefill-s "$PREFILL_S" \
    --rate "$RATE" --duration-s "$SOAK_S" --window-s "$WINDOW_S" --sample-s 5 \
    --server-pid "$GPID" --redis-pid "$REDIS_PID" --quiet --out "$OUT/soak.json" \
    >"$OUT/soak.txt" 2>&1 || true
stop "$GPID"
{
    grep -E "^windows of|^  (with|without)" "$OUT/soak.txt" || tail -n 20 "$OUT/soak.txt"
    grep -E "correctness" "$OUT/soak.txt" || true
    # One line per snapshot saved: its seq, size and how long it took.
    grep "snapshot saved" "$OUT/gavel.log" | sed -E 's/\x1b\[[0-9;]*m//g' \
        | grep -oE "seq=[0-9]+|bytes=[0-9]+|serialize_ms=[0-9]+|save_ms=[0-9]+" \
        | paste -d' ' - - - - | sed 's/^/snapshot /'
    verify_run "$OUT/soak.json" --redis "redis://127.0.0.1:$REDIS_PORT/"
} | tee -a "$OUT/summary.txt"
