#!/usr/bin/env bash
# Memory per retained receipt: gavel (Redis journal of its own, appendfsync everysec,
# snapshots off so no book copy is alive) takes RATE bids/s for DURATION_S s from DEALERS
# dealers, every bid with a bid_id of its own (each answered bid, accepted or refused, is
# a receipt kept for its dealer); the server's VmRSS is read before the first bid (the
# fixture set up, every dealer connected) and after the last result. Prints
# ΔRSS / results, and the accepted count beside it.
#
#   loadtest/receipts.sh OUTDIR            (GAVEL_BIN=PATH for another build)
#
# Knobs: RATE=25000 DURATION_S=60 DEALERS=400 AUCTIONS=200 SERVER_CPU=0 GEN_CPU=1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
# shellcheck source=loadtest/servers.sh
source "$ROOT/loadtest/servers.sh"
RATE="${RATE:-25000}"; DURATION_S="${DURATION_S:-60}"
DEALERS="${DEALERS:-400}"; AUCTIONS="${AUCTIONS:-200}"
ulimit -n "$(ulimit -Hn)"

rm -rf "$OUT/redis"
start_redis "$OUT/redis" everysec
GPORT="$(free_port)"
GAVEL_ENGINE__SNAPSHOT_EVERY_COMMANDS=0 GAVEL_ENGINE__SNAPSHOT_AFTER_REPLAY_COMMANDS=0 \
GAVEL_LOG__FILTER=warn \
    "${GAVEL_SERVE[@]}" --listen "127.0.0.1:$GPORT" --redis "redis://127.0.0.1:$REDIS_PORT/" \
    >"$OUT/gavel.log" 2>&1 &
GPID=$!
trap 'kill $GPID $REDIS_PID 2>/dev/null || true' EXIT
wait_port "$GPORT"
gen soak --url "ws://127.0.0.1:$GPORT" --dealers "$DEALERS" --auctions "$AUCTIONS" \
    --rate "$RATE" --duration-s "$DURATION_S" --sample-s 1 --server-pid "$GPID" --quiet \
    --out "$OUT/rss.json" >"$OUT/rss.txt" 2>&1 || true
jq -r '(.samples[0].rss_kib) as $a | (.samples[-1].rss_kib) as $b | .phases[-1] as $p
    | "\($p.acks) results (\($p.accepted) accepted, \($p.unanswered) unanswered); VmRSS \($a) → \($b) KiB; \((($b - $a) * 1024 / $p.acks) * 10 | round / 10) bytes per receipt"' \
    "$OUT/rss.json" | tee "$OUT/summary.txt"
grep -E "correctness" "$OUT/rss.txt" | tee -a "$OUT/summary.txt" || true
stop "$GPID"
