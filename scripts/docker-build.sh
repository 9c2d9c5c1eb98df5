#!/usr/bin/env bash
# Builds the vision-node image, choosing how the binary is made:
#   scripts/docker-build.sh [TAG]            # default tag vision-node:local
# - `rust`: the Dockerfile's Rust build stage compiles the binary inside Docker; chosen by `auto`
#   when the Rust base image (RUST_IMAGE, default rust:1.95-bookworm) is present locally;
# - `host`: deploy/docker/Dockerfile.host-binary around a static binary built on the host (the
#   only way on machines without an image registry: nothing is pulled). The binary is
#   $CARGO_TARGET_DIR/static/x86_64-unknown-linux-gnu/release/vision-node (CARGO_TARGET_DIR
#   defaults to target/), built here with cargo unless it exists and DOCKER_BUILD_SKIP_CARGO=1.
# Environment: DOCKER_BUILD_MODE=auto|rust|host (default auto), RUST_IMAGE, DOCKER_BUILD_SKIP_CARGO=1,
# VERSION_SUFFIX (appended to the version label, e.g. +rc1).
# Labels: VERSION from Cargo.toml, COMMIT from git (with -dirty when the tree has changes), CREATED.
# Both Dockerfiles' runtime stages must be the same text: checked first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TAG=${1:-vision-node:local}
MODE=${DOCKER_BUILD_MODE:-auto}
RUST_IMAGE=${RUST_IMAGE:-rust:1.95-bookworm}
TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
STATIC_DIR=$TARGET_DIR/static
BIN=$STATIC_DIR/$TRIPLE/release/vision-node
fail() { echo "FAIL: $*" >&2; exit 1; }
# The classic builder (no buildx on these machines; it also builds offline): its output only on failure.
quiet_build() {
    local out
    out=$(DOCKER_BUILDKIT=0 docker build -q "$@" 2>&1) || { echo "$out" >&2; fail "docker build $*"; }
}

runtime_stage() { sed -n '/^# ---- runtime image/,$p' "$1"; }
diff <(runtime_stage Dockerfile) <(runtime_stage deploy/docker/Dockerfile.host-binary) >/dev/null \
    || fail "the runtime stages of Dockerfile and deploy/docker/Dockerfile.host-binary differ"
[ -n "$(runtime_stage Dockerfile)" ] || fail "no '# ---- runtime image' stage in Dockerfile"

if [ "$MODE" = auto ]; then
    if docker image inspect "$RUST_IMAGE" >/dev/null 2>&1; then MODE=rust; else MODE=host; fi
    echo "docker-build: $RUST_IMAGE $( [ "$MODE" = rust ] && echo is || echo is not ) present locally: $MODE build"
fi

VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)${VERSION_SUFFIX:-}
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$COMMIT" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    COMMIT=$COMMIT-dirty
fi
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
args=(--build-arg "VERSION=$VERSION" --build-arg "COMMIT=$COMMIT" --build-arg "CREATED=$CREATED" -t "$TAG")

case "$MODE" in
rust)
    quiet_build "${args[@]}" --build-arg "RUST_IMAGE=$RUST_IMAGE" -f Dockerfile .
    ;;
host)
    if [ "${DOCKER_BUILD_SKIP_CARGO:-0}" = 1 ] && [ -x "$BIN" ]; then
        echo "docker-build: reusing $BIN"
    else
        echo "docker-build: building the static binary in $STATIC_DIR"
        CARGO_TARGET_DIR=$STATIC_DIR RUSTFLAGS='-C target-feature=+crt-static' \
            cargo build --release --target "$TRIPLE" --bin vision-node || fail "cargo build of the static binary"
    fi
    [ -x "$BIN" ] || fail "no binary at $BIN"
    linkage=$(ldd "$BIN" 2>&1 || true)
    grep -Eq 'not a dynamic executable|statically linked' <<<"$linkage" \
        || fail "$BIN is dynamically linked: $(tr '\n' ' ' <<<"$linkage")"
    # A context of its own (the binary may live outside the repository, CARGO_TARGET_DIR): the
    # runtime stage's rootfs and the binary at the path the Dockerfile expects.
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/vision-image.XXXXXX")
    trap 'rm -rf "$ctx"' EXIT
    mkdir -p "$ctx/deploy/docker" "$ctx/target/static/$TRIPLE/release"
    cp -a deploy/docker/rootfs "$ctx/deploy/docker/"
    cp "$BIN" "$ctx/target/static/$TRIPLE/release/vision-node"
    build_id=$$-$(date +%s%N)
    quiet_build "${args[@]}" --build-arg "BUILD_ID=$build_id" -f deploy/docker/Dockerfile.host-binary "$ctx"
    # The binary stage's untagged images (classic builder cache) of this build only.
    for i in $(docker images -q --filter dangling=true --filter "label=vision.build-id=$build_id"); do
        docker rmi "$i" >/dev/null 2>&1 || true
    done
    ;;
*) fail "DOCKER_BUILD_MODE must be auto, rust or host, not '$MODE'" ;;
esac
echo "docker-build: $TAG built ($MODE; version $VERSION, commit $COMMIT; $(docker image inspect -f '{{.Size}}' "$TAG") bytes)"
