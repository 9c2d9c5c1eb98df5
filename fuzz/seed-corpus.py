#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target (fuzz/corpus/<target>/seed-*) from the golden
vectors in protocols/vectors/*.txt plus a few hand-made inputs.

Vector files are `key: value` lines, `#` comments, long values continued on indented lines (the
format of tests/it/vector_file.rs); byte fields are lowercase hex. Run from anywhere:

    python3 fuzz/seed-corpus.py

Seed files are named `seed-<what>` and rewritten on every run; files libFuzzer adds (named by the
SHA-1 of their content) are left alone.
"""

import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
VECTORS = ROOT / "protocols" / "vectors"
CORPUS = ROOT / "fuzz" / "corpus"
TARGETS = ["transaction", "block", "sync_request", "sync_response", "gossip_tx_batch", "address", "peer_messages"]


def parse(text):
    fields, last = {}, None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0] in " \t":
            fields[last] += line.strip()
            continue
        k, v = line.split(":", 1)
        last = k.strip()
        fields[last] = v.strip()
    return fields


def vectors():
    for path in sorted(VECTORS.glob("*.txt")):
        yield path.stem, parse(path.read_text())


seeds = {t: {} for t in TARGETS}


def add(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    seeds[target][name] = data


HEADER_LEN = 1 + 8 + 32 + 8 + 8 + 32 + 32 + 32 + 8

for name, v in vectors():
    kind = v["type"]
    if kind == "tx":
        add("transaction", name, bytes.fromhex(v["hex"]))
        add("address", name + "-from", v["from"])
        add("address", name + "-id", v["id"])
    elif kind == "block":
        block = bytes.fromhex(v["hex"])
        add("block", name, block)
        add("block", name + "-header", bytes.fromhex(v["header.hex"]))
        add("address", name + "-hash", v["hash"])
        # The same block as gossip, and as a one-block sync response.
        add("peer_messages", name + "-gossip", bytes([0]) + struct.pack("<H", len(block)) + block)
    elif kind == "header":
        add("block", name, bytes.fromhex(v["hex"]))
    elif kind == "invalid":
        target = {"tx": "transaction", "block": "block", "header": "block"}[v["decoder"]]
        add(target, name, bytes.fromhex(v["hex"]))
    elif kind == "gossip-block":
        add("block", name, bytes.fromhex(v["payload"]))
    elif kind == "gossip-tx-batch":
        payload = bytes.fromhex(v["payload"])
        add("gossip_tx_batch", name, payload)
        add("peer_messages", name, bytes([1]) + struct.pack("<H", len(payload)) + payload)
    elif kind == "gossip-invalid":
        add("gossip_tx_batch", name, bytes.fromhex(v["payload"]))
    elif kind == "sync-request":
        frame = bytes.fromhex(v["frame"])
        add("sync_request", name + "-frame", frame)
        add("sync_request", name + "-payload", frame[4:])
        add("peer_messages", name, bytes([2]) + struct.pack("<H", len(frame) - 4) + frame[4:])
    elif kind == "sync-response":
        frame = bytes.fromhex(v["frame"])
        add("sync_response", name + "-frame", frame)
        add("sync_response", name + "-payload", frame[4:])
        add("peer_messages", name, bytes([3]) + struct.pack("<H", len(frame) - 4) + frame[4:])
    elif kind == "sync-invalid":
        target = {"request": "sync_request", "response": "sync_response"}[v["decoder"]]
        add(target, name, bytes.fromhex(v["payload"]))
    elif kind == "sync-frame-invalid":
        target = {"request": "sync_request", "response": "sync_response"}[v["direction"]]
        add(target, name, bytes.fromhex(v["frame"]))
    elif kind == "dev-account":
        add("address", name, v["address"])
        add("address", name + "-upper", v["address_uppercase"])
    elif kind == "invalid-address":
        add("address", name, v["string"])
    elif kind == "genesis":
        add("address", name + "-allocation", v["allocation.0"].split()[0])

# Hand-made address and hash strings.
add("address", "hash-0x-upper", "0x" + "AB" * 32)
add("address", "hash-odd", "abc")

# peer_messages: `selector u8 ‖ length u16 LE ‖ payload`; see fuzz_targets/peer_messages.rs.
def msg(selector, payload=b""):
    return bytes([selector]) + struct.pack("<H", len(payload)) + payload


def mine_a(max_txs=16, pos=0, mask=0):
    return msg(4, struct.pack("<BIB", max_txs, pos, mask))


def mine_b(n=1, max_txs=16):
    return msg(5, struct.pack("<BB", n - 1, max_txs))


def sync_a_from_b(pos=0, mask=0):
    return msg(6, struct.pack("<IB", pos, mask))


def sync_b_from_a():
    return msg(7)


def transfers(key=0, count=1, offset=0, amount=1000, fee=1, to=2, also_b=False, api=False, chain_id=None, pos=0, mask=0):
    flags = 0 if chain_id is None else 1
    p = struct.pack("<BBbIBBB", key, count - 1, offset, amount << 8, fee, to, flags)
    if chain_id is not None:
        p += struct.pack("<I", chain_id)
    p += struct.pack("<BIB", (1 if api else 0) | (2 if also_b else 0), pos, mask)
    return msg(8, p)


def gossip_from_b(height):
    return msg(9, struct.pack("<I", height))


def sync_request_range(start, count):
    return msg(2, struct.pack("<BQI", 2, start, count))


add("peer_messages", "mine", mine_a() * 4 + sync_request_range(1, 4))
add(
    "peer_messages",
    "txs-then-mine",
    transfers(0, 3, also_b=True) + transfers(1, 2, fee=9, to=3, api=True) + mine_a(16) + mine_b(1) + sync_a_from_b(),
)
add("peer_messages", "fork-and-reorg", mine_a() * 3 + mine_b(4) + sync_a_from_b() + mine_a() * 2 + sync_b_from_a())
add("peer_messages", "deep-fork", mine_a() * 20 + mine_b(4) * 6 + sync_a_from_b() + sync_b_from_a())
add("peer_messages", "orphans", mine_b(3) + gossip_from_b(3) + gossip_from_b(1) + gossip_from_b(2) + gossip_from_b(3))
add(
    "peer_messages",
    "mutated-blocks",
    transfers(0, 2) + mine_a(16, pos=HEADER_LEN + 20, mask=1) + mine_a(16, pos=HEADER_LEN - 40, mask=0x80)
    + mine_a(16, pos=HEADER_LEN - 1, mask=4) + mine_b(2) + sync_a_from_b(pos=60, mask=1),
)
add(
    "peer_messages",
    "bad-txs",
    transfers(0, 2, offset=-1) + transfers(1, 1, fee=0) + transfers(0, 1, chain_id=99) + transfers(1, 4, offset=3)
    + transfers(0, 1, amount=0xFFFFFF, mask=0x10, pos=40) + mine_a(64),
)

for target, files in seeds.items():
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("seed-*"):
        old.unlink()
    for name, data in files.items():
        (d / f"seed-{name}").write_bytes(data)
    print(f"{target}: {len(files)} seeds")
