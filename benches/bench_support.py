"""What the Python bench scripts beside this file share: free loopback ports, waiting for a
listener, the nginx upstream answering 100 bytes at `/` (alone, or with the gateway in front of
it), reading one response, process memory and fds from `/proc`, the file-descriptor limit, and
stopping what a script started."""

import asyncio
import os
import resource
import socket
import subprocess
import time

SMALL_BODY = "0123456789" * 10


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


def rss(pid):
    """Resident memory of `pid`, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, needed)), hard))


def start_upstream(work, port):
    """nginx (one worker, its files in `work`) answering `SMALL_BODY` on every path; returns
    once it listens."""
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(
            f"worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            f"http {{ access_log off; client_body_temp_path {work}; proxy_temp_path {work};"
            f" fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};\n"
            "  keepalive_requests 1000000;\n"
            f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"{SMALL_BODY}\"; }} }} }}\n"
        )
    nginx = subprocess.Popen(["nginx", "-p", work, "-c", f"{work}/nginx.conf"])
    wait_port(port)
    return nginx


def start_bench_gateway(work, binary, server_lines=""):
    """nginx and the gateway (`binary`) in front of it, one route `/` to it, `server_lines`
    added to `[server]`; returns the processes (for `stop`), the gateway's process and port,
    once both listen."""
    up, gw = free_port(), free_port()
    with open(f"{work}/gateway.toml", "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{gw}"\n{server_lines}'
            f'[upstreams.bench]\ntargets = ["http://127.0.0.1:{up}"]\n'
            '[[routes]]\npath = "/"\nupstream = "bench"\n'
        )
    procs = [start_upstream(work, up)]
    try:
        gateway = subprocess.Popen(
            [binary, "--config", f"{work}/gateway.toml"], stdout=subprocess.DEVNULL
        )
        procs.append(gateway)
        wait_port(gw)
    except BaseException:
        stop(procs)
        raise
    return procs, gateway, gw


async def read_response(reader, timeout):
    """Reads one HTTP/1.1 response with a `Content-Length` body; returns its head."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await asyncio.wait_for(reader.readexactly(length), timeout)
    return head


def stop(processes):
    """Stops the processes, the last started first."""
    for process in reversed(processes):
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
