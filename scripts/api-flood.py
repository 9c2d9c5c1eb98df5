#!/usr/bin/env python3
"""Floods a Vision node's public HTTP API with GET requests from one source address.

Used by tests/it/api_flood.rs (a separate OS process, as an attacker would be), and by hand:

    python3 scripts/api-flood.py --url http://127.0.0.1:7070 --source 127.0.0.2 \
        --path '/v1/accounts/vis1.../txs?limit=500' --path /v1/blocks/1 --duration 30

Each of --processes processes runs --connections threads; each thread holds one keep-alive
HTTP/1.1 connection, bound to --source, and sends the --path list round robin, as fast as the
answers come back (a closed loop: the offered rate is what the node lets through). A connection
the node closes is reopened. At the end one JSON line goes to stdout:

    {"requests": N, "seconds": S, "rps": R, "by_status": {"200": n, "429": n, ...},
     "errors": n, "bytes": n, "retry_after_seen": bool}

Only the standard library; Linux or macOS.
"""

import argparse
import json
import multiprocessing
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


def read_response(sock, buf):
    """Reads one HTTP/1.1 response; returns (status, body_len, retry_after, keep_alive, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    keep_alive = headers.get(b"connection", b"").lower() != b"close"
    retry_after = b"retry-after" in headers
    if b"content-length" in headers:
        n = int(headers[b"content-length"])
        while len(rest) < n:
            chunk = sock.recv(max(65536, n - len(rest)))
            if not chunk:
                raise ConnectionError("closed in body")
            rest += chunk
        return status, n, retry_after, keep_alive, rest[n:]
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        total = 0
        while True:
            while b"\r\n" not in rest:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed in chunk size")
                rest += chunk
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed in chunk")
                rest += chunk
            rest = rest[size + 2 :]
            total += size
            if size == 0:
                return status, total, retry_after, keep_alive, rest
    # No length: the body ends with the connection.
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, len(rest), retry_after, False, b""


def worker(host, port, source, paths, deadline, offset, stats, lock):
    local = {"requests": 0, "errors": 0, "bytes": 0, "by_status": {}, "retry_after_seen": False}
    i = offset
    sock = None
    buf = b""
    while time.monotonic() < deadline:
        try:
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(30)
                if source:
                    sock.bind((source, 0))
                sock.connect((host, port))
                buf = b""
            path = paths[i % len(paths)]
            i += 1
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            status, n, retry_after, keep_alive, buf = read_response(sock, buf)
            local["requests"] += 1
            local["bytes"] += n
            key = str(status)
            local["by_status"][key] = local["by_status"].get(key, 0) + 1
            if retry_after:
                local["retry_after_seen"] = True
            if not keep_alive:
                sock.close()
                sock = None
        except (OSError, ConnectionError, ValueError, IndexError):
            local["errors"] += 1
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.01)
    if sock is not None:
        sock.close()
    with lock:
        for k in ("requests", "errors", "bytes"):
            stats[k] += local[k]
        for k, v in local["by_status"].items():
            stats["by_status"][k] = stats["by_status"].get(k, 0) + v
        stats["retry_after_seen"] = stats["retry_after_seen"] or local["retry_after_seen"]


def process_main(args, deadline, index, queue):
    u = urlsplit(args.url)
    stats = {"requests": 0, "errors": 0, "bytes": 0, "by_status": {}, "retry_after_seen": False}
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=worker,
            args=(u.hostname, u.port or 80, args.source, args.path, deadline, index * 1000 + t, stats, lock),
            daemon=True,
        )
        for t in range(args.connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(stats)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="base URL of the public API, http://HOST:PORT")
    p.add_argument("--source", default=None, help="local address to send from (e.g. 127.0.0.2)")
    p.add_argument("--path", action="append", required=True, help="path and query to GET (repeatable)")
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections per process")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--duration", type=float, default=10.0, help="seconds")
    args = p.parse_args()
    start = time.monotonic()
    deadline = start + args.duration
    queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=process_main, args=(args, deadline, i, queue)) for i in range(args.processes)
    ]
    for pr in procs:
        pr.start()
    total = {"requests": 0, "errors": 0, "bytes": 0, "by_status": {}, "retry_after_seen": False}
    for _ in procs:
        s = queue.get()
        for k in ("requests", "errors", "bytes"):
            total[k] += s[k]
        for k, v in s["by_status"].items():
            total["by_status"][k] = total["by_status"].get(k, 0) + v
        total["retry_after_seen"] = total["retry_after_seen"] or s["retry_after_seen"]
    for pr in procs:
        pr.join()
    seconds = time.monotonic() - start
    total["seconds"] = round(seconds, 3)
    total["rps"] = round(total["requests"] / seconds, 1)
    print(json.dumps(total, sort_keys=True))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
