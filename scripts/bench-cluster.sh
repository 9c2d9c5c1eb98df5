#!/usr/bin/env bash
# Benchmarks 4 (end to end), 7 (peers) and 5 (propagation, the 3-node part) of issue #6 on a 3-node
# loopback cluster of real `vision-node run` processes, all on this machine. Not run by CI: it is a
# measurement (numbers and the command lines used are in docs/performance.md, sections "End to
# end", "Peers" and "Propagation").
#
#   scripts/bench-cluster.sh            # from the repository root or anywhere else
#
# 1. builds the release binary (skip with BENCH_SKIP_BUILD=1);
# 2. writes a genesis funding BENCH_ACCOUNTS deterministic bench accounts
#    (`vision-bench load --write-genesis`), target block time BENCH_BLOCK_MS;
# 3. starts 3 nodes on 127.0.0.1 (node 0 is the bootnode; the first BENCH_MINERS nodes mine with one
#    thread each; every node has --mempool-max-txs BENCH_MEMPOOL and --max-peers 1100) and waits until
#    all of them are connected and at height >= BENCH_WARMUP_BLOCKS (the difficulty retarget has
#    settled);
# 4. `vision-bench load` offers BENCH_TPS transfers/s for BENCH_DURATION s, spread over the 3
#    APIs, and prints its table (with each node's CPU by thread, RSS and metrics over the window);
# 5. waits (at most 90 s) for node 0's pool to empty, restarts node 1 (same data dir, so its RSS and
#    pool start clean) and waits until it is back on node 0's tip, then `vision-bench peers`
#    holds BENCH_PEER_STEPS connections to node 1 (a non-mining node that imports every block from
#    the network) and prints its table;
# 6. `vision-bench propagation` over the 3 APIs for BENCH_PROP_BLOCKS blocks twice: with no
#    transactions (header-only blocks), then with `bench load` sending BENCH_PROP_TPS transfers/s in
#    the background (started first; the measurement begins once node 0's pool has transactions, and
#    the load keeps running through the raw gossipsub phase so both phases share the machine with
#    the same background work; the load is stopped afterwards and its report discarded). With the
#    default BENCH_MINERS=1 every block comes from node 0; BENCH_MINERS=3 gives blocks from every
#    node (and fork races, counted as missed where a block lost);
# 7. stops the nodes (SIGTERM, then SIGKILL) and removes the temp dir, also on failure or Ctrl-C.
#
# Before each benchmark it prints the busiest other processes on the machine (CPU over 3 s), since
# other builds and tests share the cores.
#
# Environment (defaults in brackets): BENCH_TPS [10000], BENCH_DURATION [30], BENCH_ACCOUNTS [5000],
# BENCH_SENDERS [128], BENCH_BATCH [1: one transfer per POST /v1/txs; more: groups through
# POST /v1/txs/batch], BENCH_BLOCK_MS [500], BENCH_DIFFICULTY [2097152], BENCH_MEMPOOL [300000],
# BENCH_MINERS [1], BENCH_WARMUP_BLOCKS [30], BENCH_PEER_STEPS [0,250,500,1000],
# BENCH_PEER_DURATION [20], BENCH_PROP_BLOCKS [60], BENCH_PROP_TPS [2000; 0 skips the run with
# load], BENCH_MINER_NICE [unset: miner threads at normal priority; a value renices the miner
# threads, e.g. 19], BENCH_PORT_BASE [27000], BENCH_ONLY [load|peers|propagation: run one],
# BENCH_OUT [a directory to copy the tables and node logs to], BENCH_KEEP=1 [keep the temp dir].
set -euo pipefail
export LC_ALL=C

cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/vision-node
BENCH=$TARGET_DIR/release/vision-bench # the measurement tools (crates/tools)
TPS=${BENCH_TPS:-10000}
DURATION=${BENCH_DURATION:-30}
ACCOUNTS=${BENCH_ACCOUNTS:-5000}
SENDERS=${BENCH_SENDERS:-128}
BATCH=${BENCH_BATCH:-1}
BLOCK_MS=${BENCH_BLOCK_MS:-500}
DIFFICULTY=${BENCH_DIFFICULTY:-2097152}
MEMPOOL=${BENCH_MEMPOOL:-300000}
MINERS=${BENCH_MINERS:-1}
WARMUP=${BENCH_WARMUP_BLOCKS:-30}
PEER_STEPS=${BENCH_PEER_STEPS:-0,250,500,1000}
PEER_DURATION=${BENCH_PEER_DURATION:-20}
PROP_BLOCKS=${BENCH_PROP_BLOCKS:-60}
PROP_TPS=${BENCH_PROP_TPS:-2000}
PORT_BASE=${BENCH_PORT_BASE:-27000}
ONLY=${BENCH_ONLY:-}
NODES=3
MAX_PEERS=1100 # 1,000 bench peers + the cluster + min_outbound_peers (8) reserved slots
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vision-bench.XXXXXX")
PIDS=()
LOAD_PID=

log() { echo "[bench-cluster $(date +%H:%M:%S)] $*" >&2; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$LOAD_PID" ]; then kill -TERM "$LOAD_PID" 2>/dev/null || true; fi
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        for i in $(seq 0 $((NODES - 1))); do
            [ -f "$TMP/n$i.log" ] && { echo "--- last lines of node $i ---" >&2; tail -n 15 "$TMP/n$i.log" >&2; }
        done
    fi
    if [ -n "${BENCH_OUT:-}" ]; then
        mkdir -p "$BENCH_OUT"
        cp "$TMP"/*.md "$TMP"/*.log "$BENCH_OUT"/ 2>/dev/null || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

api() { echo "http://127.0.0.1:$((PORT_BASE + 10 * $1))"; }
metrics() { echo "http://127.0.0.1:$((PORT_BASE + 10 * $1 + 2))"; }
p2p_port() { echo $((PORT_BASE + 10 * $1 + 3)); }

# GET a JSON field of /v1/status (number or string) without jq.
status_field() {
    curl -sf --max-time 5 "$(api "$1")/v1/status" | tr ',' '\n' | grep "\"$2\"" | head -n1 | sed 's/.*://; s/"//g; s/}//g'
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then log "timed out after ${secs}s waiting for $what"; return 1; fi
        sleep 0.5
    done
}

# The busiest processes outside the cluster and this script over 3 s, with their CPU in % of one core.
others_cpu() {
    local ours=" ${PIDS[*]} $$ "
    snap() { for f in /proc/[0-9]*/stat; do awk '{ sub(/^.*\) /, ""); print FILENAME, $12 + $13 }' "$f" 2>/dev/null; done; }
    local a b
    a=$(snap)
    sleep 3
    b=$(snap)
    echo "other processes, CPU over 3 s (% of one core; the machine has $(nproc) cores):"
    join <(echo "$a" | sort) <(echo "$b" | sort) | awk -v ours="$ours" '{
        split($1, p, "/"); pid = p[3]; d = ($3 - $2) / 3;
        if (index(ours, " " pid " ") == 0 && d > 0) { total += d; print d, pid }
    } END { print total + 0, "total" }' | sort -rn | head -n 7 | while read -r pct pid; do
        if [ "$pid" = total ]; then
            printf '  all others: %.0f%%\n' "$pct"
        else
            printf '  %.0f%% pid %s %s\n' "$pct" "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)"
        fi
    done
}

ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building the release binaries"
    cargo build --release -p vision-node -p vision-tools --bin vision-node --bin vision-bench
fi
[ -x "$BIN" ] || { log "no binary at $BIN"; exit 1; }
[ -x "$BENCH" ] || { log "no binary at $BENCH"; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
echo "tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"

GENESIS=$TMP/genesis.toml
"$BENCH" load --write-genesis "$GENESIS" --accounts "$ACCOUNTS" --target-block-time-ms "$BLOCK_MS" \
    --initial-difficulty "$DIFFICULTY" >/dev/null

"$BIN" keygen --out "$TMP/n0.key" >"$TMP/n0.id"
BOOT="/ip4/127.0.0.1/tcp/$(p2p_port 0)/p2p/$(cat "$TMP/n0.id")"
for i in $(seq 0 $((NODES - 1))); do
    mine=false
    [ "$i" -lt "$MINERS" ] && mine=true
    args=(run --data-dir "$TMP/n$i" --genesis "$GENESIS" --log-format json
        --api-addr "127.0.0.1:$((PORT_BASE + 10 * i))" --admin-addr "127.0.0.1:$((PORT_BASE + 10 * i + 1))"
        --metrics-addr "127.0.0.1:$((PORT_BASE + 10 * i + 2))" --listen "/ip4/127.0.0.1/tcp/$(p2p_port "$i")"
        --mine "$mine" --mine-threads 1 --mempool-max-txs "$MEMPOOL" --max-peers "$MAX_PEERS")
    if [ "$i" -eq 0 ]; then args+=(--node-key "$TMP/n0.key"); else args+=(--bootstrap "$BOOT"); fi
    echo "node $i: vision-node ${args[*]}" >>"$TMP/commands.txt"
    [ "$i" -eq 1 ] && NODE_ARGS1=("${args[@]}")
    RUST_LOG=${RUST_LOG:-info} "$BIN" "${args[@]}" 2>"$TMP/n$i.log" >/dev/null &
    PIDS+=($!)
done
log "nodes started (pids ${PIDS[*]}; logs in $TMP)"
for i in $(seq 0 $((NODES - 1))); do
    wait_for 30 "node $i's API" status_field "$i" height
done
all_connected() { for i in $(seq 0 $((NODES - 1))); do [ "$(status_field "$i" peers)" -ge 1 ] || return 1; done; }
wait_for 60 "the nodes to connect" all_connected
all_warm() { for i in $(seq 0 $((NODES - 1))); do [ "$(status_field "$i" height)" -ge "$WARMUP" ] || return 1; done; }
log "waiting for height $WARMUP on every node (difficulty retarget settling)"
wait_for 600 "height $WARMUP" all_warm
if [ -n "${BENCH_MINER_NICE:-}" ]; then
    for pid in "${PIDS[@]}"; do
        for t in /proc/"$pid"/task/*; do
            if grep -q '^miner' "$t/comm" 2>/dev/null; then renice -n "$BENCH_MINER_NICE" -p "${t##*/}" >/dev/null; fi
        done
    done
    log "miner threads reniced to $BENCH_MINER_NICE"
fi

API_LIST="$(api 0),$(api 1),$(api 2)"
METRICS_LIST="$(metrics 0),$(metrics 1),$(metrics 2)"
PID_LIST=$(IFS=,; echo "${PIDS[*]}")

want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

if want load; then
    others_cpu | tee "$TMP/others-before-load.txt"
    log "bench load: $TPS tx/s for $DURATION s from $ACCOUNTS accounts over 3 APIs"
    echo "vision-bench load --api $API_LIST --keys-from-genesis GENESIS --tps $TPS --duration $DURATION" \
        "--senders $SENDERS --batch $BATCH --pid $PID_LIST --metrics $METRICS_LIST" >>"$TMP/commands.txt"
    "$BENCH" load --api "$API_LIST" --keys-from-genesis "$GENESIS" --tps "$TPS" --duration "$DURATION" \
        --senders "$SENDERS" --batch "$BATCH" --pid "$PID_LIST" --metrics "$METRICS_LIST" | tee "$TMP/load.md"
    others_cpu | tee "$TMP/others-after-load.txt"
    # Transfers whose predecessors never reached the miner stay pooled on the other nodes, so only
    # the miner's pool is waited for.
    pool_empty() { [ "$(status_field 0 mempool_size)" -eq 0 ]; }
    wait_for 90 "node 0's pool to empty" pool_empty || log "continuing with transactions still pooled"
fi

if want peers; then
    if want load; then
        # A fresh process for node 1, so its RSS and pool do not carry the load run (same data dir).
        log "restarting node 1"
        kill -TERM "${PIDS[1]}"
        for _ in $(seq 1 300); do kill -0 "${PIDS[1]}" 2>/dev/null || break; sleep 0.1; done
        RUST_LOG=${RUST_LOG:-info} "$BIN" "${NODE_ARGS1[@]}" 2>>"$TMP/n1.log" >/dev/null &
        PIDS[1]=$!
        wait_for 60 "node 1's API" status_field 1 height
        wait_for 60 "node 1 to reconnect" all_connected
        same_tip() { [ "$(status_field 1 tip_hash)" = "$(status_field 0 tip_hash)" ]; }
        wait_for 300 "node 1 to catch up" same_tip || log "node 1 is not on node 0's tip yet"
    fi
    COUNT=$(echo "$PEER_STEPS" | tr ',' '\n' | sort -n | tail -n1)
    others_cpu | tee "$TMP/others-before-peers.txt"
    log "bench peers: steps $PEER_STEPS against node 1 (pid ${PIDS[1]})"
    PEER_PIDS="${PIDS[1]},${PIDS[0]},${PIDS[2]}" # the target first, then the rest of the cluster
    echo "vision-bench peers --target /ip4/127.0.0.1/tcp/$(p2p_port 1) --api $(api 1) --pid $PEER_PIDS" \
        "--count $COUNT --steps $PEER_STEPS --duration $PEER_DURATION" >>"$TMP/commands.txt"
    "$BENCH" peers --target "/ip4/127.0.0.1/tcp/$(p2p_port 1)" --api "$(api 1)" --pid "$PEER_PIDS" \
        --count "$COUNT" --steps "$PEER_STEPS" --duration "$PEER_DURATION" | tee "$TMP/peers.md"
    others_cpu | tee "$TMP/others-after-peers.txt"
fi

if want propagation; then
    all_connected_to_all() { for i in $(seq 0 $((NODES - 1))); do [ "$(status_field "$i" peers)" -ge $((NODES - 1)) ] || return 1; done; }
    wait_for 60 "every node to see the other two" all_connected_to_all || log "not a full mesh; the bench reads the links"
    others_cpu | tee "$TMP/others-before-propagation.txt"
    log "bench propagation: $PROP_BLOCKS blocks without transactions"
    echo "vision-bench propagation --api $API_LIST --blocks $PROP_BLOCKS" >>"$TMP/commands.txt"
    "$BENCH" propagation --api "$API_LIST" --blocks "$PROP_BLOCKS" | tee "$TMP/propagation-empty.md"
    if [ "$PROP_TPS" -gt 0 ]; then
        # Long enough for both phases; stopped as soon as the propagation bench is done.
        LOAD_SECS=$((PROP_BLOCKS * BLOCK_MS * 3 / 1000 + 60))
        log "bench load at $PROP_TPS tx/s in the background, then bench propagation: $PROP_BLOCKS blocks"
        echo "vision-bench load --api $API_LIST --keys-from-genesis GENESIS --tps $PROP_TPS" \
            "--duration $LOAD_SECS --senders 32 &  # stopped after:" >>"$TMP/commands.txt"
        "$BENCH" load --api "$API_LIST" --keys-from-genesis "$GENESIS" --tps "$PROP_TPS" \
            --duration "$LOAD_SECS" --senders 32 >"$TMP/propagation-load-run.txt" 2>&1 &
        LOAD_PID=$!
        pool_busy() { [ "$(status_field 0 mempool_size)" -gt 0 ]; }
        wait_for 120 "the load to reach node 0's pool" pool_busy
        echo "vision-bench propagation --api $API_LIST --blocks $PROP_BLOCKS" >>"$TMP/commands.txt"
        "$BENCH" propagation --api "$API_LIST" --blocks "$PROP_BLOCKS" | tee "$TMP/propagation-load.md"
        kill -TERM "$LOAD_PID" 2>/dev/null || true
        wait "$LOAD_PID" 2>/dev/null || true
        LOAD_PID=
    fi
    others_cpu | tee "$TMP/others-after-propagation.txt"
fi

echo
echo "commands:"
cat "$TMP/commands.txt"
log "done"
