#!/usr/bin/env python3
"""Memory of idle keep-alive client connections, and whether it is given back.

Starts the release gateway (`target/release/gateway`, or $GW) in front of a local nginx
upstream, then:

1. RSS idle (after one warm-up request);
2. N client connections (default 5,000, $CONNS) each send one request, read the response and
   stay open, idle: RSS with them open, and bytes per connection;
3. the connections close; RSS right after and 30 s later ($SETTLE): memory given back.

Loopback only, bounded: every step has a timeout. Needs nginx (apt-get install -y nginx-light).

    cargo build --release -p gateway-bin && python3 benches/idle_connections.py
"""

import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

CONNS = int(os.environ.get("CONNS", "5000"))
SETTLE = float(os.environ.get("SETTLE", "30"))
GW = os.environ.get("GW", "target/release/gateway")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


async def one_request(port):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    writer.write(b"GET /small HTTP/1.1\r\nHost: gw\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await asyncio.wait_for(reader.readexactly(length), 10)
    return writer


async def open_idle(port, count):
    writers = []
    # A few hundred at a time: the accept queue and the loop stay unhurried.
    for start in range(0, count, 250):
        batch = await asyncio.gather(
            *(one_request(port) for _ in range(start, min(count, start + 250)))
        )
        writers.extend(batch)
    return writers


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, CONNS * 2 + 1024)), hard))
    work = tempfile.mkdtemp(prefix="idle-conns-")
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
            f'[server]\nlisten = "127.0.0.1:{gw}"\nheader_read_timeout = "600s"\n'
            f'[upstreams.bench]\ntargets = ["http://127.0.0.1:{up}"]\n'
            '[[routes]]\npath = "/"\nupstream = "bench"\n'
        )
    nginx = subprocess.Popen(["nginx", "-p", work, "-c", f"{work}/nginx.conf"])
    gateway = subprocess.Popen([GW, "--config", f"{work}/gateway.toml"], stdout=subprocess.DEVNULL)
    try:
        wait_port(up)
        wait_port(gw)
        async def warm_up():
            writer = await one_request(gw)
            writer.close()
            await writer.wait_closed()

        asyncio.run(warm_up())
        time.sleep(1)
        idle = rss(gateway.pid)

        async def storm():
            writers = await open_idle(gw, CONNS)
            await asyncio.sleep(2)
            with_conns = rss(gateway.pid)
            for writer in writers:
                writer.close()
            await asyncio.sleep(2)
            return with_conns

        with_conns = asyncio.run(storm())
        after = rss(gateway.pid)
        time.sleep(SETTLE)
        settled = rss(gateway.pid)
        per_conn = (with_conns - idle) / CONNS
        print(f"RSS idle:                       {idle / 2**20:8.1f} MiB")
        print(f"RSS with {CONNS} idle conns:   {with_conns / 2**20:8.1f} MiB  ({per_conn / 1024:.1f} KiB per connection)")
        print(f"RSS 2 s after they closed:      {after / 2**20:8.1f} MiB")
        print(f"RSS {SETTLE:.0f} s after they closed:     {settled / 2**20:8.1f} MiB  ({(settled - idle) / max(idle, 1) * 100:+.0f}% over idle)")
        print(
            f"RESULT idle_bytes={idle} conns={CONNS} with_conns_bytes={with_conns} "
            f"bytes_per_conn={per_conn:.0f} after_bytes={after} settled_bytes={settled}"
        )
    finally:
        gateway.terminate()
        nginx.terminate()
        for process in (gateway, nginx):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
