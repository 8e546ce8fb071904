#!/usr/bin/env python3
"""The gateway's end-to-end scenarios against nginx, one command.

For each scenario (the TOML templates beside this file; all by default, or those named), fills
in the template, starts redis-server when the scenario needs it, runs the team's harness
(../shared/bench/proxybench.py) with the gateway on that config as the proxy under test (and a
valid JWT for the routes that need one), and writes results.md and results.svg here.

    python3 benches/e2e/run.py                      # all four scenarios, harness defaults
    python3 benches/e2e/run.py --quick plain full   # smoke run (ROUNDS=1 DURATION=3 LARGE_DURATION=0)
    WAIT_IDLE=60 REDO_NOISY=6 python3 benches/e2e/run.py --callgrind
    python3 benches/e2e/run.py --callgrind-only     # instructions per request only, no harness

Harness settings not given as options (WAIT_IDLE, REDO_NOISY, WARMUP, pinning...) pass through
from the environment. `--callgrind` also counts instructions per request the way
benches/callgrind.sh does, on the scenario's own config. Needs nginx, wrk and redis-server
(and valgrind, h2load for --callgrind); stdlib Python only.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from bench_support import free_port, start_upstream, wait_port  # noqa: E402

SCENARIOS = ["plain", "full", "redis", "redis_lease"]
GW = os.path.abspath(os.environ.get("GW", os.path.join(ROOT, "target/release/gateway")))
PROXYBENCH = os.environ.get("PROXYBENCH", os.path.join(ROOT, "../shared/bench/proxybench.py"))
SECRET = "e2e-bench-secret-0123456789abcdef0123456789abcdef"  # HS256 wants >= 32 bytes
CLK_TCK = os.sysconf("SC_CLK_TCK")

started = []  # (Popen, seconds of grace before SIGKILL, in a group of its own), last first


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, past the per-scenario error handling."""


def start(argv, log, env=None, grace=5):
    """Starts `argv` in its own process group (its PID), so cleanup signals exactly what we
    started (a proxybench, a redis-server, a valgrind), never anything chosen by name."""
    with open(log, "ab") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
    started.append((p, grace, True))
    return p


def stop(p, grace=5):
    """SIGTERM to what we started, SIGKILL after `grace` seconds."""
    grouped = any(q is p and g for q, _, g in started)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            # bench_support's nginx upstream is not a group leader: its master stops its workers.
            os.killpg(p.pid, sig) if grouped else p.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            p.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            pass
    started[:] = [e for e in started if e[0] is not p]


def stop_all():
    for p, grace, _ in reversed(started[:]):
        stop(p, grace)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime + stime, all threads


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(ttl=24 * 3600):
    """An HS256 token the scenarios' [jwt] accepts (as tests/support/jwt.rs mints them). The
    long lifetime outlasts any benchmark run."""
    now = int(time.time())
    compact = lambda obj: b64(json.dumps(obj, separators=(",", ":")).encode())
    header = compact({"typ": "JWT", "alg": "HS256"})
    claims = compact({"user_id": "bench", "iss": "api-gateway", "iat": now, "exp": now + ttl})
    sig = hmac.new(SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(sig)}"


def fill(template, **values):
    for k, v in values.items():
        template = template.replace(f"@{k}@", v)
    return template


def check_config(name, text, work, env):
    path = f"{work}/{name}.check.toml"
    with open(path, "w") as f:
        f.write(fill(text, LISTEN=f"127.0.0.1:{free_port()}", UPSTREAM_URL="http://127.0.0.1:1"))
    r = subprocess.run([GW, "check", "--config", path], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"config does not load: {r.stderr.strip()}")
    print(f"  {r.stdout.strip()}")


def run_proxybench(name, text, work, env, args, headers):
    """The harness on this config; returns (RESULT fields, estimated proxy requests)."""
    # The listen address and upstream are known only inside proxybench: PROXY_CMD fills them in.
    partial = f"{work}/{name}.partial.toml"
    with open(partial, "w") as f:
        f.write(text)
    cfg = f"{work}/{name}.toml"
    cmd = (f'sed -e "s|@LISTEN@|$PROXY_ADDR|" -e "s|@UPSTREAM_URL@|$UPSTREAM_URL|" '
           f"{shlex.quote(partial)} >{shlex.quote(cfg)} && exec {shlex.quote(GW)} --config {shlex.quote(cfg)}")
    json_out = f"{work}/{name}.json"
    env = dict(env, PROXY_CMD=cmd, HEADERS="\n".join(headers), JSON_OUT=json_out)
    for key, value in (("ROUNDS", args.rounds), ("DURATION", args.duration),
                       ("LARGE_DURATION", args.large_duration)):
        if value is not None:
            env[key] = str(value)
    log = f"{work}/{name}.proxybench.log"
    # Through a log file rather than a pipe, so it keeps running (and cleans up) even if we die.
    bench = start([sys.executable, PROXYBENCH], log, env=env, grace=30)
    with open(log, errors="replace") as f:
        while True:
            line = f.readline()
            if line:
                print(f"  | {line.rstrip()}", flush=True)
            elif bench.poll() is not None:
                break
            else:
                time.sleep(0.2)
    stop(bench)
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    result = [l for l in lines if l.startswith("RESULT ")]
    if bench.returncode != 0 or not result:
        raise RuntimeError(f"proxybench failed (rc {bench.returncode}): {lines[-1] if lines else ''}")
    fields = dict(kv.split("=", 1) for kv in result[-1].split()[1:])
    return fields, proxy_requests(json_out, lines)


def proxy_requests(json_out, lines):
    """Requests the proxy under test served in the whole proxybench run: the counted runs
    exactly (JSON_OUT), plus the uncounted ones estimated from their rate: the warm-up, and
    runs redone because they were noisy (only their printed req/s is known)."""
    with open(json_out) as f:
        data = json.load(f)
    a = data["args"]
    counted = sum(r["requests"] for by_target in data["results"].values()
                  for r in by_target.get("proxy", []))
    warmup = a["warmup"] * data["summary"]["/small"]["proxy"]["rps"]
    redone, seconds = 0.0, {"/small": a["duration"], "/16k": a["large_duration"]}
    for line, after in zip(lines, lines[1:]):
        m = re.search(r"round \d+/\d+ (\S+)\s+proxy\s+rps=\s*(\d+)", line)
        if m and "(redoing this run" in after:
            redone += float(m.group(2)) * seconds[m.group(1)]
    return counted + warmup + redone


def callgrind(name, text, work, env, headers, redis_url):
    """Instructions per request as benches/callgrind.sh counts them (all threads, one worker,
    h2load --h1 -c 16 against a local nginx upstream, a 22,000- minus a 2,000-request run, so
    start-up and shutdown cancel out), on this scenario's config."""
    up, gw = free_port(), free_port()
    upstream = start_upstream(work, up)  # bench_support's: 100 bytes on every path
    started.append((upstream, 5, False))
    # callgrind.sh's `workers = 1`: one event loop, as valgrind serialises threads anyway.
    text = fill(text, LISTEN=f"127.0.0.1:{gw}", UPSTREAM_URL=f"http://127.0.0.1:{up}",
                REDIS_URL=redis_url).replace("[server]\n", "[server]\nworkers = 1\n", 1)
    cfg = f"{work}/{name}.callgrind.toml"
    with open(cfg, "w") as f:
        f.write(text)
    h2load_headers = [x for h in headers for x in ("-H", h)]
    request_headers = dict(h.split(": ", 1) for h in headers)

    def total(n):
        out = f"{work}/cg.{name}.{n}"
        vg = start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", GW,
                    "--config", cfg], f"{work}/{name}.valgrind.log", env=env, grace=120)
        deadline = time.time() + 120
        while True:  # answering, not only listening (valgrind starts slowly)
            try:
                c = http.client.HTTPConnection("127.0.0.1", gw, timeout=5)
                c.request("GET", "/small", headers=request_headers)
                c.getresponse().read()
                c.close()
                break
            except OSError:
                if time.time() > deadline or vg.poll() is not None:
                    raise RuntimeError(f"gateway under valgrind did not answer (see {work})")
                time.sleep(0.2)
        r = subprocess.run(["h2load", "--h1", "-n", str(n), "-c", "16", "-m", "1",
                            *h2load_headers, f"http://127.0.0.1:{gw}/small"],
                           capture_output=True, text=True)
        # "succeeded" counts any status: a 401 or 429 must show as not 2xx.
        if f"{n} succeeded" not in r.stdout or not re.search(rf"status codes: {n} 2xx", r.stdout):
            raise RuntimeError(f"h2load: not every request got a 2xx:\n{r.stdout[-1500:]}")
        stop(vg, 120)  # SIGTERM: the gateway exits cleanly and callgrind writes its totals
        ann = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True).stdout
        return int(re.search(r"^([\d,]+) .*PROGRAM TOTALS", ann, re.M).group(1).replace(",", ""))

    try:
        small = total(2000)
        large = total(22000)
    finally:
        stop(upstream)
    return (large - small) / 20000


def run_scenario(name, work, args):
    with open(os.path.join(HERE, f"{name}.toml")) as f:
        text = f.read()
    env = dict(os.environ, E2E_JWT_SECRET=SECRET)
    headers = [f"Authorization: Bearer {token()}"] if "[jwt]" in text else []
    row = {"scenario": name}
    redis, redis_url = None, ""
    try:
        if "@REDIS_URL@" in text:
            port = free_port()
            redis_url = f"redis://127.0.0.1:{port}"
            redis = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", work],
                          f"{work}/redis.log")
            wait_port(port)
            text = fill(text, REDIS_URL=redis_url)
        check_config(name, text, work, env)
        if not args.callgrind_only:
            before = cpu_ticks(redis.pid) if redis else 0
            row["result"], requests = run_proxybench(name, text, work, env, args, headers)
            if redis:
                row["redis_us"] = (cpu_ticks(redis.pid) - before) / CLK_TCK * 1e6 / requests
        if args.callgrind:
            row["instructions"] = callgrind(name, text, work, env, headers, redis_url)
            print(f"  instructions per request: {row['instructions']:.0f}")
    except (RuntimeError, OSError, SystemExit) as e:
        print(f"  {name} FAILED: {e}", flush=True)
        row["failed"] = str(e).splitlines()[0] if str(e) else "failed"
    finally:
        stop_all()  # the last started first: proxybench or valgrind, then redis-server
    return row


def num(fields, key):
    try:
        return float(fields[key])
    except (KeyError, ValueError):
        return float("nan")


def ratios(row):
    r = row.get("result", {})
    return num(r, "ratio_vs_nginx"), num(r, "proxy_cpu_us_per_req") / num(r, "nginx_cpu_us_per_req")


def write_markdown(rows, args, path):
    cg = args.callgrind
    head = ["scenario", "req/s vs nginx", "CPU/req vs nginx", "p99 ms proxy (nginx)",
            "Redis CPU µs/req", "errors", "noisy runs"] + (["instructions/request"] if cg else [])
    out = [f"# End-to-end scenarios against nginx ({time.strftime('%Y-%m-%d %H:%M %Z')})", "",
           f"`python3 benches/e2e/run.py {' '.join(sys.argv[1:])}`"
           + (" -- **smoke run, not figures of record**" if args.quick else ""), "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        r = row.get("result")
        if not r and "instructions" in row:  # --callgrind-only
            out.append(f"| {row['scenario']} |" + " – |" * (len(head) - 2)
                       + f" {row['instructions']:,.0f} |")
            continue
        if not r:
            out.append(f"| {row['scenario']} | failed: {row.get('failed', '?')} |")
            continue
        rps, cpu = ratios(row)
        cells = [row["scenario"],
                 f"{rps:.3f} ({r['proxy_rps']} vs {r['nginx_rps']})",
                 f"{cpu:.2f}x ({r['proxy_cpu_us_per_req']} vs {r['nginx_cpu_us_per_req']} µs)",
                 f"{r['p99_ms']} ({r['nginx_p99_ms']})",
                 f"{row['redis_us']:.2f}" if "redis_us" in row else "–",
                 r["errors"], r["noisy_runs"]]
        if cg:
            cells.append(f"{row['instructions']:,.0f}" if "instructions" in row else "–")
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "Redis CPU is redis-server's own (from /proc) over the whole harness run, divided by "
            "the requests the gateway served in it (warm-up estimated from its rate).", "",
            "Raw `RESULT` lines:", ""]
    out += [f"- {row['scenario']}: `RESULT " + " ".join(f"{k}={v}" for k, v in row["result"].items()) + "`"
            for row in rows if "result" in row]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def write_svg(rows, path):
    """Per scenario, req/s and CPU per request as ratios to nginx, with a line at 1.0."""
    rows = [r for r in rows if "result" in r]
    values = [ratios(r) for r in rows]
    top = max([1.5] + [v for pair in values for v in pair if v == v]) * 1.1
    left, right, plot_top, plot_h, group = 50, 20, 50, 240, 130
    width, height = left + right + group * max(1, len(rows)), plot_top + plot_h + 60
    y = lambda v: plot_top + plot_h * (1 - v / top)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Gateway vs nginx, '
             'ratio (req/s: higher is better; CPU/request: lower is better)</text>',
             f'<rect x="{left}" y="30" width="10" height="10" fill="#4878a8"/>'
             f'<text x="{left + 14}" y="39">req/s ratio</text>',
             f'<rect x="{left + 100}" y="30" width="10" height="10" fill="#e08040"/>'
             f'<text x="{left + 114}" y="39">CPU/request ratio</text>',
             f'<line x1="{left}" y1="{plot_top}" x2="{left}" y2="{plot_top + plot_h}" stroke="black"/>',
             f'<line x1="{left}" y1="{plot_top + plot_h}" x2="{width - right}" '
             f'y2="{plot_top + plot_h}" stroke="black"/>']
    tick = 0.0
    while tick <= top:
        parts.append(f'<text x="{left - 5}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.1f}</text>')
        tick += 0.5
    for i, (row, pair) in enumerate(zip(rows, values)):
        x0 = left + group * i + 20
        for j, (v, colour) in enumerate(zip(pair, ("#4878a8", "#e08040"))):
            if v != v:
                continue
            x = x0 + j * 45
            parts.append(f'<rect x="{x}" y="{y(v):.1f}" width="40" height="{y(0) - y(v):.1f}" '
                         f'fill="{colour}"/>')
            parts.append(f'<text x="{x + 20}" y="{y(v) - 4:.1f}" text-anchor="middle">{v:.2f}</text>')
        parts.append(f'<text x="{x0 + 42}" y="{plot_top + plot_h + 18}" text-anchor="middle">'
                     f'{row["scenario"]}</text>')
    parts.append(f'<line x1="{left}" y1="{y(1):.1f}" x2="{width - right}" y2="{y(1):.1f}" '
                 'stroke="black" stroke-dasharray="6,4"/>')
    parts.append(f'<text x="{width - right}" y="{y(1) - 4:.1f}" text-anchor="end">nginx = 1.0</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def on_signal(signum, _frame):
    raise Interrupted(signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", help=f"default: all ({', '.join(SCENARIOS)})")
    ap.add_argument("--rounds", type=int, help="proxybench ROUNDS")
    ap.add_argument("--duration", type=int, help="proxybench DURATION (s per /small run)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: ROUNDS=1 DURATION=3 LARGE_DURATION=0")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count instructions per request under valgrind (as benches/callgrind.sh)")
    ap.add_argument("--callgrind-only", action="store_true",
                    help="only count instructions (no harness run: quick, and immune to a busy machine)")
    args = ap.parse_args()
    args.callgrind = args.callgrind or args.callgrind_only
    args.large_duration = None
    if args.quick:
        args.rounds = args.rounds or 1
        args.duration = args.duration or 3
        args.large_duration = 0
    names = args.scenarios or SCENARIOS
    if set(names) - set(SCENARIOS):
        ap.error(f"unknown scenario(s) {sorted(set(names) - set(SCENARIOS))}; known: {SCENARIOS}")
    if not os.access(GW, os.X_OK):
        raise SystemExit(f"{GW} missing: cargo build --release -p gateway-bin")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    work = tempfile.mkdtemp(prefix="e2e.")
    os.chmod(work, 0o755)  # nginx workers may run as 'nobody'
    rows = []
    try:
        for name in names:
            print(f"== {name}", flush=True)
            rows.append(run_scenario(name, work, args))
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted; cleaning up", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # An instructions-only run keeps the harness figures (results.md, results.svg) as they are.
    md = os.path.join(HERE, "callgrind.md" if args.callgrind_only else "results.md")
    write_markdown(rows, args, md)
    if not args.callgrind_only:
        write_svg(rows, os.path.join(HERE, "results.svg"))
    print(open(md).read())
    if args.callgrind_only:
        return 0 if all("instructions" in r for r in rows) else 1
    ok = all("result" in r and r["result"]["errors"] == "0" for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
