#!/usr/bin/env python3
"""Slowloris beside normal traffic: $SLOW connections (default 300) each send a request head
one byte per second, while wrk measures normal requests; the same wrk run without them is
the baseline. Prints both latency profiles, and how many slow connections the gateway cut
off (its `header_read_timeout`, default 10 s, bounds a head however slowly it arrives).

    cargo build --release -p gateway-bin && python3 benches/slowloris.py

Needs nginx and wrk (apt-get install -y nginx-light wrk). Loopback only, bounded.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from bench_support import raise_fd_limit, start_bench_gateway, stop

SLOW = int(os.environ.get("SLOW", "300"))
SECONDS = int(os.environ.get("SECONDS", "15"))
GW = os.environ.get("GW", "target/release/gateway")


def wrk(port, seconds):
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/small"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    return rps, p50, p99


def slow_client(port, halt, cut):
    head = b"GET /small HTTP/1.1\r\nHost: gw\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return
    with s:
        for byte in head:
            if halt.is_set():
                return
            try:
                s.sendall(bytes([byte]))
            except OSError:
                cut.append(1)
                return
            halt.wait(1)


def main():
    raise_fd_limit(SLOW * 2 + 1024)
    work = tempfile.mkdtemp(prefix="slowloris-")
    procs, _, gw = start_bench_gateway(work, GW, "access_log = false\n")
    try:
        wrk(gw, 2)
        baseline = wrk(gw, SECONDS)
        halt, cut = threading.Event(), []
        threads = [
            threading.Thread(target=slow_client, args=(gw, halt, cut), daemon=True)
            for _ in range(SLOW)
        ]
        for thread in threads:
            thread.start()
        time.sleep(2)
        under = wrk(gw, SECONDS)
        halt.set()
        for thread in threads:
            thread.join(timeout=5)
        print(f"without slow clients: {baseline[0]:9.0f} req/s, p50 {baseline[1]}, p99 {baseline[2]}")
        print(f"with {SLOW} slow clients: {under[0]:9.0f} req/s, p50 {under[1]}, p99 {under[2]}")
        print(f"slow connections cut off by the gateway: {len(cut)} of {SLOW}")
        print(
            f"RESULT slow={SLOW} base_rps={baseline[0]:.0f} base_p99={baseline[2]} "
            f"rps={under[0]:.0f} p99={under[2]} cut={len(cut)}"
        )
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
