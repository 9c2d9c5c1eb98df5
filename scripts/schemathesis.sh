#!/usr/bin/env bash
# The OpenAPI document is a contract (issue #15): schemathesis (PyPI), an independent tool, reads
# the document a real node serves and throws generated requests at that node, with every check on
# (server errors, status codes, content types, response schemas, schema-valid requests accepted,
# schema-invalid ones refused, 405 + Allow for undeclared methods, ...). Exits non-zero on any
# failure.
#
# 1. installs schemathesis $ST_VERSION into a venv ($SCHEMATHESIS_VENV) when it is missing;
# 2. starts the release binary ($CARGO_TARGET_DIR/release/vision-node, built when missing) on
#    free loopback ports with a temporary data directory and networking on loopback;
# 3. runs schemathesis against the public API (every operation but the admin ones) with at most
#    $ST_EXAMPLES examples per operation and a fixed seed; then against the admin API with the
#    token of the node's cookie file;
# 4. stops the node (SIGTERM) and removes the data directory.
#
# What a JSON Schema cannot state, and how this run handles it (hooks and config written below):
# - an address's bech32m checksum: the document gives addresses `format: vis-address` with their
#   pattern; the hook generates addresses with valid checksums for that format;
# - a transaction hex that decodes and verifies: `POST /v1/txs` declares hex of bounded length, so
#   random hex is schema-valid yet refused (400 invalid_transaction / invalid_signature); that one
#   operation accepts 400 and 422 for schema-valid data. Every other operation keeps the defaults.
# - a multiaddr that parses and can be dialled: `POST /admin/peers` takes a string, so that one
#   operation accepts 400 (invalid_multiaddr, refused) for schema-valid data. Peer ids are held
#   to their pattern (`12D3KooW` + 44 base58 digits), which every ed25519 peer id matches.
#
# Environment: ST_VERSION, SCHEMATHESIS_VENV, ST_EXAMPLES (default 100), ST_SEED (default 15),
# CARGO_TARGET_DIR, ST_KEEP=1 keeps the data directory and the node's log.
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=${ST_VERSION:-4.32.5}
VENV=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vision-node/schemathesis-$ST_VERSION}
EXAMPLES=${ST_EXAMPLES:-100}
SEED=${ST_SEED:-15}
TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/release/vision-node"
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. schemathesis
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
    echo "installing schemathesis==$ST_VERSION into $VENV (pip)"
    python3 -m venv "$VENV" || fail "python3 -m venv $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION" \
        || fail "pip install schemathesis==$ST_VERSION"
fi
ST="$VENV/bin/schemathesis"

# 2. the node
if [ ! -x "$BIN" ]; then
    cargo build --release --bin vision-node
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vision-schemathesis.XXXXXX")
NODE_PID=
cleanup() {
    if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [ "${ST_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
"$BIN" run --data-dir "$WORK/data" --mine false --listen /ip4/127.0.0.1/tcp/0 \
    --api-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --log-format json \
    2>"$WORK/node.log" &
NODE_PID=$!
# The bound addresses from the node's log lines ("API listening", "admin API listening").
addr_of() { { grep "\"message\":\"$1\"" "$WORK/node.log" || true; } | head -n1 | sed 's/.*"addr":"\([^"]*\)".*/\1/'; }
for _ in $(seq 1 300); do
    API=$(addr_of "API listening"); ADMIN=$(addr_of "admin API listening")
    [ -n "$API" ] && [ -n "$ADMIN" ] && break
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$WORK/node.log" >&2; fail "the node exited"; }
    sleep 0.1
done
[ -n "$API" ] && [ -n "$ADMIN" ] || fail "the node did not report its API addresses"
TOKEN=$(cat "$WORK/data/admin.cookie")
echo "node: API $API, admin $ADMIN"

cat >"$WORK/hooks.py" <<'EOF'
"""Generators for the string formats of the Vision Node API that a pattern cannot state."""
import schemathesis
from hypothesis import strategies as st

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32M = 0x2BC830A3


def _polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((top >> i) & 1) else 0
    return chk


def _address(key: bytes) -> str:
    """`vis1...`: the 32-byte key as bech32m (BIP-350), zero padding bits."""
    acc, bits, data = 0, 0, []
    for b in key:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    hrp = "vis"
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _polymod(expanded + data + [0] * 6) ^ BECH32M
    checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in data + checksum)


schemathesis.openapi.format("vis-address", st.binary(min_size=32, max_size=32).map(_address))
EOF

cat >"$WORK/schemathesis.toml" <<'EOF'
# POST /v1/txs: random hex of the declared shape does not decode to a signed transaction, which
# no schema can state: 400 (invalid_transaction, invalid_signature) and 422 are right answers.
[[operations]]
include-name = "POST /v1/txs"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409", "422", "503"]

# GET /v1/ws: a request with the declared upgrade headers is switched to the WebSocket protocol
# (101, a status schemathesis' defaults leave out of both lists).
[[operations]]
include-name = "GET /v1/ws"
checks.positive_data_acceptance.expected-statuses = ["101", "2xx", "404", "429", "503"]
checks.not_a_server_error.expected-statuses = ["101", "2xx", "3xx", "4xx"]

# POST /admin/peers: a string of the declared type need not be a dialable multiaddr.
[[operations]]
include-name = "POST /admin/peers"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409", "503"]
EOF

# 3. schemathesis
common=(--checks all --max-examples "$EXAMPLES" --seed "$SEED" --no-color --generation-database none
        --workers 1 --request-timeout 10)
# One worker: with several, hypothesis' lambda descriptions race in Python's AST compiler
# ("AST constructor recursion depth mismatch", a tool error, not an API failure).
status=0
# Run from the temporary directory: schemathesis keeps a `.schemathesis/` cache in its working directory.
st() { (cd "$WORK" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$WORK" "$ST" --config-file "$WORK/schemathesis.toml" run "$@"); }
echo "=== public API"
st "http://$API/v1/openapi.json" --url "http://$API" --exclude-tag admin "${common[@]}" || status=$?
echo "=== admin API (with the cookie's token)"
st "http://$API/v1/openapi.json" --url "http://$ADMIN" --include-tag admin -H "Authorization: Bearer $TOKEN" \
    "${common[@]}" || status=$?
kill -0 "$NODE_PID" 2>/dev/null || { tail -n 50 "$WORK/node.log" >&2; fail "the node died during the run"; }
if grep -q '"level":"ERROR"' "$WORK/node.log"; then
    grep '"level":"ERROR"' "$WORK/node.log" | head -n 20 >&2
    fail "the node logged errors during the run"
fi
[ "$status" = 0 ] || fail "schemathesis found failures (exit $status)"
echo "schemathesis: 0 failures"
