#!/usr/bin/env python3
"""Memory of idle keep-alive client connections, and whether it is given back.

Starts the release gateway (`target/release/gateway`, or $GW) in front of a local nginx
upstream, then:

1. RSS idle (after one warm-up request);
2. N client connections (default 5,000, $CONNS) each send one request, read the response and
   stay open, idle: RSS with them open, and bytes per connection;
3. the connections close; RSS right after and 30 s later ($SETTLE): memory given back.

The connections idle 2 s before RSS is read, past `[server] release_idle_after` (default
1 s), so they have given their request buffers back; $RELEASE_IDLE_AFTER sets it (e.g.
"600s": never, to see what they hold before). TLS=1 serves the connections over TLS (a
self-signed certificate made with openssl, ALPN http/1.1).

Loopback only, bounded: every step has a timeout. Needs nginx (apt-get install -y nginx-light).

    cargo build --release -p gateway-bin && python3 benches/idle_connections.py
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time

from bench_support import raise_fd_limit, read_response, rss, start_bench_gateway, stop

CONNS = int(os.environ.get("CONNS", "5000"))
SETTLE = float(os.environ.get("SETTLE", "30"))
GW = os.environ.get("GW", "target/release/gateway")
RELEASE_IDLE_AFTER = os.environ.get("RELEASE_IDLE_AFTER")
TLS = os.environ.get("TLS") == "1"
CLIENT_TLS = None


def client_tls():
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def self_signed(work):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", f"{work}/key.pem", "-out", f"{work}/cert.pem"],
        check=True, capture_output=True,
    )
    return f'[server.tls]\ncert = "{work}/cert.pem"\nkey = "{work}/key.pem"\n'


async def one_request(port):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=CLIENT_TLS), 10
    )
    writer.write(b"GET /small HTTP/1.1\r\nHost: gw\r\n\r\n")
    await writer.drain()
    await read_response(reader, 10)
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
    global CLIENT_TLS
    if TLS:
        CLIENT_TLS = client_tls()
    raise_fd_limit(CONNS * 2 + 1024)
    work = tempfile.mkdtemp(prefix="idle-conns-")
    procs, gateway, gw = start_bench_gateway(
        work,
        GW,
        'header_read_timeout = "600s"\n'
        + (f'release_idle_after = "{RELEASE_IDLE_AFTER}"\n' if RELEASE_IDLE_AFTER else "")
        + (self_signed(work) if TLS else ""),
    )
    try:
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
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
