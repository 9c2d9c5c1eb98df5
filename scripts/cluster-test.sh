#!/usr/bin/env bash
# Cluster test: the docker-compose cluster (docker-compose.yml) with a bootnode and 4 nodes.
#
#   scripts/cluster-test.sh            # from the repository root or anywhere else
#
# 1. builds the static binary on the host (target/static; no image can be pulled, see Dockerfile)
#    and the `FROM scratch` image around it;
# 2. starts the bootnode and 4 scaled `node` replicas in a compose project of its own;
# 3. checks, through each container's API (published on a random 127.0.0.1 port):
#    a. all 5 reach the same tip at height >= 5;
#    b. a transfer signed by the host wallet and submitted to one node is mined and every node
#       shows the recipient's balance;
#    c. a node killed with SIGKILL (`docker kill`) and started again (same container, same volume)
#       rejoins and catches up;
#    d. a node cut off the compose network (`docker network disconnect`) while the others mine
#       10 blocks (it mines a fork of its own meanwhile), then reconnected, heals onto the same tip
#       as the rest, and every connection it lists afterwards is listed by the peer as well;
#    e. (monitoring profile, when Debian's prometheus binary is installed) Prometheus, in an image
#       built FROM scratch around that binary, scrapes every node; every Grafana dashboard panel's
#       query returns data from it (asked of Prometheus directly: no Grafana image exists here);
#       the VisionNodeDown alert fires when the bootnode is stopped and clears when it is back;
#    f. (when the binary has the `health` subcommand) every container's HEALTHCHECK reports healthy.
# Prints PASS/FAIL lines with timings, exits non-zero on any failure (with the nodes' last logs),
# and always removes its containers, volumes, network and image.
#
# Needs: docker with `docker compose` (v2) or `docker-compose` (v1.28+), cargo, curl.
# Traffic goes only to 127.0.0.1 (published ports) and, as a fallback, to this project's own
# containers on its private network.
#
# Environment: CLUSTER_TEST_TIMEOUT (seconds per convergence wait, default 120),
# CLUSTER_TEST_SKIP_BUILD=1 (reuse an existing target/static binary instead of running cargo),
# CLUSTER_TEST_KEEP=1 (leave the cluster running for inspection; remove it with the printed command),
# CLUSTER_TEST_NEW_IP=1 (in d, a placeholder container takes the cut-off node's address, so it
# rejoins under a new one and its old TCP connections never resume: only dead-connection detection
# can end them), CLUSTER_TEST_MONITORING=0 (skip e), CARGO_TARGET_DIR (the static binary is
# $CARGO_TARGET_DIR/static/..., default target/static/...).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
STATIC_TARGET_DIR=$TARGET_DIR/static
BIN=$STATIC_TARGET_DIR/$TRIPLE/release/vision-node
NODES=4
MIN_HEIGHT=5
PARTITION_BLOCKS=10 # blocks the connected nodes mine while one node is cut off
TIMEOUT=${CLUSTER_TEST_TIMEOUT:-120}
PROJECT=visiontest$$
IMAGE=vision-node:clustertest$$
PROM_IMAGE=vision-prometheus:clustertest$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vision-cluster.XXXXXX")

START_MS=$(date +%s%3N)
FAILED=0
UP=0
BUILT_IMAGE=0
BUILT_PROM_IMAGE=0
MONITORING=0
HEALTH=0
OVERRIDE=()
PLACEHOLDER=

now_ms() { date +%s%3N; }
since() { # seconds since $1 (ms), one decimal
    local d=$(($(now_ms) - $1))
    printf '%d.%d' $((d / 1000)) $(((d % 1000) / 100))
}
log() { echo "[$(since "$START_MS")s] $*"; }
pass() { echo "PASS: $*"; }

if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
else
    echo "FAIL: neither \`docker compose\` nor \`docker-compose\` is installed" >&2
    exit 1
fi
command -v curl >/dev/null 2>&1 || { echo "FAIL: curl is needed" >&2; exit 1; }

# The compose settings this test needs: its own image, random host ports, no automatic restarts
# (a crash must show up as a failure, and `docker kill` must leave the container stopped).
export VISION_IMAGE=$IMAGE VISION_BOOTNODE_API_PORT='' VISION_RESTART=no
export PROMETHEUS_IMAGE=$PROM_IMAGE PROMETHEUS_PORT='' GRAFANA_PORT=''
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml" "${OVERRIDE[@]}" "$@"; }

dump_logs() {
    [ "$UP" = 1 ] || return 0
    local c
    # Per container, the last 50 lines other than the per-block "imported block" lines (one or two
    # a second, they would hide everything else).
    for c in $(compose ps -q bootnode node 2>/dev/null); do
        echo "---- logs of $(docker inspect -f '{{.Name}}' "$c" | sed 's#^/##'), last 50 lines without \"imported block\" ----"
        docker logs --tail 2000 "$c" 2>&1 | grep -v '"message":"imported block"' | tail -n 50 || true
    done
    echo "---- container states ----"
    docker ps -a --filter "label=com.docker.compose.project=$PROJECT" \
        --format '{{.Names}}\t{{.Status}}' 2>&1 || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$rc" != 0 ] || [ "$FAILED" != 0 ]; then
        dump_logs
    fi
    if [ "${CLUSTER_TEST_KEEP:-0}" = 1 ] && [ "$UP" = 1 ]; then
        echo "cluster left running; remove it with:"
        [ -z "$PLACEHOLDER" ] || echo "  docker rm -f -v $PLACEHOLDER"
        echo "  VISION_IMAGE=$IMAGE PROMETHEUS_IMAGE=$PROM_IMAGE ${COMPOSE[*]} -p $PROJECT -f $ROOT/docker-compose.yml ${OVERRIDE[*]} --profile monitoring down -v && docker rmi $IMAGE $PROM_IMAGE"
    else
        if [ -n "$PLACEHOLDER" ]; then
            docker rm -f -v "$PLACEHOLDER" >/dev/null 2>&1 || true
        fi
        if [ "$UP" = 1 ]; then
            compose --profile monitoring down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
        fi
        if [ "$BUILT_IMAGE" = 1 ]; then
            docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
        fi
        if [ "$BUILT_PROM_IMAGE" = 1 ]; then
            docker rmi -f "$PROM_IMAGE" >/dev/null 2>&1 || true
        fi
    fi
    rm -rf "$TMP"
    if [ "$rc" = 0 ] && [ "$FAILED" = 0 ]; then
        echo "cluster test: all checks passed in $(since "$START_MS") s"
    else
        echo "cluster test: FAILED after $(since "$START_MS") s"
        [ "$rc" != 0 ] || rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "FAIL: $*"
    FAILED=1
    exit 1
}

# ---- build ---------------------------------------------------------------------------------------

# scripts/docker-build.sh builds the static binary in $STATIC_TARGET_DIR (unless
# CLUSTER_TEST_SKIP_BUILD=1 and it exists), checks that it is static, and builds the image around it.
log "building image $IMAGE (host binary: deploy/docker/Dockerfile.host-binary)"
t=$(now_ms)
BUILT_IMAGE=1
CARGO_TARGET_DIR=$TARGET_DIR DOCKER_BUILD_MODE=host DOCKER_BUILD_SKIP_CARGO=${CLUSTER_TEST_SKIP_BUILD:-0} \
    "$ROOT/scripts/docker-build.sh" "$IMAGE" || fail "static binary or docker build"
[ -x "$BIN" ] || fail "no binary at $BIN"
log "image built ($(since "$t") s, $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"

# The image's HEALTHCHECK runs `vision-node health`; a binary without it would only be reported
# unhealthy (compose restarts nothing for that), but check f needs it: off, and said so, without.
if "$BIN" health --help >/dev/null 2>&1; then
    HEALTH=1
else
    printf 'services:\n  bootnode:\n    healthcheck:\n      disable: true\n  node:\n    healthcheck:\n      disable: true\n' \
        >"$TMP/no-healthcheck.yml"
    OVERRIDE=(-f "$TMP/no-healthcheck.yml")
    echo "NOTE: $BIN has no \`health\` subcommand yet: HEALTHCHECK disabled, check f skipped"
fi

# Monitoring (check e): Prometheus FROM scratch around Debian's binary, when it is installed.
if [ "${CLUSTER_TEST_MONITORING:-1}" = 1 ]; then
    if command -v prometheus >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
        t=$(now_ms)
        BUILT_PROM_IMAGE=1
        "$ROOT/scripts/monitoring-images.sh" "$PROM_IMAGE" >/dev/null || fail "Prometheus image"
        MONITORING=1
        log "Prometheus image $PROM_IMAGE built ($(since "$t") s)"
    else
        echo "NOTE: no prometheus binary (apt-get install prometheus) or python3: check e skipped"
    fi
fi

# ---- cluster -------------------------------------------------------------------------------------

CLUSTER_START=$(now_ms)
UP=1
if [ "$MONITORING" = 1 ]; then
    log "starting bootnode + $NODES nodes + Prometheus (project $PROJECT, ${COMPOSE[*]})"
    compose --profile monitoring up -d --no-build --scale "node=$NODES" bootnode node prometheus || fail "compose up"
else
    log "starting bootnode + $NODES nodes (project $PROJECT, ${COMPOSE[*]})"
    compose up -d --no-build --scale "node=$NODES" bootnode node || fail "compose up"
fi

BOOT=$(compose ps -q bootnode)
mapfile -t REPLICAS < <(compose ps -q node)
[ -n "$BOOT" ] && [ "${#REPLICAS[@]}" = "$NODES" ] \
    || fail "expected 1 bootnode and $NODES nodes, got '${BOOT}' and ${#REPLICAS[@]}"
ALL=("$BOOT" "${REPLICAS[@]}")
NET=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.network=vision" --format '{{.Name}}')
[ -n "$NET" ] || fail "compose network not found"

declare -A NAME URL
name_of() { docker inspect -f '{{.Name}}' "$1" | sed 's#^/##'; }
for c in "${ALL[@]}"; do NAME[$c]=$(name_of "$c"); done

# The API URL of a container: its published 127.0.0.1 port, else its address on our own network.
refresh_url() {
    local c=$1 hp ip
    hp=$(docker port "$c" 7070/tcp 2>/dev/null | grep -m1 '^127\.0\.0\.1:' || true)
    if [ -n "$hp" ]; then
        URL[$c]=http://$hp
    else
        ip=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}" "$c" 2>/dev/null || true)
        if [ -n "$ip" ]; then URL[$c]=http://$ip:7070; else URL[$c]=; fi
    fi
}
for c in "${ALL[@]}"; do refresh_url "$c"; done

# The first occurrence of a scalar JSON field (serde_json output: no spaces), strings unquoted.
field() { { grep -o "\"$1\":\"\{0,1\}[^\",}]*" || true; } | head -n 1 | sed "s/^\"$1\":\"\{0,1\}//"; }
api() { # container path
    [ -n "${URL[$1]}" ] || return 1
    curl -fsS --max-time 3 "${URL[$1]}$2" 2>/dev/null
}

# STATUS[c] = "height tip_hash peers peer_id" for each container given; fails if any is unreachable.
declare -A STATUS
read_statuses() {
    local c s
    for c in "$@"; do
        s=$(api "$c" /v1/status) || return 1
        STATUS[$c]="$(field height <<<"$s") $(field tip_hash <<<"$s") $(field peers <<<"$s") $(field peer_id <<<"$s")"
    done
}
height_of() { echo "${STATUS[$1]}" | cut -d' ' -f1; }
tip_of() { echo "${STATUS[$1]}" | cut -d' ' -f2; }
peers_of() { echo "${STATUS[$1]}" | cut -d' ' -f3; }
peer_id_of() { echo "${STATUS[$1]}" | cut -d' ' -f4; }
connected_ids() { api "$1" /v1/peers | grep -o '"peer_id":"[^"]*"' | cut -d'"' -f4; }
describe() {
    local c
    for c in "$@"; do
        printf '    %-28s height %-5s peers %-3s tip %s\n' "${NAME[$c]}" "$(height_of "$c")" "$(peers_of "$c")" "$(tip_of "$c" | cut -c1-16)"
    done
}

# Waits until every given container reports the same tip at height >= $1. Sets CONVERGED_HEIGHT.
wait_converged() {
    local min=$1 deadline c tip ok
    shift
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        if read_statuses "$@"; then
            ok=1
            tip=$(tip_of "$1")
            for c in "$@"; do
                if [ "$(tip_of "$c")" != "$tip" ] || [ "$(height_of "$c")" -lt "$min" ]; then ok=0; fi
            done
            if [ "$ok" = 1 ] && [ -n "$tip" ]; then
                CONVERGED_HEIGHT=$(height_of "$1")
                return 0
            fi
        fi
        sleep 0.5
    done
    echo "  last statuses:"
    for c in "$@"; do
        if [ -n "${STATUS[$c]:-}" ]; then describe "$c"; else echo "    ${NAME[$c]}: unreachable"; fi
    done
    return 1
}

# Waits until every given container is at height >= $1.
wait_height() {
    local min=$1 deadline c ok
    shift
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        if read_statuses "$@"; then
            ok=1
            for c in "$@"; do [ "$(height_of "$c")" -ge "$min" ] || ok=0; done
            [ "$ok" = 0 ] || return 0
        fi
        sleep 0.5
    done
    return 1
}

max_height() {
    local c m=0
    for c in "$@"; do [ "$(height_of "$c")" -le "$m" ] || m=$(height_of "$c"); done
    echo "$m"
}

others_than() { # prints ALL minus $1
    local c
    for c in "${ALL[@]}"; do [ "$c" = "$1" ] || echo "$c"; done
}

# ---- a. convergence ------------------------------------------------------------------------------

log "a. waiting for all $((NODES + 1)) nodes to agree on a tip at height >= $MIN_HEIGHT"
wait_converged "$MIN_HEIGHT" "${ALL[@]}" || fail "a. nodes did not converge within ${TIMEOUT} s"
pass "a. all $((NODES + 1)) nodes on tip $(tip_of "$BOOT" | cut -c1-16)… at height $CONVERGED_HEIGHT ($(since "$CLUSTER_START") s after compose up)"
describe "${ALL[@]}"

# ---- b. transfer ---------------------------------------------------------------------------------

SENDER=${REPLICAS[0]}
log "b. transfer from dev account 1, submitted to ${NAME[$SENDER]}"
t=$(now_ms)
"$BIN" wallet dev-key --index 1 --out "$TMP/dev1.json" >/dev/null || fail "b. wallet dev-key"
TO=$("$BIN" wallet new --out "$TMP/recipient.json") || fail "b. wallet new"
AMOUNT=1000
"$BIN" wallet send --key "$TMP/dev1.json" --to "$TO" --amount "$AMOUNT" --api "${URL[$SENDER]}" \
    --wait --wait-timeout "$TIMEOUT" || fail "b. wallet send (to ${NAME[$SENDER]}) was not included"
deadline=$(($(now_ms) + TIMEOUT * 1000))
for c in "${ALL[@]}"; do
    bal=
    while [ "$(now_ms)" -lt "$deadline" ]; do
        bal=$(api "$c" "/v1/accounts/$TO" | field balance || true)
        [ "$bal" = "$AMOUNT" ] && break
        sleep 0.5
    done
    [ "$bal" = "$AMOUNT" ] || fail "b. ${NAME[$c]} shows balance '${bal}' for $TO, expected $AMOUNT"
done
pass "b. transfer of $AMOUNT to $TO mined and visible on all $((NODES + 1)) nodes ($(since "$t") s)"

# ---- c. kill and restart -------------------------------------------------------------------------

VICTIM=${REPLICAS[1]}
mapfile -t REST < <(others_than "$VICTIM")
log "c. docker kill ${NAME[$VICTIM]}, let the others mine, docker start it again"
t=$(now_ms)
read_statuses "$VICTIM" || fail "c. ${NAME[$VICTIM]} unreachable before the kill"
before=$(height_of "$VICTIM")
victim_id=$(peer_id_of "$VICTIM")
docker kill "$VICTIM" >/dev/null || fail "c. docker kill"
[ "$(docker inspect -f '{{.State.Running}}' "$VICTIM")" = false ] || fail "c. ${NAME[$VICTIM]} still running after docker kill"
read_statuses "${REST[@]}" || fail "c. the other nodes are unreachable"
target=$(($(max_height "${REST[@]}") + 3))
wait_height "$target" "${REST[@]}" || fail "c. the other nodes did not reach height $target while ${NAME[$VICTIM]} was down"
docker start "$VICTIM" >/dev/null || fail "c. docker start"
refresh_url "$VICTIM"
deadline=$(($(now_ms) + TIMEOUT * 1000))
until read_statuses "$VICTIM"; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "c. ${NAME[$VICTIM]}'s API did not come back after docker start"
    sleep 0.2
    refresh_url "$VICTIM"
done
resumed=$(height_of "$VICTIM")
log "c. ${NAME[$VICTIM]} back: height $resumed (was $before when killed; the others were at $target)"
[ "$(peer_id_of "$VICTIM")" = "$victim_id" ] \
    || fail "c. ${NAME[$VICTIM]} came back as peer $(peer_id_of "$VICTIM"), was $victim_id: its node key in /data was lost"
wait_converged "$target" "${ALL[@]}" || fail "c. ${NAME[$VICTIM]} did not catch up within ${TIMEOUT} s of its restart"
pass "c. ${NAME[$VICTIM]} killed at height $before, restarted, caught up with the others at height $CONVERGED_HEIGHT ($(since "$t") s)"

# ---- d. partition and heal -----------------------------------------------------------------------

# Every connection the given container lists must be listed by the peer too (no half-open
# connection left over from the partition). Needs STATUS (peer ids) of all containers.
symmetric_peers() {
    local c=$1 p o found theirs
    for p in $(connected_ids "$c"); do
        found=0
        for o in "${ALL[@]}"; do
            [ "$(peer_id_of "$o")" = "$p" ] || continue
            found=1
            theirs=$(connected_ids "$o" || true)
            grep -qx "$(peer_id_of "$c")" <<<"$theirs" \
                || { ASYM="${NAME[$c]} lists ${NAME[$o]} as connected, ${NAME[$o]} does not list ${NAME[$c]}"; return 1; }
        done
        [ "$found" = 1 ] || { ASYM="${NAME[$c]} lists unknown peer $p"; return 1; }
    done
    return 0
}

ISOLATED=${REPLICAS[2]}
mapfile -t REST < <(others_than "$ISOLATED")
log "d. docker network disconnect ${NAME[$ISOLATED]}, let the others mine, reconnect it"
t=$(now_ms)
# Compose's DNS aliases (service name, container id) are dropped on disconnect: put them back.
ALIASES=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{range .Aliases}}{{.}} {{end}}{{end}}" "$ISOLATED")
OLD_IP=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}" "$ISOLATED")
read_statuses "${ALL[@]}" || fail "d. a node is unreachable before the partition"
before=$(height_of "$ISOLATED")
docker network disconnect "$NET" "$ISOLATED" || fail "d. docker network disconnect"
if [ "${CLUSTER_TEST_NEW_IP:-0}" = 1 ]; then
    # A placeholder container (the same image, not networking, not mining) takes the freed address,
    # so the node comes back under a new one: its old connections can then only end by detection.
    PLACEHOLDER=$(docker run -d --network "$NET" --read-only --cap-drop ALL --label "vision-cluster-test=$PROJECT" \
        "$IMAGE" run --data-dir /data --network false --mine false) || fail "d. placeholder container"
    log "d. placeholder took $(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}" "$PLACEHOLDER") (the isolated node had $OLD_IP)"
fi
target=$(($(max_height "${REST[@]}") + PARTITION_BLOCKS))
wait_height "$target" "${REST[@]}" || fail "d. the connected nodes did not reach height $target during the partition"
alias_args=()
for a in $ALIASES; do alias_args+=(--alias "$a"); done
docker network connect "${alias_args[@]}" "$NET" "$ISOLATED" || fail "d. docker network connect"
NEW_IP=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$NET\"}}{{.IPAddress}}{{end}}" "$ISOLATED")
log "d. reconnected after $(since "$t") s as $NEW_IP (was $OLD_IP); the isolated node was at height $before, the others reached $target"
refresh_url "$ISOLATED"
t2=$(now_ms)
if read_statuses "$ISOLATED"; then
    h=$(height_of "$ISOLATED")
    own=$(tip_of "$ISOLATED")
    theirs=$(api "$BOOT" "/v1/blocks/$h" | field hash || true)
    if [ "$own" != "$theirs" ]; then fork="mined a fork of its own, tip ${own:0:16}…"; else fork="no fork of its own"; fi
    log "d. ${NAME[$ISOLATED]} right after reconnecting: height $h, peers $(peers_of "$ISOLATED"), $fork"
fi
wait_converged "$target" "${ALL[@]}" || fail "d. ${NAME[$ISOLATED]} did not heal within ${TIMEOUT} s of reconnecting"
pass "d. ${NAME[$ISOLATED]} partitioned and reconnected, on the common tip at height $CONVERGED_HEIGHT ($(since "$t2") s after reconnecting)"
describe "${ALL[@]}"

t=$(now_ms)
deadline=$(($(now_ms) + TIMEOUT * 1000))
ASYM=
until read_statuses "${ALL[@]}" && symmetric_peers "$ISOLATED"; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "d. half-open connection ${TIMEOUT} s after healing: $ASYM"
    sleep 1
done
pass "d. every connection ${NAME[$ISOLATED]} lists is live on both ends ($(since "$t") s)"

# ---- e. monitoring: scrapes, dashboard queries, an alert firing and clearing ---------------------

if [ "$MONITORING" = 1 ]; then
    PROM=$(compose ps -q prometheus)
    [ -n "$PROM" ] || fail "e. no prometheus container"
    PROM_URL=http://$(docker port "$PROM" 9090/tcp | grep -m1 '^127\.0\.0\.1:')
    # An instant query; prints the result array (JSON).
    promq() {
        curl -fsS --max-time 5 -G "$PROM_URL/api/v1/query" --data-urlencode "query=$1" 2>/dev/null \
            | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d["data"]["result"]))'
    }
    scalar_of() { python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0]["value"][1] if r else "")'; }

    log "e. Prometheus ($PROM_URL) must scrape all $((NODES + 1)) nodes"
    t=$(now_ms)
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    until [ "$(promq 'count(up{job=~"vision-.*"} == 1)' | scalar_of 2>/dev/null)" = "$((NODES + 1))" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "e. Prometheus does not scrape all $((NODES + 1)) nodes: $(promq 'up{job=~"vision-.*"}')"
        sleep 1
    done
    pass "e. Prometheus scrapes the bootnode and all $NODES replicas ($(since "$t") s)"

    # Every panel query of the Grafana dashboard, with Grafana's variables filled in the way it
    # would ($instance = All, $__rate_interval = 4 scrape intervals, $__range = 5m), asked of
    # Prometheus. Series that exist only once an event happened (bans, peer actions, drops) may
    # legitimately be empty in a healthy cluster: listed, not failed.
    t=$(now_ms)
    sleep 15 # a few more scrapes, so rate() over 20 s has two samples everywhere
    python3 - "$ROOT/deploy/grafana/dashboards/vision.json" "$PROM_URL" <<'PY' || fail "e. dashboard queries without data (above)"
import json, sys, urllib.parse, urllib.request
dash, url = sys.argv[1], sys.argv[2]
d = json.load(open(dash))
event_only = ("vision_p2p_bans_total", "vision_p2p_peer_actions_total", "vision_p2p_dropped_messages_total")
panels = []
def walk(ps):
    for p in ps:
        panels.append(p)
        walk(p.get("panels", []))
walk(d["panels"])
empty, total, allowed = [], 0, []
for p in panels:
    for t in p.get("targets", []):
        expr = t.get("expr")
        if not expr:
            continue
        total += 1
        q = (expr.replace("$instance", ".*").replace("$__rate_interval", "20s")
                 .replace("$__range", "5m").replace("$__interval", "5s"))
        with urllib.request.urlopen(url + "/api/v1/query?" + urllib.parse.urlencode({"query": q}), timeout=5) as r:
            res = json.load(r)
        if res["status"] != "success":
            empty.append((p["title"], expr, "error " + str(res)))
        elif not res["data"]["result"]:
            (allowed if any(m in expr for m in event_only) else empty).append((p["title"], expr, "no series"))
for title, expr, why in allowed:
    print(f"  note: panel '{title}' has no data yet (only recorded after an event): {expr}")
for title, expr, why in empty:
    print(f"  FAIL: panel '{title}': {why}: {expr}")
print(f"  {total - len(empty) - len(allowed)} of {total} panel queries returned data, {len(allowed)} event-only empty, {len(empty)} failed")
sys.exit(1 if empty else 0)
PY
    pass "e. every dashboard panel query (except event-only series) returns data from Prometheus ($(since "$t") s)"

    alert_state() { # alertname instance -> firing|pending|""
        curl -fsS --max-time 5 "$PROM_URL/api/v1/alerts" 2>/dev/null | python3 -c '
import json, sys
name, inst = sys.argv[1], sys.argv[2]
for a in json.load(sys.stdin)["data"]["alerts"]:
    if a["labels"].get("alertname") == name and a["labels"].get("instance") == inst:
        print(a["state"]); break' "$1" "$2"
    }
    # The bootnode is a static target: stopped, it stays a target and turns `up == 0`. (A stopped
    # `node` replica would drop out of DNS discovery instead: see docs/runbook.md, VisionNodeDown.)
    log "e. docker stop ${NAME[$BOOT]}: VisionNodeDown must fire (for: 30 s, rules evaluated every 15 s)"
    t=$(now_ms)
    docker stop -t 10 "$BOOT" >/dev/null || fail "e. docker stop bootnode"
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    until [ "$(alert_state VisionNodeDown bootnode:9615)" = firing ]; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "e. VisionNodeDown did not fire within ${TIMEOUT} s of stopping the bootnode"
        sleep 2
    done
    fired=$(since "$t")
    pass "e. VisionNodeDown{instance=\"bootnode:9615\"} firing $fired s after the bootnode stopped"
    t=$(now_ms)
    docker start "$BOOT" >/dev/null || fail "e. docker start bootnode"
    refresh_url "$BOOT"
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    until [ -z "$(alert_state VisionNodeDown bootnode:9615)" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "e. VisionNodeDown still $(alert_state VisionNodeDown bootnode:9615) ${TIMEOUT} s after the bootnode came back"
        sleep 2
    done
    pass "e. VisionNodeDown cleared $(since "$t") s after the bootnode was started again (fired after $fired s)"
    read_statuses "${ALL[@]}" 2>/dev/null || true
    target=$(($(max_height "${ALL[@]}") + 1))
    wait_converged "$target" "${ALL[@]}" || fail "e. the bootnode did not catch up after its restart"
    pass "e. the bootnode caught up: all nodes on the tip at height $CONVERGED_HEIGHT"
    echo "SKIP: Grafana checks and screenshot: no Grafana image can be built here (Grafana is not packaged by Debian, and no registry is reachable)"
fi

# ---- f. health checks ----------------------------------------------------------------------------

if [ "$HEALTH" = 1 ]; then
    t=$(now_ms)
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    while :; do
        unhealthy=
        for c in "${ALL[@]}"; do
            h=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c")
            [ "$h" = healthy ] || unhealthy+=" ${NAME[$c]}=$h"
        done
        [ -n "$unhealthy" ] || break
        [ "$(now_ms)" -lt "$deadline" ] || fail "f. not healthy:$unhealthy"
        sleep 2
    done
    pass "f. all $((NODES + 1)) containers report healthy through \`vision-node health\` ($(since "$t") s)"
fi
