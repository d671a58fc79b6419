# Sourced by failover.sh, crossnode.sh and scaleout.sh: a cluster of `gavel node`s on a
# Redis of the run's own (servers.sh's start_redis: free port, AOF), its config file, and
# waiting for it to serve every market. Expects ROOT and OUT.
# shellcheck source=loadtest/servers.sh
source "$ROOT/loadtest/servers.sh"

NODE_PIDS=()   # by node index
NODE_PORTS=()  # front door port, by node index
NODE_IDS=()    # node id, by node index

# cluster_config FILE MARKET... : a config with [cluster] markets = MARKET..., the first
# the default; cities of config/default.toml whose market is not among them go to the
# first (the config check refuses a city of an unknown market).
cluster_config() {
    local file="$1"; shift
    python3 - "$ROOT/config/default.toml" "$file" "$@" <<'PY'
import sys, tomllib
default, out, markets = sys.argv[1], sys.argv[2], sys.argv[3:]
cities = tomllib.load(open(default, "rb"))["cluster"]["cities"]
with open(out, "w") as f:
    f.write("[cluster]\nmarkets = [%s]\n" % ", ".join('"%s"' % m for m in markets))
    f.write('default_market = "%s"\n\n[cluster.cities]\n' % markets[0])
    for c, m in cities.items():
        f.write('"%s" = "%s"\n' % (c, m if m in markets else markets[0]))
PY
}

# The markets of a run of N markets: the default four first, then m5, m6 ...
market_names() {
    local n="$1" names=(north east south west) out=() i
    for ((i = 0; i < n; i++)); do
        if ((i < 4)); then out+=("${names[$i]}"); else out+=("m$((i + 1))"); fi
    done
    echo "${out[@]}"
}

# `gavel node` with the per-dealer limits lifted (as compare.sh runs `gavel serve`), on
# the server's core; ARGS follow.
GAVEL_NODE=(env GAVEL_GATEWAY__BID_RATE_PER_S=10000000 GAVEL_GATEWAY__BID_BURST=10000000
    GAVEL_GATEWAY__MAX_INFLIGHT_BIDS=100000 GAVEL_AUCTION__MIN_DURATION_S=1
    taskset -c "$SERVER_CPU" "$GAVEL" node)

# start_node I CONFIG: node I (id n<I>) on its front door port (chosen once, kept across
# restarts), logging to $OUT/node-<I>.log (appended).
start_node() {
    local i="$1" config="$2"
    if [ -z "${NODE_PORTS[$i]:-}" ]; then NODE_PORTS[$i]="$(free_port)"; fi
    NODE_IDS[$i]="n$i"
    "${GAVEL_NODE[@]}" --config "$config" --redis "redis://127.0.0.1:$REDIS_PORT/" \
        --listen "127.0.0.1:${NODE_PORTS[$i]}" --node-id "n$i" \
        </dev/null >>"$OUT/node-$i.log" 2>&1 &
    NODE_PIDS[$i]=$!
}

# front I: node I's front door URL.
front() { echo "http://127.0.0.1:${NODE_PORTS[$1]}"; }

# cluster_map I: the map from node I's front door (empty if it does not answer).
cluster_map() { curl -s --max-time 1 "$(front "$1")/v1/cluster" || true; }

# wait_balanced I NODES [SECONDS]: until node I's map shows NODES live nodes, every market
# served, each node serving floor or ceil of markets / NODES (what placement promises),
# and that same map for 1 s (a hand-over that the last join started has finished).
wait_balanced() {
    local i="$1" nodes="$2" secs="${3:-30}" t sig last="" since=0
    for ((t = 0; t < secs * 10; t++)); do
        sig="$(cluster_map "$i" | python3 -c '
import json, sys
try:
    m = json.load(sys.stdin)
except Exception:
    sys.exit(0)
nodes = int(sys.argv[1])
if len(m["nodes"]) != nodes or any(x["url"] is None for x in m["markets"]):
    sys.exit(0)
per = {}
for x in m["markets"]:
    per[x["node"]] = per.get(x["node"], 0) + 1
k = len(m["markets"])
lo, hi = k // nodes, -(-k // nodes)
if sum(1 for v in per.values() if v > 0) == min(nodes, k) and all(lo <= v <= hi for v in per.values()):
    print(" ".join(x["market"] + "=" + x["url"] for x in m["markets"]))
' "$nodes")"
        if [ -n "$sig" ] && [ "$sig" = "$last" ]; then
            since=$((since + 1))
            [ "$since" -ge 10 ] && return 0
        else
            since=0
        fi
        last="$sig"
        sleep 0.1
    done
    echo "the cluster did not balance over $nodes nodes in ${secs} s: $(cluster_map "$i")" >&2
    return 1
}

# owner_of I MARKET: the node id serving MARKET in node I's map.
owner_of() {
    cluster_map "$1" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(next(x["node"] or "-" for x in m["markets"] if x["market"] == sys.argv[1]))' "$2"
}

# stop_cluster: TERM every node (a clean hand-over each), then wait for them.
stop_cluster() {
    local p
    for p in "${NODE_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${NODE_PIDS[@]}"; do stop "$p"; done
    NODE_PIDS=()
}

# replay_all CONFIG OUTFILE: `gavel replay --verify --all-markets` of the run's Redis.
replay_all() {
    "$GAVEL" replay --verify --all-markets --config "$1" \
        --redis "redis://127.0.0.1:$REDIS_PORT/" >"$2" 2>&1
}

# cpu_of PID...: utime + stime of the processes, seconds (ticks / CLK_TCK).
cpu_of() {
    local hz; hz="$(getconf CLK_TCK)"
    local p t=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    awk -v t="$t" -v hz="$hz" 'BEGIN {printf "%.2f\n", t / hz}'
}
