#!/usr/bin/env bash
# Alert rules and Prometheus configs of deploy/, checked offline with promtool:
#   1. `promtool check rules` on deploy/prometheus/alerts.yml (syntax, PromQL, templates);
#   2. `promtool test rules` on deploy/prometheus/alerts_test.yml (every alert fires on its
#      synthetic series, at the time it should, with the labels and annotations it should, and
#      nothing else fires);
#   3. `promtool check config` on every Prometheus config in deploy/ (compose, swarm, k8s), each
#      copied next to the rules file as it is mounted in its container. (A promtool built without
#      Kubernetes discovery, as Debian's is, checks the k8s config with a static target instead.)
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
    if ! out=$(promtool check config "$d/prometheus.yml" 2>&1); then
        # Debian's Prometheus is built without Kubernetes service discovery: check the rest of
        # such a config (relabelling, rules, everything else) with each kubernetes_sd_configs
        # replaced by a static target, and say so.
        if grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
            python3 - "$d/prometheus.yml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
# A kubernetes_sd_configs block: the key and every following line indented deeper.
text = re.sub(r"(?m)^( *)kubernetes_sd_configs:\n(?:\1 +\S.*\n)+",
              lambda m: f"{m.group(1)}static_configs:\n{m.group(1)}  - targets: ['placeholder:9615']\n", text)
open(path, "w").write(text)
PY
            echo "  note: this promtool has no Kubernetes service discovery (Debian build):" \
                "checking $c with kubernetes_sd_configs replaced by a static target"
            promtool check config "$d/prometheus.yml"
        else
            echo "$out"
            echo "FAIL: promtool check config $c" >&2
            exit 1
        fi
    else
        echo "$out"
    fi
done
echo "promtool tests passed ($(( $(date +%s%3N) - start )) ms)"
