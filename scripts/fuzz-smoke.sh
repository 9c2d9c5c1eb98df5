#!/usr/bin/env bash
# Fuzz smoke (issue #5, fuzz/README.md): builds every cargo-fuzz target in fuzz/ once (AddressSanitizer,
# optimised, debug assertions and overflow checks on), then runs each for FUZZ_SECONDS (default 60)
# on a copy of its corpus in fuzz/corpus/<target>/, so the repository's corpus is never modified.
# Fails if any target finds a crash, a timeout or an out-of-memory input; the input is left in
# fuzz/artifacts/<target>/ and printed as hex. Prints executions and coverage per target.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS (space-separated subset), FUZZ_SANITIZER
# (address, the default, or none). The toolchain is stable: RUSTC_BOOTSTRAP=1 lets it take the
# nightly-only flags cargo-fuzz passes (-Zsanitizer, sanitizer coverage options).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# Target and its -max_len: small for the fixed-size decoders, 1 MiB where blocks and message
# sequences go (the decoders' own caps are larger still; libFuzzer grows lengths gradually).
declare -A max_len=(
    [transaction]=4096
    [gossip_tx_batch]=65536
    [sync_request]=4096
    [sync_response]=65536
    [address]=4096
    [block]=1048576
    [peer_messages]=1048576
)
all=(transaction block sync_request sync_response gossip_tx_batch address peer_messages)
read -r -a targets <<<"${FUZZ_TARGETS:-${all[*]}}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

host=$(rustc -vV | sed -n 's/^host: //p')
start=$(date +%s)
# One build for all targets (the library, libp2p included, is compiled with instrumentation once).
cargo fuzz build -O --debug-assertions --sanitizer "$sanitizer" --target "$host"
echo "fuzz build: $(($(date +%s) - start)) s"
# cargo puts the fuzz workspace's build in fuzz/target, or in CARGO_TARGET_DIR when that is set.
bin=${CARGO_TARGET_DIR:-fuzz/target}/$host/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
    len=${max_len[$t]:?unknown fuzz target $t}
    mkdir -p "$work/$t" "fuzz/artifacts/$t"
    cp -r "fuzz/corpus/$t/." "$work/$t/"
    log="$work/$t.log"
    echo "--- $t: ${seconds} s, max_len $len, $(find "fuzz/corpus/$t" -type f | wc -l) corpus files"
    rc=0
    "$bin/$t" "$work/$t" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$len" -timeout=120 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    final=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|pulse|NEW|REDUCE)' "$log" | tail -n 1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, features \2, corpus \3/p' <<<"$final")
    line="$t: ${execs:-?} executions, ${cov:-no coverage line}"
    summary+=("$line")
    echo "$line"
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        echo "!!! $t failed (exit $rc); end of its log:"
        tail -n 60 "$log"
        for f in "fuzz/artifacts/$t"/*; do
            [ -f "$f" ] || continue
            echo "!!! input $f ($(stat -c %s "$f") bytes), hex (first 4 KiB):"
            head -c 4096 "$f" | od -An -v -tx1 | tr -d ' \n' | fold -w 128
            echo
        done
    fi
done

echo
echo "=== fuzz smoke summary (${seconds} s per target, sanitizer $sanitizer, $(($(date +%s) - start)) s in all)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz smoke FAILED: ${failed[*]} (inputs in fuzz/artifacts/; reproduce with" \
        "RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>)"
    exit 1
fi
echo "fuzz smoke passed"
