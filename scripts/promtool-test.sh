#!/usr/bin/env bash
# Alert rules and Prometheus configs of deploy/, checked offline with promtool:
#   1. `promtool check rules` on deploy/prometheus/alerts.yml (syntax, PromQL, templates);
#   2. `promtool test rules` on deploy/prometheus/alerts_test.yml (every alert fires on its
#      synthetic series, at the time it should, with the labels and annotations it should, and
#      nothing else fires);
#   3. `promtool check config` on every Prometheus config in deploy/ (compose, swarm, k8s), each
#      copied next to the rules file as it is mounted in its container.
# Installs nothing: promtool comes from Debian's `prometheus` package (.ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "FAIL: promtool not found (Debian: apt-get install prometheus; or put promtool on PATH)" >&2
    exit 1
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vision-promtool.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

start=$(date +%s%3N)
echo "$(promtool --version 2>&1 | head -n 1)"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml

configs=(deploy/prometheus.yml)
[ ! -f deploy/swarm/prometheus.yml ] || configs+=(deploy/swarm/prometheus.yml)
[ ! -f deploy/k8s/base/prometheus/prometheus.yml ] || configs+=(deploy/k8s/base/prometheus/prometheus.yml)
for c in "${configs[@]}"; do
    d=$TMP/$(echo "$c" | tr / _)
    mkdir -p "$d"
    cp "$c" "$d/prometheus.yml"
    cp deploy/prometheus/alerts.yml "$d/alerts.yml"
    echo "Checking config $c"
    promtool check config "$d/prometheus.yml"
done
echo "promtool tests passed ($(( $(date +%s%3N) - start )) ms)"
