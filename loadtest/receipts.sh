#!/usr/bin/env bash
# Memory per retained receipt: gavel (Redis journal of its own, appendfsync everysec,
# snapshots off so no book copy is alive) takes RATE bids/s for DURATION_S s from DEALERS
# dealers, every bid with a bid_id of its own (each answered bid, accepted or refused, is
# a receipt kept for its dealer). Two readings of the server's VmRSS per receipt:
# - live: after the last result less before the first bid (the fixture set up, every
#   dealer connected); it also holds what the load left behind (frames, queues, the
#   allocator's free pages), so it moves with how far the server fell behind;
# - recovered: gavel restarted on the same journal (the book rebuilt by replay, no
#   connection) less a gavel started on an empty journal: the book itself, the receipts
#   nearly all of it.
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
GPID=""
trap 'kill $GPID $REDIS_PID 2>/dev/null || true' EXIT
# start_gavel LOG: on the run's Redis, snapshots off; sets GPID once it listens.
start_gavel() {
    GAVEL_ENGINE__SNAPSHOT_EVERY_COMMANDS=0 GAVEL_ENGINE__SNAPSHOT_AFTER_REPLAY_COMMANDS=0 \
    GAVEL_LOG__FILTER=warn GAVEL_STORE__LEASE_TTL_MS=2000 GAVEL_STORE__REDIS_TIMEOUT_MS=60000 \
        "${GAVEL_SERVE[@]}" --listen "127.0.0.1:$GPORT" \
        --redis "redis://127.0.0.1:$REDIS_PORT/" >"$1" 2>&1 &
    GPID=$!
    # A restart replays the whole log first: a minute at most.
    for _ in 1 2 3 4 5 6; do wait_port "$GPORT" 2>/dev/null && break; done
    wait_port "$GPORT"
    sleep 2
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$GPID/status"; }
start_gavel "$OUT/gavel-empty.log"
empty="$(rss_kib)"
echo "empty journal: VmRSS $empty KiB" >"$OUT/empty.txt"
stop "$GPID"
while [ "$(redis-cli -p "$REDIS_PORT" exists gavel:lease)" != 0 ]; do sleep 0.1; done
start_gavel "$OUT/gavel.log"
gen soak --url "ws://127.0.0.1:$GPORT" --dealers "$DEALERS" --auctions "$AUCTIONS" \
    --rate "$RATE" --duration-s "$DURATION_S" --sample-s 1 --server-pid "$GPID" --quiet \
    --out "$OUT/rss.json" >"$OUT/rss.txt" 2>&1 || true
jq -r '(.samples[0].rss_kib) as $a | (.samples[-1].rss_kib) as $b | .phases[-1] as $p
    | "live: \($p.acks) results (\($p.accepted) accepted, \($p.unanswered) unanswered); VmRSS \($a) → \($b) KiB; \((($b - $a) * 1024 / $p.acks) * 10 | round / 10) bytes per receipt"' \
    "$OUT/rss.json" | tee "$OUT/summary.txt"
grep -E "correctness" "$OUT/rss.txt" | tee -a "$OUT/summary.txt" || true
stop "$GPID"
while [ "$(redis-cli -p "$REDIS_PORT" exists gavel:lease)" != 0 ]; do sleep 0.1; done
start_gavel "$OUT/gavel-recovered.log"
recovered="$(rss_kib)"
stop "$GPID"
jq -r --argjson e "$empty" --argjson r "$recovered" '.phases[-1].acks as $n
    | "recovered: VmRSS \($r) KiB against \($e) KiB on an empty journal; \((($r - $e) * 1024 / $n) * 10 | round / 10) bytes per receipt"' \
    "$OUT/rss.json" | tee -a "$OUT/summary.txt"
