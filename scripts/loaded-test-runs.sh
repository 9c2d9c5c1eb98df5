#!/usr/bin/env bash
# The integration suite (tests/it, the plain run) N times in a row (default 10) while two busy
# loops keep both cores loaded; prints each run's result line and every test that failed, and keeps
# the whole output of a failed run in $OUT (default ${CARGO_TARGET_DIR:-target}/loaded-runs/run-I.log).
#   scripts/loaded-test-runs.sh [N]        (builds the test binary first)
set -u
cd "$(dirname "$0")/.."
N=${1:-10}
OUT=${OUT:-${CARGO_TARGET_DIR:-target}/loaded-runs}
mkdir -p "$OUT"
cargo test --release --test it --no-run >/dev/null 2>&1 || { echo "build failed"; exit 1; }
BIN=$(cargo test --release --test it --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json, sys
msgs = [json.loads(l) for l in sys.stdin]
print([m["executable"] for m in msgs if m.get("executable") and m["target"]["name"] == "it"][-1])')
bash -c 'while :; do :; done' & L1=$!
bash -c 'while :; do :; done' & L2=$!
trap 'kill $L1 $L2 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$N"); do
    start=$(date +%s)
    log=$(mktemp)
    "$BIN" >"$log" 2>&1 || { failed=$((failed + 1)); tail -n 5 "$log"; cp "$log" "$OUT/run-$i.log"; }
    echo "run $i: $(( $(date +%s) - start )) s: $(grep -E '^test result' "$log")"
    grep -E '^test .* FAILED$' "$log"
    rm -f "$log"
done
echo "$failed of $N runs failed"
