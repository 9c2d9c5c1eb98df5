#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests (deploy/k8s), for machines without a cluster:
#   1. the files kustomize needs copies of (it reads nothing outside a kustomization's directory)
#      are identical to their originals: alert rules, Grafana dashboard, devnet bootnode key;
#   2. every overlay in deploy/k8s/overlays renders (`kubectl kustomize`);
#   3. each rendering validates against the Kubernetes OpenAPI schemas of the oldest and newest
#      versions we target, strictly (unknown fields are errors), with `kubernetes-validate`
#      (PyPI; its schemas ship inside the package, so no network is used; installed with pip
#      when missing);
#   4. project rules the schemas cannot express: every container has CPU/memory requests and
#      limits, liveness and readiness probes, no privilege escalation, a read-only root
#      filesystem, pods run as non-root; StatefulSets have volume claim templates; every
#      ConfigMap/Secret a pod references is in the rendering (or is one the overlay documents
#      as created by hand); every PodDisruptionBudget selects a workload;
#   5. a self-check: a copy of the devnet rendering with a deliberately wrong field must FAIL
#      step 3, so a validator that accepts everything cannot pass this script.
# Environment: K8S_VERSIONS (default "1.28.0 1.37.0"), K8S_VALIDATE_OUT=DIR keeps the renderings.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS=${K8S_VERSIONS:-1.28.0 1.37.0}
KV_VERSION=1.37.0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vision-k8s.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
start=$(date +%s%3N)
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v kubectl >/dev/null 2>&1 || fail "kubectl not found (it renders the overlays: kubectl kustomize)"
command -v python3 >/dev/null 2>&1 || fail "python3 not found"
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
    echo "installing kubernetes-validate==$KV_VERSION (pip)"
    python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION" \
        || fail "pip install kubernetes-validate"
fi
python3 -c 'import yaml' 2>/dev/null || fail "PyYAML missing (a dependency of kubernetes-validate)"

# 1. copies
for pair in deploy/prometheus/alerts.yml:deploy/k8s/base/prometheus/alerts.yml \
            deploy/grafana/dashboards/vision.json:deploy/k8s/base/grafana/vision.json \
            deploy/bootnode.key:deploy/k8s/overlays/devnet/bootnode.key; do
    cmp -s "${pair%%:*}" "${pair#*:}" || fail "${pair#*:} differs from ${pair%%:*}: copy it again (cp ${pair%%:*} ${pair#*:})"
done
echo "ok: kustomize's copies match deploy/prometheus/alerts.yml, the dashboard and the devnet key"

validate() { # file version
    python3 -m kubernetes_validate --strict --quiet --no-warn -k "$2" "$1"
}

# 2-4. every overlay
overlays=(deploy/k8s/overlays/*/)
[ "${#overlays[@]}" -gt 0 ] || fail "no overlay in deploy/k8s/overlays"
for dir in "${overlays[@]}"; do
    name=$(basename "$dir")
    out=$TMP/$name.yaml
    kubectl kustomize "$dir" >"$out" || fail "kubectl kustomize $dir"
    n=$(grep -c '^kind:' "$out" || true)
    for v in $VERSIONS; do
        validate "$out" "$v" || fail "$name: schema validation against Kubernetes $v"
    done
    python3 - "$out" "$name" <<'PY' || fail "$name: project rules"
import sys, yaml
path, overlay = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
# Created by hand before `kubectl apply` (see the overlay's kustomization.yaml).
external = {"testnet": {("Secret", "vision-bootnode-key")}}.get(overlay, set())
have = {(d["kind"], d["metadata"]["name"]) for d in docs}
errors = []
workloads = []
for d in docs:
    if d["kind"] not in ("Deployment", "StatefulSet", "DaemonSet"):
        continue
    name = f'{d["kind"]}/{d["metadata"]["name"]}'
    workloads.append(d)
    pod = d["spec"]["template"]["spec"]
    if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
        errors.append(f"{name}: pod securityContext.runAsNonRoot is not true")
    for c in pod["containers"]:
        cn = f'{name} container {c["name"]}'
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    errors.append(f"{cn}: no {r} {kind[:-1]}")
        for p in ("livenessProbe", "readinessProbe"):
            if p not in c:
                errors.append(f"{cn}: no {p}")
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{cn}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{cn}: readOnlyRootFilesystem is not true")
        for e in c.get("envFrom") or []:
            ref = (e.get("configMapRef") or {}).get("name")
            if ref and ("ConfigMap", ref) not in have and ("ConfigMap", ref) not in external:
                errors.append(f"{cn}: envFrom ConfigMap {ref} is not in the rendering")
    for v in pod.get("volumes") or []:
        for key, kind, field in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name")):
            if key in v:
                ref = v[key][field]
                if (kind, ref) not in have and (kind, ref) not in external:
                    errors.append(f"{name}: volume {v['name']} references {kind} {ref}, not in the rendering")
    if d["kind"] == "StatefulSet" and not d["spec"].get("volumeClaimTemplates"):
        errors.append(f"{name}: no volumeClaimTemplates")
for d in docs:
    if d["kind"] == "PodDisruptionBudget":
        sel = d["spec"]["selector"]["matchLabels"]
        if not any(all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items()) for w in workloads):
            errors.append(f'PodDisruptionBudget/{d["metadata"]["name"]} selects no workload')
for e in errors:
    print(f"  {overlay}: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
    echo "ok: overlay $name renders $n objects, valid against Kubernetes $VERSIONS (strict), project rules hold"
    if [ -n "${K8S_VALIDATE_OUT:-}" ]; then mkdir -p "$K8S_VALIDATE_OUT" && cp "$out" "$K8S_VALIDATE_OUT/"; fi
done

# The ServiceMonitor (a CRD the schemas do not know) must at least be well-formed YAML.
python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' deploy/k8s/extras/servicemonitor.yaml \
    || fail "deploy/k8s/extras/servicemonitor.yaml is not valid YAML"

# 5. self-check: a broken manifest must be rejected.
sed 's/^  replicas: 3$/  replicas: "three"/' "$TMP/devnet.yaml" >"$TMP/broken.yaml"
cmp -s "$TMP/devnet.yaml" "$TMP/broken.yaml" && fail "self-check: could not break the devnet rendering"
if validate "$TMP/broken.yaml" "${VERSIONS##* }" >/dev/null 2>&1; then
    fail "self-check: the validator accepted a StatefulSet with replicas: \"three\""
fi
echo "ok: self-check, a StatefulSet with replicas: \"three\" is rejected"
echo "k8s validation passed ($(( $(date +%s%3N) - start )) ms)"
