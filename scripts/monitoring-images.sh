#!/usr/bin/env bash
# Builds monitoring images FROM scratch around binaries installed on this host, for machines that
# cannot pull prom/prometheus or grafana/grafana:
#   scripts/monitoring-images.sh [PROMETHEUS_TAG]     # default vision-prometheus:local
# - Prometheus: Debian's /usr/bin/prometheus (apt-get install prometheus) with the libraries ldd
#   lists, deploy/docker/Dockerfile.prometheus. Prints the tag on the last line.
# - Grafana: not packaged by Debian (no `grafana` package in its archive) and no other source is
#   reachable here, so no Grafana image is built; the tests skip their Grafana checks.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-vision-prometheus:local}
PROM=$(command -v prometheus || true)
[ -n "$PROM" ] || { echo "FAIL: no prometheus binary (Debian: apt-get install prometheus)" >&2; exit 1; }
ctx=$(mktemp -d "${TMPDIR:-/tmp}/vision-prom-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/prometheus" "$ctx/data"
cp "$PROM" "$ctx/rootfs/usr/bin/prometheus"
# The shared libraries and the loader, at the paths the binary asks for.
for lib in $(ldd "$PROM" | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
done
printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ctx/rootfs/etc/group"
printf 'hosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
# The web UI's assets, where Debian's build looks for them (the API works without them).
if [ -d /usr/share/prometheus/web ]; then
    mkdir -p "$ctx/rootfs/usr/share/prometheus"
    cp -a /usr/share/prometheus/web "$ctx/rootfs/usr/share/prometheus/"
fi
cp deploy/docker/Dockerfile.prometheus "$ctx/Dockerfile"
version=$("$PROM" --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p')
out=$(DOCKER_BUILDKIT=0 docker build -q --build-arg "VERSION=$version" -t "$TAG" "$ctx" 2>&1) \
    || { echo "$out" >&2; echo "FAIL: docker build of $TAG" >&2; exit 1; }
echo "monitoring-images: $TAG (Debian prometheus $version, $(docker image inspect -f '{{.Size}}' "$TAG") bytes); Grafana: not available (not in Debian), skipped" >&2
echo "$TAG"
