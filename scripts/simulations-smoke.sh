#!/usr/bin/env bash
# Runs every scenario in simulations/scenarios at a small size (propagation with 30 nodes instead
# of 100; the others are 20-30 nodes already) and fails on the first failed check.
# cheap-blocks-and-timestamp-walk (issue #14 items 1 and 4) runs at its own size: 20 nodes, 30 s.
# Results go to target/sim/ (under the repository, whatever CARGO_TARGET_DIR says): <scenario>-n<nodes>-s<seed>/ (CSV, PNG, summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."
# --workspace --all-targets: the same feature set as `cargo test --release --workspace`, so nothing
# is compiled a second time after the test run.
cargo build --release --workspace --all-targets
for f in simulations/scenarios/*.toml; do
    name=$(basename "$f" .toml)
    args=()
    if [ "$name" = propagation ]; then
        args=(--nodes 30)
    fi
    echo "--- $name"
    "${CARGO_TARGET_DIR:-target}/release/vision-sim" run "$f" "${args[@]}"
done
