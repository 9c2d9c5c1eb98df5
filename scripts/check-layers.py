#!/usr/bin/env python3
"""The layer check (issue #13): the crate graph must be the layer diagram of docs/architecture.md.

Reads `cargo metadata` (normal dependencies only: dev- and build-dependencies do not reach the
binary) and checks, for every crate of the workspace, the transitive closure of what it links:

  1. below-node:  nothing below the node wiring depends on the API, the network layer or the node;
  2. pure-state:  the state machine (primitives, state, mempool) depends on no network, HTTP or
                  async runtime crate;
  3. libp2p-only: only the p2p layer and the tools/simulation crates that drive it name libp2p as a
                  dependency of their own (everyone else talks about peers and addresses through
                  the p2p crate's types or plain strings);
  4. no-tools:    the node binary does not link the benchmark tools' extra dependencies.

A rule that the tree does not meet yet is listed in KNOWN_DEBT with the reason; the check fails on
any other violation, and also when a listed debt has been paid (so the list cannot go stale).

    scripts/check-layers.py              # check the workspace; exit 1 with one line per violation
    scripts/check-layers.py --self-test  # check the checker on small made-up graphs
"""

import json
import subprocess
import sys

# The layers, bottom to top. A crate may depend only on crates of lower layers.
LAYERS = [
    ["vision-primitives"],
    ["vision-state"],
    ["vision-mempool"],
    ["vision-p2p"],
]
STATE_MACHINE = {"vision-primitives", "vision-state", "vision-mempool"}
UPPER = {"vision-node", "vision-api", "vision-p2p"}
# Crates that do network I/O, speak HTTP or run an async runtime.
NETWORK_HTTP_ASYNC = {
    "tokio", "async-std", "smol", "mio", "futures-executor",
    "axum", "hyper", "h2", "tower", "ureq", "reqwest", "tungstenite", "quinn",
}
P2P_DRIVERS = {"vision-p2p", "vision-tools", "vision-sim"}
# The tools crate and the dependencies only the benchmark, load-generation and simulation tools need.
TOOLS_ONLY = {"vision-tools", "vision-sim", "hdrhistogram", "csv", "criterion", "plotters", "procfs"}
NODE_BINARY = "vision-node"

# (rule, crate, offending dependency) -> why it is still there. Each entry is work left for #13.
KNOWN_DEBT = {}


def is_libp2p(name):
    return name == "libp2p" or name.startswith("libp2p-")


def closures(meta):
    """{workspace crate name: (set of package names it links transitively, set of its direct
    dependencies)}, normal dependencies only."""
    pkgs = {p["id"]: p["name"] for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}

    def normal_deps(node_id):
        for d in nodes[node_id]["deps"]:
            kinds = {k["kind"] for k in d["dep_kinds"]}
            if None in kinds or "normal" in kinds:
                yield d["pkg"]

    out = {}
    for member in meta["workspace_members"]:
        seen, stack = set(), [member]
        while stack:
            for dep in normal_deps(stack.pop()):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        out[pkgs[member]] = ({pkgs[i] for i in seen}, {pkgs[i] for i in normal_deps(member)})
    return out


def violations(closure):
    """Every (rule, crate, dependency) the graph breaks."""
    found = set()
    rank = {c: i for i, layer in enumerate(LAYERS) for c in layer}
    for crate, (deps, direct) in closure.items():
        for dep in direct:
            if is_libp2p(dep) and crate not in P2P_DRIVERS:
                found.add(("libp2p-only", crate, "libp2p"))
        for dep in deps:
            if crate in rank and dep in UPPER:
                found.add(("below-node", crate, dep))
            if crate in rank and dep in rank and rank[dep] >= rank[crate]:
                found.add(("below-node", crate, dep))
            if crate in STATE_MACHINE and (dep in NETWORK_HTTP_ASYNC or is_libp2p(dep)):
                found.add(("pure-state", crate, dep))
            if crate == NODE_BINARY and dep in TOOLS_ONLY:
                found.add(("no-tools", crate, dep))
    return found


def report(found, debt):
    """Lines to print and whether the check failed."""
    lines, failed = [], False
    for v in sorted(found - set(debt)):
        rule, crate, dep = v
        lines.append(f"LAYER VIOLATION [{rule}]: {crate} depends on {dep} "
                     f"(see scripts/check-layers.py and docs/architecture.md; "
                     f"`cargo tree -p {crate} -i {dep} -e normal` shows the path)")
        failed = True
    for v in sorted(set(debt) - found):
        lines.append(f"STALE DEBT: {v} no longer happens; remove it from KNOWN_DEBT in scripts/check-layers.py")
        failed = True
    for v in sorted(found & set(debt)):
        lines.append(f"known debt [{v[0]}]: {v[1]} depends on {v[2]}: {debt[v]}")
    return lines, failed


def self_test():
    def graph(edges):
        """Transitive closures and direct dependencies of a made-up graph {crate: direct deps}."""
        out = {}
        for crate, direct in edges.items():
            seen, stack = set(), list(direct)
            while stack:
                d = stack.pop()
                if d not in seen:
                    seen.add(d)
                    stack.extend(edges.get(d, ()))
            out[crate] = (seen, set(direct))
        return out

    edges = {
        "vision-primitives": {"serde", "blake3"},
        "vision-state": {"vision-primitives", "redb"},
        "vision-mempool": {"vision-primitives", "vision-state"},
        "vision-p2p": {"vision-mempool", "libp2p", "tokio"},
        "vision-node": {"vision-p2p", "vision-mempool", "tokio", "axum"},
        "vision-tools": {"vision-node", "libp2p", "hdrhistogram"},
    }
    good = graph(edges)
    assert violations(good) == set(), violations(good)
    debt = {("no-tools", "vision-node", "hdrhistogram"): "a made-up debt"}
    bad_edges = {k: set(v) for k, v in edges.items()}
    bad_edges["vision-state"] |= {"tokio"}
    bad_edges["vision-primitives"] |= {"vision-state"}
    bad_edges["vision-mempool"] |= {"vision-node", "libp2p-core"}
    bad_edges["vision-node"] |= {"libp2p", "hdrhistogram"}
    bad = graph(bad_edges)
    expect = {
        ("libp2p-only", "vision-node", "libp2p"),
        ("no-tools", "vision-node", "hdrhistogram"),
        ("pure-state", "vision-state", "tokio"),
        ("below-node", "vision-primitives", "vision-state"),
        ("below-node", "vision-mempool", "vision-node"),
        ("pure-state", "vision-mempool", "libp2p-core"),
        ("libp2p-only", "vision-mempool", "libp2p"),
    }
    # Everything below the broken crates inherits their sins (transitively): keep only the roots.
    got = violations(bad)
    assert expect <= got, expect - got
    lines, failed = report(got, {})
    assert failed and any("vision-state depends on tokio" in line for line in lines), lines
    assert any("[libp2p-only]: vision-node depends on libp2p" in line for line in lines), lines
    lines, failed = report(got, debt)
    assert any(line.startswith("known debt [no-tools]") for line in lines), lines
    lines, failed = report(violations(good), debt)
    assert failed and any(line.startswith("STALE DEBT") for line in lines), lines
    print("check-layers self-test: ok")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--filter-platform", "x86_64-unknown-linux-gnu"],
        check=True, capture_output=True, text=True).stdout)
    closure = closures(meta)
    missing = {c for layer in LAYERS for c in layer} - closure.keys()
    if missing:
        print(f"LAYER CHECK: workspace crates {sorted(missing)} not found; update LAYERS in scripts/check-layers.py")
        return 1
    lines, failed = report(violations(closure), KNOWN_DEBT)
    for line in lines:
        print(line)
    print("layer check: " + ("FAILED" if failed else f"ok ({len(closure)} workspace crates)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
