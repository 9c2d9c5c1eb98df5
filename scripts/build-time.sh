#!/usr/bin/env bash
# Build time of the node binary at two commits (default: BEFORE=a8f8224, AFTER=HEAD), each in a
# worktree and an empty target dir of its own: a clean release build, then an incremental one
# after appending a comment to the file given for that side (the network loop by default).
#   scripts/build-time.sh [BEFORE [AFTER]]
set -eu
cd "$(dirname "$0")/.."
BEFORE=${1:-a8f8224}
AFTER=${2:-HEAD}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/before" 2>/dev/null; git worktree remove --force "$work/after" 2>/dev/null; rm -rf "$work"' EXIT
for side in before after; do
    rev=$BEFORE; [ $side = after ] && rev=$AFTER
    git worktree add -q "$work/$side" "$rev"
    file=src/p2p/service.rs
    [ -f "$work/$side/$file" ] || file=crates/p2p/src/service/mod.rs
    ( cd "$work/$side"
      export CARGO_TARGET_DIR=$work/target-$side
      s=$(date +%s.%N); cargo build -q --release --bin vision-node; e=$(date +%s.%N)
      echo "$side ($rev) clean release: $(echo "$e - $s" | bc) s"
      echo "// touched" >>"$file"
      s=$(date +%s.%N); cargo build -q --release --bin vision-node; e=$(date +%s.%N)
      echo "$side ($rev) incremental release after editing $file: $(echo "$e - $s" | bc) s" )
done
