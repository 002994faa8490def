#!/usr/bin/env bash
# tls-counts.sh: the HTTPS scenarios' counts that noise cannot move, for SwitchFlow, nginx and HAProxy
# terminating TLS in front of one origin: instructions per request in user space (callgrind) and system
# calls per request (strace -c -f). The timed figures are benchmarks/cmd/bench's (-scenarios https);
# these say whether a difference there is the proxy's or the machine's. Proxies on CPU 0 with one
# worker, the origin, wrk and hsload on CPU 1.
#
#   scripts/tls-counts.sh [SWITCHFLOW_BINARY]          # default ./switchflow (make build)
#   CERT=rsa LOADS="full resumed" PROXIES="switchflow nginx" SECS=5 scripts/tls-counts.sh
#
# LOADS: keepalive (hsload -requests-per-conn: GET / on 16 keep-alive connections that the proxy closes
# at the end, answering the last request's Connection: close), full (hsload: a new connection with a full
# TLS 1.3 handshake per request, 16 at once), resumed (hsload -resume: each resuming its own session).
# CERT: ecdsa (P-256) or rsa (2048). Each count runs the proxy alone. Instructions: after a warm-up, a
# counted run of 2 s and one of 2 + SECS s, each with new connections; per request = the difference of
# their counts / the difference of their requests, so that the keep-alive connections' handshakes and
# one-time work cancel. System calls: a 3 s run under strace after a 1 s warm-up. Callgrind counts
# user-space instructions only (the kernel's work shows in the system calls), and runs the proxy about
# 50 times slower, so the load is kept at 16 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
# The soft open-file limit at the hard one: a proxy that raises it itself signals every thread
# (setrlimit through AllThreadsSyscall), which callgrind cannot follow.
ulimit -n "$(ulimit -Hn)"
sf=${1:-./switchflow}
cert=${CERT:-ecdsa} secs=${SECS:-5}
loads=${LOADS:-keepalive full resumed}
proxies=${PROXIES:-switchflow nginx haproxy}
[ "$sf" = ./switchflow ] && make -s build >/dev/null
make -s tools >/dev/null
. scripts/lib/peers.sh
valgrind=${VALGRIND:-valgrind} cgctl=${CALLGRIND_CONTROL:-callgrind_control}
# Stop on Ctrl-C or TERM too (peers.sh's trap cleans up on the way out).
trap 'exit 130' INT
trap 'exit 143' TERM
# A step that fails shows the proxies' logs before the directory goes.
trap 'echo "tls-counts: failed at line $LINENO" >&2; tail -n 60 "$dir"/*.log >&2 2>/dev/null || true' ERR

case $cert in
ecdsa) keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
rsa) keyopt=(-newkey rsa:2048) ;;
*) echo "CERT=$cert: want ecdsa or rsa" >&2; exit 2 ;;
esac
openssl req -x509 "${keyopt[@]}" -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 90 \
	-subj /CN=bench.example -addext subjectAltName=DNS:bench.example,IP:127.0.0.1 2>/dev/null
cat "$dir/cert.pem" "$dir/key.pem" >"$dir/both.pem"

op=$(port)
taskset -c 1 bin/origin -addr 127.0.0.1:"$op" >/dev/null 2>&1 & pids+=($!)
wait_port "$op"

# config NAME PLAIN_PORT TLS_PORT writes NAME's config, with the TLS settings of the bench's templates
# (benchmarks/peers), and prints its path.
config() {
	local ciphers=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384
	local suites=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
	case $1 in
	switchflow)
		sf_config "$2" "127.0.0.1:$op" >"$dir/sf.toml"
		printf '[tls]\nlisten = "127.0.0.1:%s"\ncertificates = [ { cert = "%s", key = "%s" } ]\n' "$3" "$dir/cert.pem" "$dir/key.pem" >>"$dir/sf.toml"
		echo "$dir/sf.toml" ;;
	nginx)
		mkdir -p "$dir/nginx"
		cat >"$dir/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; use epoll; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/client_body;
    proxy_temp_path $dir/nginx/proxy;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    upstream origin { server 127.0.0.1:$op; keepalive 256; keepalive_requests 10000000; }
    server {
        listen 127.0.0.1:$2 backlog=4096;
        listen 127.0.0.1:$3 ssl backlog=4096;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache shared:SSL:10m;
        ssl_prefer_server_ciphers on;
        ssl_ciphers $ciphers;
        ssl_conf_command Ciphersuites $suites;
        location / {
            proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_set_header Host \$http_host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
CONF
		echo "$dir/nginx/nginx.conf" ;;
	haproxy)
		cat >"$dir/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 20000
    no strict-limits
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphers $ciphers
    ssl-default-bind-ciphersuites $suites
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 300s
    timeout server 30s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:$2 backlog 4096
    bind 127.0.0.1:$3 ssl crt $dir/both.pem alpn http/1.1 backlog 4096
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    option forwardfor
    default_backend origin
backend origin
    server origin 127.0.0.1:$op
CONF
		echo "$dir/haproxy.cfg" ;;
	esac
}

# start NAME WRAPPER... starts NAME on CPU 0 under WRAPPER (nothing, or valgrind); vpid and tp are its
# PID and TLS port.
start() {
	local name=$1 p cfg
	shift
	p=$(port) tp=$(port)
	cfg=$(config "$name" "$p" "$tp")
	case $name in
	switchflow) GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 taskset -c 0 "$@" "$sf" -config "$cfg" 2>"$dir/$name.log" & ;;
	nginx) taskset -c 0 "$@" "$(command -v nginx || echo /usr/sbin/nginx)" -c "$cfg" -p "$dir/nginx" 2>"$dir/$name.log" & ;;
	haproxy) taskset -c 0 "$@" "$(command -v haproxy || echo /usr/sbin/haproxy)" -db -f "$cfg" 2>"$dir/$name.log" & ;;
	esac
	vpid=$!
	pids+=("$vpid")
	wait_port "$tp"
	# The port accepts before the proxy serves on it (SwitchFlow's TLS accept waits for its loops), and
	# under callgrind that start takes seconds: wait for an answer.
	for _ in $(seq 240); do curl -sk -m 30 -o /dev/null "https://127.0.0.1:$tp/" && return 0; sleep 0.5; done
	echo "$name never answered on $tp" >&2
	tail -n 20 "$dir/$name.log" >&2
	exit 1
}

# stop ends the proxy started last: SIGTERM, then SIGKILL after 20 s (HAProxy under valgrind may not
# act on the first).
stop() {
	kill -TERM "$vpid" 2>/dev/null || true
	for _ in $(seq 200); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$vpid" 2>/dev/null || true
	wait "$vpid" 2>/dev/null || true
}

# counted SECONDS runs the load for SECONDS with callgrind's counters zeroed at the start and dumped at
# the end; it prints the instructions counted and the requests answered.
counted() {
	local n ir
	rm -f "$dir"/cg.out.*
	"$cgctl" -z "$vpid" >/dev/null
	n=$(load "$l" "$1")
	"$cgctl" -d "$vpid" >/dev/null
	ir=$(cat "$dir"/cg.out.* | awk '/^summary:/ {s += $2} END {printf "%.0f\n", s}')
	echo "$ir ${n:-0}"
}

# load KIND SECONDS prints the requests answered through the TLS port $tp.
load() {
	case $1 in
	# Not wrk: the proxy must close every connection itself (the last request asks it to), because
	# SwitchFlow, writing close_notify to a client that closed first, takes a SIGPIPE, and callgrind
	# stops on an assertion at signals in a Go program.
	keepalive) taskset -c 1 bin/hsload -addr "127.0.0.1:$tp" -conns 16 -duration "$2"s -requests-per-conn 1000000 | sed 's/.*"requests":\([0-9]*\).*/\1/' ;;
	full) taskset -c 1 bin/hsload -addr "127.0.0.1:$tp" -conns 16 -duration "$2"s | sed 's/.*"requests":\([0-9]*\).*/\1/' ;;
	resumed) taskset -c 1 bin/hsload -addr "127.0.0.1:$tp" -conns 16 -duration "$2"s -resume | sed 's/.*"requests":\([0-9]*\).*/\1/' ;;
	esac
}

echo "tls-counts: $cert certificate; switchflow=$sf; $(date -u +%FT%TZ); $(nproc) CPUs"
for l in $loads; do
	for name in $proxies; do
		# Two counted runs, short and long, each with its own new connections: their difference is
		# what the extra requests cost, without the keep-alive connections' handshakes or the first
		# requests' one-time work.
		start "$name" "$valgrind" --tool=callgrind --callgrind-out-file="$dir/cg.out"
		load "$l" 2 >/dev/null
		read -r ia na < <(counted 2)
		read -r ib nb < <(counted $((2 + secs)))
		stop
		rm -f "$dir"/cg.out*
		ir=$((ib - ia)) n=$((nb - na))

		start "$name"
		load "$l" 1 >/dev/null
		strace -c -f -q -p "$vpid" -o "$dir/st.out" & tpid=$!
		sleep 0.5
		m=$(load "$l" 3)
		kill -INT "$tpid"; wait "$tpid" 2>/dev/null || true
		calls=$(awk '$NF == "total" {print $4}' "$dir/st.out")
		stop
		printf "%s " "$(date +%T)"
		awk -v p="$name" -v l="$l" -v ir="${ir:-0}" -v n="${n:-0}" -v c="${calls:-0}" -v m="${m:-0}" 'BEGIN {
			printf "counts %-10s %-9s instructions/request %9.0f (%d more requests in the longer run under callgrind)  system calls/request %6.2f (%d requests under strace)\n",
				p, l, (n > 0 ? ir / n : 0), n, (m > 0 ? c / m : 0), m }'
	done
done
