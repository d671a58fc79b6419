# Sourced by snapsoak.sh, crashloop.sh and receipts.sh: free ports, a Redis of the run's
# own with AOF, gavel with the per-dealer limits lifted (as compare.sh runs it), the
# generator. Expects ROOT and OUT; honours SERVER_CPU, GEN_CPU, GAVEL_BIN, CARGO_TARGET_DIR.
SERVER_CPU="${SERVER_CPU:-0}"
GEN_CPU="${GEN_CPU:-1}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
GAVEL="${GAVEL_BIN:-$BIN/gavel}"
ADMIN="loadtest-$$-admin"
export GAVEL_ADMIN_TOKEN="$ADMIN"

# shellcheck source=loadtest/ports.sh
source "$ROOT/loadtest/ports.sh"

# start_redis DIR FSYNC -> REDIS_PORT REDIS_PID (appendonly yes; DIR keeps its AOF).
start_redis() {
    mkdir -p "$1"
    REDIS_PORT="$(free_port)"
    taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$1" \
        --appendonly yes --appendfsync "$2" --save "" --logfile "$1/redis.log" &
    REDIS_PID=$!
    wait_port "$REDIS_PORT"
}

# `gavel serve` pinned to the server's core, per-dealer limits lifted; ARGS follow.
GAVEL_SERVE=(env GAVEL_GATEWAY__BID_RATE_PER_S=10000000 GAVEL_GATEWAY__BID_BURST=10000000
    GAVEL_GATEWAY__MAX_INFLIGHT_BIDS=100000 GAVEL_AUCTION__MIN_DURATION_S=1
    taskset -c "$SERVER_CPU" "$GAVEL" serve)

# stop PID: TERM, then KILL after 10 s.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}

# gen ARGS...: the generator on its own core.
gen() {
    taskset -c "$GEN_CPU" "$BIN/gavel-loadtest" "$@"
}

# verify_run REPORT JOURNAL_ARGS... [-- --after-crash]: `gavel replay --verify` of the
# journal into REPORT's .digests, then the run's acknowledged bids against it. Retries
# while a stopped engine's Redis lease is still held.
verify_run() {
    local report="$1"; shift
    local digests="${report%.json}.digests" extra=()
    if [ "${*: -1}" = "--after-crash" ]; then extra=(--after-crash); set -- "${@:1:$#-1}"; fi
    for _ in $(seq 1 60); do
        if "$GAVEL" replay --verify "$@" >"$digests" 2>&1; then break; fi
        grep -q "lease is held" "$digests" || { echo "replay --verify FAILED: $(tail -n 1 "$digests")"; return 1; }
        sleep 0.5
    done
    echo "replay --verify: $(tail -n 1 "$digests")"
    "$BIN/gavel-loadtest" verify --report "$report" --digests "$digests" "${extra[@]}" | tail -n 1
}
