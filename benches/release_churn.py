#!/usr/bin/env python3
"""Idle-connection release under churn: requests that arrive around the release point.

CONNS keep-alive connections (default 300) each send a request every 80-120 ms for SECS
seconds (default 20) to a gateway with `release_idle_after = REL` (default 100ms), so
connections are released and resumed all the time; a third of the heads arrive in two
pieces with up to 150 ms between them, and some come right behind the previous request in
the same write, cut short, with their rest sent up to 150 ms after the first response
(hyper holds the piece when the connection is released). Every response must be a 200
without `connection: close`, and no connection may fail. Loopback only; needs nginx.

    cargo build --release -p gateway-bin && python3 benches/release_churn.py
"""

import asyncio
import os
import random
import sys
import tempfile
import time

from bench_support import raise_fd_limit, read_response, start_bench_gateway, stop

CONNS = int(os.environ.get("CONNS", "300"))
SECS = float(os.environ.get("SECS", "20"))
REL = os.environ.get("REL", "100ms")
GW = os.environ.get("GW", "target/release/gateway")
REQUEST = b"GET /small HTTP/1.1\r\nHost: gw\r\n\r\n"


class Tally:
    ok = 0
    errors = 0
    split_heads = 0
    read_ahead = 0


async def response(reader, tally):
    head = await read_response(reader, 5)
    if head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower():
        tally.ok += 1
    else:
        tally.errors += 1
        print("unexpected head:", head[:80])


async def client(port, deadline, tally):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.time() < deadline:
        await asyncio.sleep(random.uniform(0.08, 0.12))
        try:
            draw = random.random()
            cut = random.randint(1, len(REQUEST) - 1)
            if draw < 0.15:
                writer.write(REQUEST + REQUEST[:cut])
                await writer.drain()
                await response(reader, tally)
                await asyncio.sleep(random.uniform(0.0, 0.15))
                writer.write(REQUEST[cut:])
                tally.read_ahead += 1
            elif draw < 0.45:
                writer.write(REQUEST[:cut])
                await writer.drain()
                await asyncio.sleep(random.uniform(0.0, 0.15))
                writer.write(REQUEST[cut:])
                tally.split_heads += 1
            else:
                writer.write(REQUEST)
            await writer.drain()
            await response(reader, tally)
        except Exception as error:  # a failed connection is the finding
            tally.errors += 1
            print("connection failed:", type(error).__name__, error)
            return
    writer.close()


def main():
    raise_fd_limit(CONNS * 2 + 1024)
    work = tempfile.mkdtemp(prefix="release-churn-")
    procs, _, gw = start_bench_gateway(
        work, GW, f'release_idle_after = "{REL}"\naccess_log = false\n'
    )
    tally = Tally()
    try:

        async def run():
            deadline = time.time() + SECS
            await asyncio.gather(*(client(gw, deadline, tally) for _ in range(CONNS)))

        asyncio.run(run())
    finally:
        stop(procs)
    print(
        f"RESULT ok={tally.ok} errors={tally.errors} split_heads={tally.split_heads} "
        f"read_ahead={tally.read_ahead} "
        f"conns={CONNS} secs={SECS:.0f}"
    )
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
