#!/usr/bin/env python3
"""A full-stack soak: JWT auth, a Redis token bucket keyed by user, a circuit breaker and header
rules, under wrk for $DURATION seconds (default 60), against a local nginx upstream and a
local redis-server started here on free loopback ports.

Checks what a soak must show, and prints it:
- no 5xx from the gateway;
- every 429 accounted for: the 429 responses equal the rate limiter's `limited` decisions;
- resident memory and open file descriptors flat (sampled every 5 s, first sample after
  the warm-up against the last);
- wrk's own error counts.

    cargo build --release -p gateway-bin && python3 benches/soak.py

Needs nginx, wrk and redis-server (apt-get install -y nginx-light wrk redis-server).
"""

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from bench_support import fds, free_port, rss, start_upstream, stop, wait_port

DURATION = int(os.environ.get("DURATION", "60"))
CONNS = int(os.environ.get("CONNS", "32"))
GW = os.environ.get("GW", "target/release/gateway")
SECRET = "soak-secret-0123456789abcdef0123456789abcdef"


def metrics(admin):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        return r.read().decode()


def total(text, pattern):
    return sum(
        float(m.group(1)) for m in re.finditer(pattern + r"\S* (\d+(?:\.\d+)?)$", text, re.M)
    )


def main():
    work = tempfile.mkdtemp(prefix="soak-")
    up, gw, admin, redis = free_port(), free_port(), free_port(), free_port()
    config = f"""[server]
listen = "127.0.0.1:{gw}"
access_log = false
[admin]
listen = "127.0.0.1:{admin}"
[jwt]
algorithms = ["HS256"]
secret_env = "SOAK_JWT_SECRET"
[redis]
url = "redis://127.0.0.1:{redis}"
on_error = "deny"
[upstreams.bench]
targets = ["http://127.0.0.1:{up}"]
[upstreams.bench.circuit_breaker]
failure_threshold = 5
[[routes]]
path = "/"
upstream = "bench"
auth = "required"
[routes.rate_limit]
algorithm = "token_bucket"
capacity = 200
refill_per_second = 20000.0
key = "user"
[routes.request_headers]
set = {{ "X-Caller" = "{{claim.user_id}}" }}
remove = ["Cookie"]
[routes.response_headers]
set = {{ "X-Gateway" = "soak" }}
remove = ["Server"]
"""
    with open(f"{work}/gateway.toml", "w") as f:
        f.write(config)
    env = dict(os.environ, SOAK_JWT_SECRET=SECRET)
    procs = [
        subprocess.Popen(
            ["redis-server", "--port", str(redis), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", work],
            stdout=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_port(redis)
        procs.append(start_upstream(work, up))
        gateway = subprocess.Popen(
            [GW, "--config", f"{work}/gateway.toml"], env=env, stdout=subprocess.DEVNULL
        )
        procs.append(gateway)
        wait_port(gw)
        wait_port(admin)
        token = subprocess.run(
            [GW, "token", "--config", f"{work}/gateway.toml", "--claim", "user_id=soak"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()
        header = f"Authorization: Bearer {token}"
        subprocess.run(
            ["wrk", "-t1", f"-c{CONNS}", "-d3s", "-H", header, f"http://127.0.0.1:{gw}/small"],
            capture_output=True, check=True,
        )
        before = metrics(admin)
        samples = []

        def sample():
            while not done.is_set():
                samples.append((time.time(), rss(gateway.pid), fds(gateway.pid)))
                done.wait(5)

        done = threading.Event()
        sampler = threading.Thread(target=sample)
        sampler.start()
        wrk = subprocess.run(
            ["wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "-H", header,
             f"http://127.0.0.1:{gw}/small"],
            capture_output=True, text=True, check=True,
        ).stdout
        done.set()
        sampler.join()
        after = metrics(admin)
        requests = int(re.search(r"(\d+) requests in", wrk).group(1))
        errors = re.search(r"Socket errors: (.*)", wrk)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)

        def delta(pattern):
            return total(after, pattern) - total(before, pattern)

        status_429 = delta(r'gateway_requests_total\{[^}]*status="429"')
        status_5xx = delta(r'gateway_requests_total\{[^}]*status="5\d\d"')
        limited = delta(r'gateway_ratelimit_decisions_total\{[^}]*decision="limited"')
        allowed = delta(r'gateway_ratelimit_decisions_total\{[^}]*decision="allowed"')
        # The first sample is taken as wrk connects: compare from the second (5 s in).
        first, last = samples[min(1, len(samples) - 1)], samples[-1]
        peak_rss = max(s[1] for s in samples)
        print(f"wrk: {requests} requests in {DURATION} s ({requests / DURATION:.0f}/s), "
              f"non-2xx {non2xx.group(1) if non2xx else 0}, socket errors: "
              f"{errors.group(1) if errors else 'none'}")
        print(f"gateway 5xx: {status_5xx:.0f}; 429: {status_429:.0f}; "
              f"limiter: limited {limited:.0f}, allowed {allowed:.0f}")
        print(f"RSS: {first[1] / 2**20:.1f} MiB at the start, {last[1] / 2**20:.1f} MiB at the end, "
              f"peak {peak_rss / 2**20:.1f} MiB; fds: {first[2]} -> {last[2]}")
        ok = status_5xx == 0 and status_429 == limited and last[2] <= first[2] + 4
        print(f"RESULT ok={ok} requests={requests} gateway_5xx={status_5xx:.0f} "
              f"status_429={status_429:.0f} limited={limited:.0f} rss_start={first[1]} "
              f"rss_end={last[1]} rss_peak={peak_rss} fds_start={first[2]} fds_end={last[2]}")
        return 0 if ok else 1
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
