#!/usr/bin/env bash
# Swarm test: deploy/swarm/stack.yml on a single-node Docker Swarm, for real.
#
#   scripts/swarm-test.sh
#
# 1. joins nothing: initialises a single-node swarm (advertising 127.0.0.1) only if this engine is
#    in none, and leaves it again at the end; an engine already in a swarm must be a manager and
#    is left as it was;
# 2. builds the image from the static binary (tag A) and a second tag B (A with another version label),
#    and a Prometheus image FROM scratch around Debian's binary (scripts/monitoring-images.sh);
# 3. deploys the stack (bootnode, 3 nodes, Prometheus; Grafana scaled to 0: no image exists here);
# 4. checks, through each task's API (reached on the task's docker_gwbridge address: this
#    engine's own containers, no published port):
#    a. every replica and the bootnode reach the same tip; Prometheus (discovering tasks.node)
#       scrapes every replica;
#    b. scaled to 6 replicas: the same, 6 targets; scaled back to 3: the same, 3 targets;
#    c. a rolling update to image B (one task at a time, stop-first) while the chain keeps growing:
#       the height grows during the update, every replica ends on B with the peer id its slot had
#       (one volume per slot), and all reach the same tip;
# 5. removes the stack, its volumes, the images, and the swarm if it created it (trap EXIT).
# Prints PASS/FAIL lines with timings.
#
# Environment: SWARM_TEST_TIMEOUT (seconds per wait, default 120), SWARM_TEST_SKIP_BUILD=1 (reuse the
# static binary), SWARM_TEST_KEEP=1 (leave everything running, print how to remove it),
# CARGO_TARGET_DIR (the static binary is $CARGO_TARGET_DIR/static/..., default target/static/...).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/static/$TRIPLE/release/vision-node
TIMEOUT=${SWARM_TEST_TIMEOUT:-120}
STACK=visionswarm$$
IMAGE_A=vision-node:swarmtest$$-a
IMAGE_B=vision-node:swarmtest$$-b
PROM_IMAGE=vision-prometheus:swarmtest$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vision-swarm.XXXXXX")

START_MS=$(date +%s%3N)
now_ms() { date +%s%3N; }
since() { local d=$(($(now_ms) - $1)); printf '%d.%d' $((d / 1000)) $(((d % 1000) / 100)); }
log() { echo "[$(since "$START_MS")s] $*"; }
pass() { echo "PASS: $*"; }
FAILED=0
INITIALISED_SWARM=0
DEPLOYED=0
IMAGES=()
TIMINGS=()

dump() {
    echo "---- services ----"
    docker stack services "$STACK" 2>&1 || true
    echo "---- tasks ----"
    docker stack ps --no-trunc --format '{{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}' "$STACK" 2>&1 | head -n 40 || true
    local c
    for c in $(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK" 2>/dev/null); do
        echo "---- logs of $(docker inspect -f '{{.Name}}' "$c"), last 30 lines without \"imported block\" ----"
        docker logs --tail 1000 "$c" 2>&1 | grep -v '"message":"imported block"' | tail -n 30 || true
    done
}

cleanup() {
    local rc=$? t
    trap - EXIT INT TERM
    if [ "$rc" != 0 ] || [ "$FAILED" != 0 ]; then dump; fi
    if [ "${SWARM_TEST_KEEP:-0}" = 1 ]; then
        echo "left running; remove with: docker stack rm $STACK; docker volume rm \$(docker volume ls -q | grep '^${STACK}_'); docker rmi ${IMAGES[*]}"
        [ "$INITIALISED_SWARM" = 0 ] || echo "  and: docker swarm leave --force"
    else
        t=$(now_ms)
        if [ "$DEPLOYED" = 1 ]; then
            docker stack rm "$STACK" >/dev/null 2>&1 || true
            # Volumes can go only once their containers are gone.
            local deadline=$(($(now_ms) + 90000))
            while [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && [ "$(now_ms)" -lt "$deadline" ]; do
                sleep 1
            done
            local v
            for v in $(docker volume ls -q | grep "^${STACK}_" || true); do
                docker volume rm -f "$v" >/dev/null 2>&1 || echo "warning: could not remove volume $v"
            done
            deadline=$(($(now_ms) + 30000))
            while docker network inspect "${STACK}_vision" >/dev/null 2>&1 && [ "$(now_ms)" -lt "$deadline" ]; do sleep 1; done
        fi
        local i
        for i in "${IMAGES[@]}"; do docker rmi -f "$i" >/dev/null 2>&1 || true; done
        if [ "$INITIALISED_SWARM" = 1 ]; then
            docker swarm leave --force >/dev/null 2>&1 || echo "warning: docker swarm leave failed"
            # The bridge swarm created for its tasks' egress.
            docker network rm docker_gwbridge >/dev/null 2>&1 || true
        fi
        log "cleanup done ($(since "$t") s)"
    fi
    rm -rf "$TMP"
    if [ ${#TIMINGS[@]} -gt 0 ]; then
        echo "timings:"
        printf '  %s\n' "${TIMINGS[@]}"
    fi
    if [ "$rc" = 0 ] && [ "$FAILED" = 0 ]; then
        echo "swarm test: all checks passed in $(since "$START_MS") s"
    else
        echo "swarm test: FAILED after $(since "$START_MS") s"
        [ "$rc" != 0 ] || rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "FAIL: $*"; FAILED=1; exit 1; }
timing() { TIMINGS+=("$1: $2 s"); }

command -v docker >/dev/null 2>&1 || fail "docker not found"
command -v curl >/dev/null 2>&1 || fail "curl is needed"
command -v python3 >/dev/null 2>&1 || fail "python3 is needed"
docker info >/dev/null 2>&1 || fail "no Docker engine"

# ---- swarm ---------------------------------------------------------------------------------------

state=$(docker info --format '{{.Swarm.LocalNodeState}}')
case "$state" in
inactive)
    t=$(now_ms)
    docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null || fail "docker swarm init"
    INITIALISED_SWARM=1
    log "initialised a single-node swarm ($(since "$t") s); it is left again at the end"
    ;;
active)
    [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] \
        || fail "this engine is a swarm worker: run the test on a manager"
    log "engine already in a swarm (manager): using it, and leaving it as it is"
    ;;
*) fail "swarm state '$state': neither inactive nor active" ;;
esac

# ---- images --------------------------------------------------------------------------------------

t=$(now_ms)
if [ "${SWARM_TEST_SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ]; then export DOCKER_BUILD_SKIP_CARGO=1; fi
IMAGES+=("$IMAGE_A")
DOCKER_BUILD_MODE=host VERSION_SUFFIX=+swarmtest-a scripts/docker-build.sh "$IMAGE_A" || fail "image $IMAGE_A"
IMAGES+=("$IMAGE_B")
# B: image A with another version label (one layerless step instead of a second full build).
printf 'FROM %s\nLABEL org.opencontainers.image.version="%s"\n' "$IMAGE_A" \
    "$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}}' "$IMAGE_A" | sed 's/-a$/-b/')" \
    | DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE_B" - >/dev/null 2>&1 || fail "image $IMAGE_B"
[ "$(docker image inspect -f '{{.Id}}' "$IMAGE_A")" != "$(docker image inspect -f '{{.Id}}' "$IMAGE_B")" ] \
    || fail "images A and B are identical: the rolling update would change nothing"
IMAGES+=("$PROM_IMAGE")
scripts/monitoring-images.sh "$PROM_IMAGE" >/dev/null || fail "Prometheus image"
timing "images (2 node images + Prometheus)" "$(since "$t")"

# The image's HEALTHCHECK runs `vision-node health`. Swarm replaces tasks that never turn healthy,
# so with a binary that lacks the subcommand the health check is disabled (and said so).
OVERRIDES=()
if "$BIN" health --help >/dev/null 2>&1; then
    HEALTH=1
    log "health check: the image's HEALTHCHECK (vision-node health) is on"
else
    HEALTH=0
    cat >"$TMP/no-healthcheck.yml" <<'EOF'
version: "3.8"
services:
  bootnode:
    healthcheck:
      disable: true
  node:
    healthcheck:
      disable: true
EOF
    OVERRIDES=(-c "$TMP/no-healthcheck.yml")
    echo "NOTE: $BIN has no \`health\` subcommand yet: HEALTHCHECK disabled for this run"
fi

# ---- deploy --------------------------------------------------------------------------------------

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export VISION_IMAGE=$IMAGE_A PROMETHEUS_IMAGE=$PROM_IMAGE NODE_REPLICAS=3 GRAFANA_REPLICAS=0
PROMETHEUS_PORT=$(free_port)
GRAFANA_PORT=$(free_port)
export PROMETHEUS_PORT GRAFANA_PORT
log "deploying stack $STACK (bootnode + 3 nodes + Prometheus; Grafana at 0 replicas: no image)"
t=$(now_ms)
DEPLOYED=1
docker stack deploy --resolve-image never -c deploy/swarm/stack.yml "${OVERRIDES[@]}" "$STACK" >/dev/null 2>"$TMP/deploy.err" \
    || { cat "$TMP/deploy.err"; fail "docker stack deploy"; }

# Containers of a service (running), and their API URL on docker_gwbridge.
running() { docker ps -q --no-trunc --filter "label=com.docker.swarm.service.name=${STACK}_$1" --filter status=running; }
declare -A IP
refresh_ips() {
    local line
    IP=()
    while read -r line; do
        [ -n "$line" ] || continue
        IP[${line%% *}]=${line#* }
    done < <(docker network inspect docker_gwbridge \
        --format '{{range $id, $c := .Containers}}{{$id}} {{$c.IPv4Address}}{{"\n"}}{{end}}' 2>/dev/null | sed 's#/[0-9]*$##')
}
api() { # container path
    local ip=${IP[$1]:-}
    [ -n "$ip" ] || return 1
    curl -fsS --max-time 3 "http://$ip:$2" 2>/dev/null
}
field() { { grep -o "\"$1\":\"\{0,1\}[^\",}]*" || true; } | head -n 1 | sed "s/^\"$1\":\"\{0,1\}//"; }
slot_of() { docker inspect -f '{{index .Config.Labels "com.docker.swarm.task.name"}}' "$1" | cut -d. -f2; }

# Waits until exactly $1 node tasks and the bootnode run and all report one tip at height >= $2.
# Sets HEIGHT, TIP, CONTAINERS.
wait_converged() {
    local want=$1 min=$2 deadline c s tip ok n
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    LAST=
    while [ "$(now_ms)" -lt "$deadline" ]; do
        mapfile -t CONTAINERS < <(running node; running bootnode)
        n=${#CONTAINERS[@]}
        if [ "$n" = $((want + 1)) ]; then
            refresh_ips
            ok=1 tip= LAST=
            for c in "${CONTAINERS[@]}"; do
                if ! s=$(api "$c" 7070/v1/status); then ok=0; LAST+=" ${c:0:12}:unreachable"; continue; fi
                LAST+=" ${c:0:12}:$(field height <<<"$s")/$(field peers <<<"$s")"
                [ -n "$tip" ] || tip=$(field tip_hash <<<"$s")
                if [ "$(field tip_hash <<<"$s")" != "$tip" ] || [ "$(field height <<<"$s")" -lt "$min" ]; then ok=0; fi
                HEIGHT=$(field height <<<"$s")
            done
            if [ "$ok" = 1 ]; then TIP=$tip; return 0; fi
        else
            LAST=" $n containers running, want $((want + 1))"
        fi
        sleep 1
    done
    echo "  last seen (height/peers):$LAST"
    return 1
}

# Waits until Prometheus scrapes exactly $1 node targets, all up.
prom_targets() {
    local want=$1 deadline p r
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        p=$(running prometheus | head -n 1)
        refresh_ips
        if [ -n "$p" ] && r=$(api "$p" '9090/api/v1/query?query=count(up%7Bjob%3D%22vision-node%22%7D%3D%3D1)%20and%20count(up%7Bjob%3D%22vision-node%22%7D)%3D%3D'"$want"); then
            [ "$(python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' <<<"$r")" = "$want" ] && return 0
        fi
        sleep 2
    done
    echo "  Prometheus answer: ${r:-none}"
    return 1
}

max_height() {
    local c s h m=0
    refresh_ips
    for c in $(running node) $(running bootnode); do
        s=$(api "$c" 7070/v1/status) || continue
        h=$(field height <<<"$s")
        [ "${h:-0}" -le "$m" ] || m=$h
    done
    echo "$m"
}

# ---- a. deploy and converge ----------------------------------------------------------------------

wait_converged 3 5 || fail "a. 3 nodes + bootnode did not converge at height >= 5 within ${TIMEOUT} s"
pass "a. bootnode + 3 replicas on tip ${TIP:0:16}… at height $HEIGHT ($(since "$t") s after deploy)"
timing "deploy to 4 nodes on one tip" "$(since "$t")"
t=$(now_ms)
prom_targets 3 || fail "a. Prometheus does not scrape the 3 replicas (tasks.node)"
pass "a. Prometheus scrapes 3 node targets found through tasks.node ($(since "$t") s)"

# ---- b. scale 3 -> 6 -> 3 ------------------------------------------------------------------------

t=$(now_ms)
docker service scale -d "${STACK}_node=6" >/dev/null || fail "b. docker service scale to 6"
wait_converged 6 "$HEIGHT" || fail "b. 6 replicas did not converge within ${TIMEOUT} s"
pass "b. scaled to 6: 7 nodes on tip ${TIP:0:16}… at height $HEIGHT ($(since "$t") s)"
timing "scale 3 -> 6, converged" "$(since "$t")"
prom_targets 6 || fail "b. Prometheus does not scrape the 6 replicas"
pass "b. Prometheus scrapes 6 node targets ($(since "$t") s after scaling)"
t=$(now_ms)
docker service scale -d "${STACK}_node=3" >/dev/null || fail "b. docker service scale to 3"
wait_converged 3 "$HEIGHT" || fail "b. back at 3 replicas, the nodes did not converge within ${TIMEOUT} s"
pass "b. scaled back to 3: 4 nodes on tip ${TIP:0:16}… at height $HEIGHT ($(since "$t") s)"
timing "scale 6 -> 3, converged" "$(since "$t")"
prom_targets 3 || fail "b. Prometheus still scrapes more than 3 replicas"
pass "b. Prometheus scrapes 3 node targets again ($(since "$t") s after scaling down)"

# ---- c. rolling update ---------------------------------------------------------------------------

declare -A PEER_OF_SLOT
refresh_ips
for c in $(running node); do
    PEER_OF_SLOT[$(slot_of "$c")]=$(api "$c" 7070/v1/status | field peer_id)
done
before=$(max_height)
log "c. rolling update of ${STACK}_node to $IMAGE_B (stop-first, one at a time) at height $before"
t=$(now_ms)
# Shorter monitor and delay than the stack's (20 s, 5 s) to keep the test short.
docker service update -d --no-resolve-image --update-monitor 5s --update-delay 2s --image "$IMAGE_B" "${STACK}_node" >/dev/null \
    || fail "c. docker service update"
deadline=$(($(now_ms) + TIMEOUT * 1000 * 2))
heights=()
while :; do
    st=$(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "${STACK}_node")
    heights+=("$(max_height)")
    case "$st" in
    completed) break ;;
    rollback_*|paused) fail "c. the update ended in state '$st': $(docker service inspect -f '{{.UpdateStatus.Message}}' "${STACK}_node")" ;;
    esac
    [ "$(now_ms)" -lt "$deadline" ] || fail "c. the update did not complete within $((TIMEOUT * 2)) s (state '$st')"
    sleep 2
done
update_s=$(since "$t")
during=$(printf '%s\n' "${heights[@]}" | sort -n | tail -n 1)
log "c. update completed in $update_s s; highest height seen during it: $during (was $before; samples: ${heights[*]})"
[ "$during" -gt "$before" ] || fail "c. the chain did not grow during the rolling update ($before -> $during)"
wait_converged 3 "$during" || fail "c. after the update the nodes did not converge within ${TIMEOUT} s"
for c in $(running node); do
    img=$(docker inspect -f '{{index .Config.Labels "com.docker.swarm.task.name"}} {{.Config.Image}}' "$c")
    [[ "${img#* }" == "$IMAGE_B"* ]] || fail "c. ${img% *} still runs ${img#* }"
    slot=$(slot_of "$c")
    pid=$(api "$c" 7070/v1/status | field peer_id)
    [ "$pid" = "${PEER_OF_SLOT[$slot]:-}" ] \
        || fail "c. slot $slot came back as peer $pid, was ${PEER_OF_SLOT[$slot]:-unknown}: its volume was not kept"
done
pass "c. rolling update to $IMAGE_B in $update_s s while the chain grew $before -> $during; every slot kept its peer id; all on tip ${TIP:0:16}… at height $HEIGHT ($(since "$t") s)"
timing "rolling update (3 tasks, stop-first)" "$update_s"
[ "$HEALTH" = 1 ] || echo "NOTE: ran without HEALTHCHECK (binary without \`health\`)"
