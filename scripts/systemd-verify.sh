#!/usr/bin/env bash
# Offline checks of deploy/systemd/vision-node.service (no systemd needs to be running):
#   - `systemd-analyze verify`: the unit parses, every directive is known, the binary path is
#     executable (checked on a copy whose ExecStart points at the static vision-node binary when
#     one is built, else at /bin/true: the real path, /usr/local/bin, is not installed here);
#   - `systemd-analyze security --offline`: the hardening's exposure score stays at or below
#     2.0 ("OK"; 10 is an unhardened service).
# Skips with a message (exit 0) where systemd-analyze is missing, unless SYSTEMD_VERIFY_REQUIRED=1.
set -euo pipefail
cd "$(dirname "$0")/.."
UNIT=deploy/systemd/vision-node.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
    [ "${SYSTEMD_VERIFY_REQUIRED:-0}" != 1 ] || { echo "FAIL: systemd-analyze not found" >&2; exit 1; }
    echo "systemd-analyze not found: systemd unit checks skipped"
    exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vision-systemd.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
STATIC_DIR=${CARGO_TARGET_DIR:-target}/static
case "$STATIC_DIR" in /*) ;; *) STATIC_DIR=$PWD/$STATIC_DIR ;; esac
BIN=$STATIC_DIR/x86_64-unknown-linux-gnu/release/vision-node
[ -x "$BIN" ] || BIN=/bin/true
sed "s#/usr/local/bin/vision-node#$BIN#" "$UNIT" >"$TMP/vision-node.service"
systemd-analyze --version | head -n 1
out=$(systemd-analyze verify "$TMP/vision-node.service" 2>&1) || { echo "$out"; echo "FAIL: systemd-analyze verify $UNIT" >&2; exit 1; }
# verify prints warnings without failing: any output is a finding.
[ -z "$out" ] || { echo "$out"; echo "FAIL: systemd-analyze verify $UNIT printed warnings" >&2; exit 1; }
echo "ok: systemd-analyze verify $UNIT (ExecStart checked against $BIN)"
sec=$(systemd-analyze security --offline=true --threshold=20 "$TMP/vision-node.service" 2>&1) \
    || { echo "$sec" | tail -n 30; echo "FAIL: exposure of $UNIT above 2.0" >&2; exit 1; }
echo "ok: $(echo "$sec" | grep -o 'Overall exposure level.*')"
