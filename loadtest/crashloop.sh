#!/usr/bin/env bash
# A crash loop: gavel killed with SIGKILL under load CRASHES times in a row, on the file
# journal and on the Redis journal, restarted each time. Reports each restart's time
# (the process started → its port accepts connections: gavel binds only once the book
# is recovered), first / median / last / max, and the commands in the journal at the end.
# After every restart, `gavel replay --verify` of the journal and the check that every bid
# acknowledged before the kill is in it (`gavel-loadtest verify --after-crash`).
#
#   loadtest/crashloop.sh OUTDIR
#
# Knobs (environment): JOURNALS="file redis" CRASHES=30 RATE=2500 KILL_AFTER_S=2 (of
# bidding) DEALERS=40 AUCTIONS=20 FSYNC=everysec (Redis) SERVER_CPU=0 GEN_CPU=1
# GAVEL_BIN=PATH; GAVEL_ENGINE__SNAPSHOT_AFTER_REPLAY_COMMANDS=0 shows the loop without
# the snapshot after a long replay. Needs the release build, redis-server, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$1"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
# shellcheck source=loadtest/servers.sh
source "$ROOT/loadtest/servers.sh"
JOURNALS="${JOURNALS:-file redis}"; CRASHES="${CRASHES:-30}"; RATE="${RATE:-2500}"
KILL_AFTER_S="${KILL_AFTER_S:-2}"; DEALERS="${DEALERS:-40}"; AUCTIONS="${AUCTIONS:-20}"
FSYNC="${FSYNC:-everysec}"
GPORT="$(free_port)"
GPID=""; REDIS_PID=""
trap 'kill -KILL $GPID 2>/dev/null; kill $REDIS_PID 2>/dev/null || true' EXIT

# timed_start LOG ARGS...: starts gavel (serve ARGS) and prints "PID MS": its pid and the
# milliseconds from the spawn until its port accepted a connection (polled every 0.5 ms).
timed_start() {
    local log="$1"; shift
    python3 - "$GPORT" "$log" "${GAVEL_SERVE[@]}" --listen "127.0.0.1:$GPORT" "$@" <<'PY'
import socket, subprocess, sys, time
port, log, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(log, "w"),
                     stderr=subprocess.STDOUT, start_new_session=True)
while True:
    if p.poll() is not None:
        print(p.pid, -1); sys.exit(0)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
        break
    except OSError:
        time.sleep(0.0005)
print(p.pid, f"{(time.monotonic() - t0) * 1000:.1f}")
PY
}

bids() {
    curl -s "http://127.0.0.1:$GPORT/metrics" | awk '/^gavel_bids_total/ {s += $2} END {print s + 0}'
}

for journal in $JOURNALS; do
    dir="$OUT/$journal"; rm -rf "$dir"; mkdir -p "$dir"
    if [ "$journal" = redis ]; then
        start_redis "$dir/redis" "$FSYNC"
        # A killed engine's lease outlives it by lease_ttl_ms; each restart waits for it
        # to lapse before the clock starts, so the figure is the restart's own.
        export GAVEL_STORE__LEASE_TTL_MS=2000
        where=(--redis "redis://127.0.0.1:$REDIS_PORT/")
    else
        where=(--data "$dir/data")
    fi
    : >"$dir/restarts.txt"
    for life in $(seq 0 "$CRASHES"); do
        if [ "$journal" = redis ]; then
            while [ "$(redis-cli -p "$REDIS_PORT" exists gavel:lease)" != 0 ]; do sleep 0.05; done
        fi
        read -r GPID ms < <(timed_start "$dir/gavel-$life.log" "${where[@]}")
        if [ "$ms" = -1 ]; then echo "gavel exited at start $life: see $dir/gavel-$life.log"; exit 1; fi
        if [ "$life" -gt 0 ]; then
            # The journal now, against the run killed before this start.
            check="$(verify_run "$dir/run-$((life - 1)).json" "${where[@]}" --after-crash \
                | tr '\n' ' ')"
            commands="$(grep -oE "replayed [0-9]+ commands" "$dir/run-$((life - 1)).digests" \
                | grep -oE "[0-9]+")"
            snaps="$(grep -c "snapshot saved" "$dir/gavel-$((life - 1)).log" || true)"
            echo "restart $life: ${ms} ms; journal $commands commands; $snaps snapshots saved in the life before; $check" \
                | tee -a "$dir/restarts.txt"
            grep -q "all agree with the acknowledged bids" <<<"$check" || { echo "CHECK FAILED"; exit 1; }
        fi
        [ "$life" -eq "$CRASHES" ] && break
        b0="$(bids)"
        gen steady --url "ws://127.0.0.1:$GPORT" --dealers "$DEALERS" --auctions "$AUCTIONS" \
            --rate "$RATE" --duration-s $((KILL_AFTER_S + 2)) --drain-s 0.5 --quiet \
            --out "$dir/run-$life.json" >"$dir/run-$life.txt" 2>&1 &
        lpid=$!
        # The kill comes KILL_AFTER_S into the bidding (the setup's commands come first).
        for _ in $(seq 1 400); do [ "$(bids)" -gt "$b0" ] && break; sleep 0.05; done
        sleep "$KILL_AFTER_S"
        kill -KILL "$GPID"
        wait "$lpid" || true
    done
    stop "$GPID"; GPID=""
    if [ -n "$REDIS_PID" ]; then stop "$REDIS_PID"; REDIS_PID=""; fi
    # First, median, last and max of the restarts (life 0 is the first start, not a restart).
    grep -oE "^restart [0-9]+: [0-9.]+" "$dir/restarts.txt" | awk '{print $3}' \
        | python3 -c 'import sys, statistics as s
t = [float(x) for x in sys.stdin]
print(f"{len(t)} restarts: first {t[0]:.1f} ms, median {s.median(t):.1f}, last {t[-1]:.1f}, max {max(t):.1f}")' \
        | sed "s/^/$journal journal: /" | tee -a "$OUT/summary.txt"
    tail -n 1 "$dir/restarts.txt" | grep -oE "journal [0-9]+ commands" \
        | sed "s/^/$journal: at the end, /" | tee -a "$OUT/summary.txt"
done
