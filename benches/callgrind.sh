#!/usr/bin/env bash
# Instructions per request of the gateway (all threads), noise-free: runs the release binary
# under callgrind twice (2,000 and 22,000 requests from h2load over 16 keep-alive connections,
# against a local nginx upstream answering 100 bytes) and prints the difference / 20,000.
#
#   cargo build --release -p gateway-bin
#   bash benches/callgrind.sh [target/release/gateway] [extra [server] lines]
#   H2LOAD_HEADER='origin: https://app.example.com' bash benches/callgrind.sh ...   (one request header)
#   ROUTE_EXTRA='auth = "required"\n[routes.rate_limit]\n...' bash benches/callgrind.sh ...  (lines after the route)
#   PROFILE_OUT=/tmp/full.cg bash benches/callgrind.sh ...   (keep the longer run's profile for callgrind_annotate)
#
# Needs valgrind, nginx-light and nghttp2-client (h2load): apt-get install -y valgrind nginx-light nghttp2-client
set -euo pipefail
bin=${1:-target/release/gateway}
extra=${2:-}
dir=$(mktemp -d)
trap 'kill $(cat "$dir/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$dir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port); gw=$(free_port)
cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$up;
        location / { return 200 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"; }
    }
}
NGINX
nginx -p "$dir" -c "$dir/nginx.conf"
printf '[server]\nlisten = "127.0.0.1:%s"\nworkers = 1\n%b\n[upstreams.bench]\ntargets = ["http://127.0.0.1:%s"]\n[[routes]]\npath = "/"\nupstream = "bench"\n%b\n' \
  "$gw" "$extra" "$up" "${ROUTE_EXTRA:-}" >"$dir/gateway.toml"

# Sets `total` (not a command substitution: a subshell would run the EXIT trap and clean up).
run() {
  rm -f "$dir"/cg.out.*
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out.%p" "$bin" --config "$dir/gateway.toml" >"$dir/gateway.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$gw/" && break; sleep 0.2; done
  h2load --h1 -n "$1" -c 16 -m 1 ${H2LOAD_HEADER:+-H "$H2LOAD_HEADER"} "http://127.0.0.1:$gw/small" >"$dir/h2load.txt" 2>&1
  grep -q "$1 succeeded" "$dir/h2load.txt" || { cat "$dir/h2load.txt" >&2; exit 1; }
  kill -TERM "$pid"; wait "$pid" || true
  total=$(callgrind_annotate "$dir"/cg.out.* 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
}
run 2000; small=$total
run 22000; large=$total
if [ -n "${PROFILE_OUT:-}" ]; then cat "$dir"/cg.out.* >"$PROFILE_OUT"; fi
echo "instructions per request: $(( (large - small) / 20000 ))"
