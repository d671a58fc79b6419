#!/usr/bin/env bash
# Profiles gavel (Redis journal) under one load scenario: gavel and its Redis on core
# $SERVER_CPU, the generator on core $GEN_CPU, `perf record -g` on gavel for PERF_S seconds
# once the load is running, and the CPU each of gavel and Redis used meanwhile.
#
#   loadtest/profile.sh OUTDIR FSYNC SCENARIO [gavel-loadtest flags...]
#   e.g. loadtest/profile.sh /tmp/prof everysec steady --rate 20000 --duration-s 20
#        loadtest/profile.sh /tmp/hot always hot-lot --subscribers 10000 --listing-duration-s 45
#
# PERF_ARGS replaces `-g` (e.g. PERF_ARGS="--call-graph dwarf" for full stacks through
# code built without frame pointers; its perf.data is ~1 GB for 8 s).
# SERVER=floor profiles the fan-out floor instead (`gavel-echo --redis --fanout`, as
# compare.sh's echo-fanout-durable-*), for gavel's cost against it at the same load.
# PERF_STAT=1 counts instead of sampling: CPU time, context switches and the socket system
# calls, each also per answered bid (OUTDIR/perf-stat.txt).
# GAVEL_BIN=PATH profiles that gavel binary instead of the build's (as in compare.sh).
#
# Writes OUTDIR/perf.data, OUTDIR/perf-top.txt (flat profile, by symbol), OUTDIR/report.json,
# OUTDIR/cpu.txt and OUTDIR/redis-commandstats.txt (Redis's time per command). Needs `perf`
# (apt-get install linux-perf) and a release build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"; FSYNC="$2"; shift 2
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
SERVER_CPU="${SERVER_CPU:-0}"; GEN_CPU="${GEN_CPU:-1}"
PERF_S="${PERF_S:-8}"; PERF_AFTER_S="${PERF_AFTER_S:-6}"; PERF_ARGS="${PERF_ARGS:--g}"
SERVER="${SERVER:-gavel}"; PERF_STAT="${PERF_STAT:-}"
case "$SERVER" in
gavel|floor) ;;
*) echo "SERVER must be gavel or floor, not $SERVER" >&2; exit 2 ;;
esac
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ADMIN="profile-admin"
ulimit -n "$(ulimit -Hn)"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }

RPORT=$(port); GPORT=$(port)
rm -rf "$OUT/redis"; mkdir -p "$OUT/redis"
taskset -c "$SERVER_CPU" redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$OUT/redis" \
    --appendonly yes --appendfsync "$FSYNC" --save "" --logfile "$OUT/redis/log" &
RPID=$!
sleep 0.5
case "$SERVER" in
gavel)
    GAVEL_ADMIN_TOKEN="$ADMIN" GAVEL_GATEWAY__BID_RATE_PER_S=10000000 \
    GAVEL_GATEWAY__BID_BURST=10000000 GAVEL_GATEWAY__MAX_INFLIGHT_BIDS=100000 \
    GAVEL_GATEWAY__MAX_CONNECTIONS=30000 GAVEL_AUCTION__MIN_DURATION_S=1 \
    GAVEL_AUCTION__EXTEND_WINDOW_S=5 GAVEL_AUCTION__EXTEND_BY_S=5 GAVEL_LOG__FILTER=warn \
        taskset -c "$SERVER_CPU" "${GAVEL_BIN:-$BIN/gavel}" serve --listen "127.0.0.1:$GPORT" \
        --redis "redis://127.0.0.1:$RPORT/" >"$OUT/gavel.log" 2>&1 &
    SETUP=api ;;
floor)
    taskset -c "$SERVER_CPU" "$BIN/gavel-echo" --listen "127.0.0.1:$GPORT" \
        --redis "redis://127.0.0.1:$RPORT/" --fanout >"$OUT/gavel.log" 2>&1 &
    SETUP=none ;;
esac
GPID=$!
trap 'kill $GPID $RPID 2>/dev/null || true' EXIT
sleep 1
GAVEL_ADMIN_TOKEN="$ADMIN" taskset -c "$GEN_CPU" "$BIN/gavel-loadtest" "$@" \
    --url "ws://127.0.0.1:$GPORT" --setup "$SETUP" --server-pid "$GPID" --redis-pid "$RPID" \
    --quiet --out "$OUT/report.json" \
    >"$OUT/run.txt" 2>&1 &
LPID=$!
sleep "$PERF_AFTER_S"
g0=$(cpu_s "$GPID"); r0=$(cpu_s "$RPID"); t0=$(date +%s.%N)
if [ -n "$PERF_STAT" ]; then
    perf stat -e task-clock,context-switches,syscalls:sys_enter_sendto \
        -e syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_writev \
        -p "$GPID" -o "$OUT/perf-stat.raw" -- sleep "$PERF_S" 2>/dev/null
else
    # shellcheck disable=SC2086 # PERF_ARGS is a list of flags
    perf record -F 999 $PERF_ARGS -p "$GPID" -o "$OUT/perf.data" -- sleep "$PERF_S" 2>/dev/null
fi
g1=$(cpu_s "$GPID"); r1=$(cpu_s "$RPID"); t1=$(date +%s.%N)
python3 -c "w=$t1-$t0; print(f'over {w:.1f} s: $SERVER {($g1-$g0)/w:.2f} cores, redis {($r1-$r0)/w:.2f} cores; load average $(cut -d' ' -f1-3 /proc/loadavg)')" | tee "$OUT/cpu.txt"
wait "$LPID" || true
redis-cli -p "$RPORT" info commandstats >"$OUT/redis-commandstats.txt" 2>&1 || true
cat "$OUT/run.txt"
if [ -n "$PERF_STAT" ]; then
    # Per answered bid, at the run's answer rate (the window lies inside the steady run).
    python3 - "$OUT" "$PERF_S" <<'EOF' | tee "$OUT/perf-stat.txt"
import json, re, sys
out, secs = sys.argv[1], float(sys.argv[2])
rate = json.load(open(f"{out}/report.json"))["phases"][0]["ack_rate"]
print(f"over {secs:.0f} s at {rate:.0f} answered bids/s:")
for line in open(f"{out}/perf-stat.raw"):
    m = re.match(r"\s*([\d.,]+)\s+(?:msec\s+)?(task-clock|context-switches|syscalls:\w+)", line)
    if m:
        n = float(m.group(1).replace(",", ""))
        what = m.group(2).replace("syscalls:sys_enter_", "")
        if what == "task-clock":
            print(f"  CPU {n / 1000 / secs:.2f} cores, {n * 1000 / secs / rate:.1f} us per bid")
        else:
            print(f"  {what} {n / secs / rate:.2f} per bid")
EOF
    grep -E "evalsha|xadd" "$OUT/redis-commandstats.txt" | cut -d, -f1-3 || true
else
    perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
        | grep -E '^ +[0-9.]+%' | head -n 60 >"$OUT/perf-top.txt" || true
    echo "profile: $OUT/perf-top.txt"
fi
