#!/usr/bin/env bash
# uploadstall.sh: how smoothly SwitchFlow and nginx take a fast 100 MiB upload to an origin that reads as
# fast as it can. Each proxy runs pinned to CPU 0, the origin and the client on CPU 1; the proxies take
# turns, ROUNDS rounds (default 3). Prints, per upload, the writes that blocked longer than 30 ms.
#
#   scripts/uploadstall.sh                       # ./switchflow (make build) against nginx
#   OTHER=/path/to/switchflow scripts/uploadstall.sh   # a second SwitchFlow build beside them
#   SIZE=200MiB ROUNDS=5 scripts/uploadstall.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3} size=${SIZE:-100MiB}
make -s build >/dev/null
CGO_ENABLED=0 go build -o bin/uploadstall ./benchmarks/cmd/uploadstall
nginx=$(command -v nginx || echo /usr/sbin/nginx)
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

sinkp=$(port)
taskset -c 1 bin/uploadstall -serve 127.0.0.1:"$sinkp" & pids+=($!)
wait_port "$sinkp"

targets=()
start_sf() { # label binary
	local p; p=$(port)
	cat >"$dir/$1.toml" <<CONF
[server]
listen = "127.0.0.1:$p"
loops = 1
[[upstream]]
name = "sink"
servers = [ { addr = "127.0.0.1:$sinkp" } ]
[[route]]
upstream = "sink"
CONF
	taskset -c 0 "$2" -config "$dir/$1.toml" 2>"$dir/$1.log" & pids+=($!)
	wait_port "$p"
	targets+=("$1:$p")
}
start_sf switchflow ./switchflow
if [ -n "${OTHER:-}" ]; then start_sf other "$OTHER"; fi

np=$(port)
mkdir -p "$dir/nginx"
cat >"$dir/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 1024; use epoll; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/client_body;
    proxy_temp_path $dir/nginx/proxy;
    client_max_body_size 0;
    client_body_buffer_size 128k;
    proxy_request_buffering on;
    upstream sink { server 127.0.0.1:$sinkp; keepalive 16; }
    server {
        listen 127.0.0.1:$np;
        location / { proxy_pass http://sink; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF
taskset -c 0 "$nginx" -c "$dir/nginx/nginx.conf" -p "$dir/nginx" 2>/dev/null & pids+=($!)
wait_port "$np"
targets+=("nginx:$np")

echo "uploadstall: $size per upload, writes of 64 KiB, $rounds rounds; $(date -u +%FT%TZ) on $(nproc) CPUs"
for r in $(seq "$rounds"); do
	for t in "${targets[@]}"; do
		taskset -c 1 bin/uploadstall -addr 127.0.0.1:"${t#*:}" -size "$size" -label "round=$r ${t%%:*}"
	done
done
