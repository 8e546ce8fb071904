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
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

SLOW = int(os.environ.get("SLOW", "300"))
SECONDS = int(os.environ.get("SECONDS", "15"))
GW = os.environ.get("GW", "target/release/gateway")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def wrk(port, seconds):
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/small"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    return rps, p50, p99


def slow_client(port, stop, cut):
    head = b"GET /small HTTP/1.1\r\nHost: gw\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return
    with s:
        for byte in head:
            if stop.is_set():
                return
            try:
                s.sendall(bytes([byte]))
            except OSError:
                cut.append(1)
                return
            stop.wait(1)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, SLOW * 2 + 1024)), hard))
    work = tempfile.mkdtemp(prefix="slowloris-")
    up, gw = free_port(), free_port()
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(
            f"worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_body_temp_path {work}; proxy_temp_path {work};"
            f" fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};\n"
            f"  server {{ listen 127.0.0.1:{up}; location / {{ return 200 \"{'0123456789' * 10}\"; }} }} }}\n"
        )
    with open(f"{work}/gateway.toml", "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{gw}"\naccess_log = false\n'
            f'[upstreams.bench]\ntargets = ["http://127.0.0.1:{up}"]\n'
            '[[routes]]\npath = "/"\nupstream = "bench"\n'
        )
    procs = [subprocess.Popen(["nginx", "-p", work, "-c", f"{work}/nginx.conf"])]
    try:
        wait_port(up)
        procs.append(
            subprocess.Popen([GW, "--config", f"{work}/gateway.toml"], stdout=subprocess.DEVNULL)
        )
        wait_port(gw)
        wrk(gw, 2)
        baseline = wrk(gw, SECONDS)
        stop, cut = threading.Event(), []
        threads = [
            threading.Thread(target=slow_client, args=(gw, stop, cut), daemon=True)
            for _ in range(SLOW)
        ]
        for thread in threads:
            thread.start()
        time.sleep(2)
        under = wrk(gw, SECONDS)
        stop.set()
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
        for process in reversed(procs):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
