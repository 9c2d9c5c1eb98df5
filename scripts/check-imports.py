#!/usr/bin/env python3
"""Import circles between the files of each crate (issue #13).

For every crate of the workspace, reads its `src/**/*.rs` (test modules cut off), collects the
paths each file names through `crate::`, `super::` and `self::` (in `use` lines and inline), maps
each path to the file that defines that module, and reports every strongly connected component of
more than one file: a set of files that import each other in a circle. `pub use` re-exports at a
module's root and `mod` declarations are not imports (they publish a child, they do not use it).

    scripts/check-imports.py            # exit 1 with one line per circle
    scripts/check-imports.py --graph    # also print every file's imports
    scripts/check-imports.py --self-test

Crates are found from the workspace layout: `src/` (the node) and every `crates/*/src/` and
`simulations/src/`.
"""

import glob
import os
import re
import sys

ROOTS = ["src"] + sorted(glob.glob("crates/*/src")) + ["simulations/src"]
PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{)")


def module_of(root, path):
    """Module path of a file (`a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs`/`main.rs` are root)."""
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)


def strip(text):
    """The file without `#[cfg(test)]` modules, comments and string contents."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def expand_use(stmt):
    """`a::{b, c::{d}}` -> ["a::b", "a::c::d"]."""
    stmt = re.sub(r"\s+", "", stmt)
    if "{" not in stmt or "}" not in stmt:
        return [stmt.split("{")[0]]
    head, inner = stmt[: stmt.index("{")], stmt[stmt.index("{") + 1: stmt.rindex("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in expand_use(head + part)]


def references(text):
    """Every `crate::`/`super::`/`self::` path a file names, except in `pub use` re-exports."""
    refs = []
    for m in re.finditer(r"(?m)^\s*(pub(?:\([a-z]+\))?\s+)?use\s+([^;]+);", text):
        if m.group(1):
            continue
        refs += [p for p in expand_use(m.group(2)) if p.split("::")[0] in ("crate", "super", "self")]
    body = re.sub(r"(?m)^\s*(pub(?:\([a-z]+\))?\s+)?use\s+[^;]+;", "", text)
    refs += [m.group(1) + m.group(2) for m in PATH.finditer(body) if not m.group(2).endswith("{")]
    return refs


def resolve(here, ref, modules):
    """The module (a key of `modules`) that `ref`, named in module `here`, points into."""
    parts = ref.split("::")
    base = list(here) if parts[0] == "self" else [] if parts[0] == "crate" else list(here[:-1])
    rest = parts[1:]
    while rest and rest[0] == "super":
        base, rest = base[:-1], rest[1:]
    path = tuple(base + rest)
    for n in range(len(path), -1, -1):
        if path[:n] in modules:
            return path[:n]
    return ()


def graph(root):
    files = glob.glob(os.path.join(root, "**", "*.rs"), recursive=True)
    if os.path.exists(os.path.join(root, "lib.rs")):
        # main.rs is a crate of its own that uses the library by name, never through `crate::`.
        files = [f for f in files if f != os.path.join(root, "main.rs")]
    modules = {module_of(root, f): f for f in files}
    edges = {}
    for mod, f in modules.items():
        text = strip(open(f, encoding="utf-8").read())
        targets = {resolve(mod, r, modules) for r in references(text)}
        edges[f] = {modules[t] for t in targets if modules[t] != f}
    return edges


def circles(edges):
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def self_test():
    assert expand_use("crate::{a::{b, c}, d}") == ["crate::a::b", "crate::a::c", "crate::d"]
    mods = {(): "lib.rs", ("a",): "a.rs", ("a", "b"): "a/b.rs", ("c",): "c.rs"}
    assert resolve(("a", "b"), "super::X", mods) == ("a",)
    assert resolve(("a",), "crate::c::Y", mods) == ("c",)
    assert resolve(("c",), "crate::a::b::Z", mods) == ("a", "b")
    assert resolve(("a",), "self::b::Z", mods) == ("a", "b")
    assert references("pub use a::B;\nuse crate::x::Y;\nfn f() { crate::z::w(); }") == ["crate::x::Y", "crate::z::w"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    print("check-imports self-test: ok")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    found = []
    for root in ROOTS:
        if not os.path.isdir(root):
            continue
        edges = graph(root)
        if "--graph" in sys.argv:
            for f, ts in sorted(edges.items()):
                print(f"{f} -> {', '.join(sorted(ts)) or '-'}")
        found += circles(edges)
    for c in found:
        print("IMPORT CIRCLE: " + " -> ".join(c + [c[0]]) + " (these files import each other; move the shared items down)")
    print(f"import check: {'FAILED' if found else 'ok'} ({len(ROOTS)} crates)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
