#!/usr/bin/env bash
# upstream-tls.sh: what HTTPS to the backend costs the proxy ([upstream.tls], issue 22). One origin, nginx
# on CPU 1, serves a 13-byte answer over plain HTTP and over TLS (ECDSA P-256, a certificate from a CA
# made here); in front of it, on CPU 0, SwitchFlow and nginx each proxy to it over plain HTTP and over
# verified TLS with keep-alive backend connections and session reuse. scripts/pair.sh then measures the
# four proxies in turn (wrk on CPU 1) and prints CPU per request, each against nginx to the TLS origin in
# the same round; then strace counts each SwitchFlow's system calls per request.
#
#   scripts/upstream-tls.sh [SECONDS] [CONNECTIONS]      # default 8 s, 16 connections
#   ROUNDS=6 BIN=/tmp/switchflow scripts/upstream-tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8} conns=${2:-16}
bin=${BIN:-./switchflow}
# shellcheck source=lib/peers.sh
source scripts/lib/peers.sh

# A CA and the origin's certificate for backend.example.
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=upstream-tls-ca \
	-keyout "$dir/ca.key" -out "$dir/ca.crt"
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=backend.example \
	-keyout "$dir/origin.key" -out "$dir/origin.csr"
printf 'subjectAltName=DNS:backend.example\n' >"$dir/san.ext"
ossl x509 -req -in "$dir/origin.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
	-extfile "$dir/san.ext" -out "$dir/origin.crt"

# nginx_run NAME CPU HTTP-BLOCK starts nginx with one worker on CPU; its PID is left in last_pid.
nginx_run() {
	mkdir -p "$dir/$1"
	cat >"$dir/$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $dir/$1/nginx.pid;
error_log $dir/$1/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; use epoll; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/$1/client_body;
    proxy_temp_path $dir/$1/proxy;
    keepalive_requests 10000000;
$3
}
CONF
	taskset -c "$2" "$(command -v nginx || echo /usr/sbin/nginx)" -c "$dir/$1/nginx.conf" -p "$dir/$1" 2>/dev/null &
	last_pid=$!
	pids+=("$last_pid")
}

plain=$(port) secure=$(port)
nginx_run origin 1 "
    server {
        listen 127.0.0.1:$plain backlog=4096;
        listen 127.0.0.1:$secure ssl backlog=4096;
        ssl_certificate $dir/origin.crt;
        ssl_certificate_key $dir/origin.key;
        ssl_session_cache shared:origin:10m;
        location / { return 200 'Hello, World!'; }
    }"
wait_port "$plain"
wait_port "$secure"

# SwitchFlow to the plain origin, then to the TLS one.
start_sf sf-plain "$bin" "127.0.0.1:$plain"
sf_plain="sf-plain:$last_pid:$last_port"
p=$(port)
# [upstream.tls] belongs to the [[upstream]] table: written before [[route]].
sf_config "$p" "127.0.0.1:$secure" | sed "s|^\[\[route\]\]|[upstream.tls]\nserver_name = \"backend.example\"\nca = \"$dir/ca.crt\"\n[[route]]|" >"$dir/sf-tls.toml"
taskset -c 0 "$bin" -config "$dir/sf-tls.toml" 2>"$dir/sf-tls.log" &
pids+=("$!")
sf_tls="sf-tls:$!:$p"
wait_port "$p"

# nginx to the same origin, plain and TLS (verified, sessions reused, keep-alive).
ng_plain=$(port) ng_tls=$(port)
nginx_run proxies 0 "
    upstream plain { server 127.0.0.1:$plain; keepalive 256; keepalive_requests 10000000; }
    upstream secure { server 127.0.0.1:$secure; keepalive 256; keepalive_requests 10000000; }
    server {
        listen 127.0.0.1:$ng_plain backlog=4096;
        location / { proxy_pass http://plain; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$http_host; }
    }
    server {
        listen 127.0.0.1:$ng_tls backlog=4096;
        location / {
            proxy_pass https://secure; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$http_host;
            proxy_ssl_server_name on; proxy_ssl_name backend.example; proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $dir/ca.crt; proxy_ssl_session_reuse on;
        }
    }"
ng_pid=$last_pid
wait_port "$ng_plain"
wait_port "$ng_tls"

# Each proxy answers over its backend before the measurement starts.
for p in "${sf_plain##*:}" "${sf_tls##*:}" "$ng_plain" "$ng_tls"; do
	body=$(curl -s "http://127.0.0.1:$p/")
	if [ "$body" != "Hello, World!" ]; then
		echo "port $p answered '$body'" >&2
		tail -n 20 "$dir"/*.log "$dir"/*/error.log >&2 2>/dev/null
		exit 1
	fi
done
# The two nginx servers share one process: its CPU is measured once per run, against the load of one.
# nginx to the TLS origin comes first, so that every ratio is against it.
STOP_OTHERS=${STOP_OTHERS:-1} scripts/pair.sh "$secs" "$conns" / "nginx-tls:$ng_pid:$ng_tls" "$sf_tls" "nginx-plain:$ng_pid:$ng_plain" "$sf_plain"

# System calls per request of each SwitchFlow (strace -c -f over a fixed number of requests, noise-free):
# the record layer on the loop adds none to a plain backend's.
for t in "$sf_plain" "$sf_tls"; do
	IFS=: read -r label pid p <<<"$t"
	strace -c -f -p "$pid" -o "$dir/$label.strace" 2>/dev/null &
	tracer=$!
	sleep 1
	n=$(taskset -c 1 wrk -t1 -c"$conns" -d3s "http://127.0.0.1:$p/" | awk '/requests in/ {print $1}')
	kill -INT "$tracer"
	wait "$tracer" 2>/dev/null || true
	awk -v l="$label" -v n="$n" '$NF == "total" {printf "%-8s system calls per request %.2f (%d requests)\n", l, $4 / n, n}' "$dir/$label.strace"
done
