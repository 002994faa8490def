# peers.sh, sourced by the measurement scripts: a private directory and the processes started in it,
# stopped and removed on exit; free loopback ports; SwitchFlow, nginx and HAProxy configurations for
# one-core proxies in front of one upstream address, with the benchmark's settings
# (benchmarks/peers/*.tmpl, benchmarks/cmd/bench/proxies.go). With TLS=1 in the environment, start_sf
# and start_nginx terminate TLS (the benchmark's certificate chain of kind CERT, default ecdsa; TLS 1.2
# and 1.3, AES-128-GCM first: Go's choice, which nginx and HAProxy are told to make too) and last_port is
# their TLS port: measure https://127.0.0.1:$last_port.
dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM

# port prints a free loopback port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT waits up to 30 s for something to accept on it, else prints the logs and exits.
wait_port() {
	for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
	echo "port $1 never opened" >&2
	tail -n 40 "$dir"/*.log >&2 2>/dev/null
	exit 1
}

# sf_config PORT UPSTREAM [TLSPORT] prints a SwitchFlow file: one loop on PORT, every path to UPSTREAM;
# with TLSPORT, [tls] listens there with the chain of tls_cert. SF_KEEPALIVE (default 256) is the
# upstream's keepalive: 0 dials a backend connection for every request.
sf_config() {
	printf '[server]\nlisten = "127.0.0.1:%s"\nloops = 1\nmax_connections = 20000\n[[upstream]]\nname = "origin"\nservers = [ { addr = "%s" } ]\nkeepalive = %s\n[[route]]\nupstream = "origin"\n' "$1" "$2" "${SF_KEEPALIVE:-256}"
	if [ -n "${3:-}" ]; then
		tls_cert
		printf '[tls]\nlisten = "127.0.0.1:%s"\ncertificates = [ { cert = "%s", key = "%s" } ]\n' "$3" "$tls_crt" "$tls_key"
	fi
}

# tls_cert makes the benchmark's certificates once (bin/bench -certs: for each kind a root, an
# intermediate and a leaf for bench.example and 127.0.0.1) and sets, for kind CERT (ecdsa or rsa),
# tls_crt (the leaf, then the intermediate), tls_key, tls_pem (both and the key, for HAProxy) and
# tls_root (what clients verify against).
tls_cert() {
	local kind=${CERT:-ecdsa}
	case $kind in ecdsa | rsa) ;; *) echo "CERT=$kind: want ecdsa or rsa" >&2; exit 2 ;; esac
	if [ ! -f "$dir/certs/$kind.crt" ]; then
		bin/bench -certs "$dir/certs" 2>/dev/null || { make -s tools >/dev/null && bin/bench -certs "$dir/certs"; }
	fi
	tls_crt=$dir/certs/$kind.crt tls_key=$dir/certs/$kind.key tls_pem=$dir/certs/$kind.pem tls_root=$dir/certs/$kind-root.crt
}

# The TLS 1.2 cipher suites and TLS 1.3 suites of every peer, AES-128-GCM first.
tls_ciphers=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
tls_suites=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

# nginx_conf PORT UPSTREAM [TLSPORT] writes nginx's config into $dir/nginx/nginx.conf and prints its
# path: one worker and no master (one process, for callgrind and strace -p), buffering request bodies
# (its default), the benchmark's proxy settings; with TLSPORT also a TLS listener there with the chain
# of tls_cert.
nginx_conf() {
	local tls=""
	mkdir -p "$dir/nginx"
	if [ -n "${3:-}" ]; then
		tls_cert
		tls="listen 127.0.0.1:$3 ssl backlog=4096;
        ssl_certificate $tls_crt;
        ssl_certificate_key $tls_key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        ssl_prefer_server_ciphers on;
        ssl_ciphers $tls_ciphers;
        ssl_conf_command Ciphersuites $tls_suites;"
	fi
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
    client_max_body_size 0;
    client_body_buffer_size 128k;
    proxy_buffering on; proxy_buffer_size 16k; proxy_buffers 4 16k; proxy_busy_buffers_size 32k;
    proxy_max_temp_file_size 0; proxy_request_buffering on;
    upstream origin { server $2; keepalive 256; keepalive_requests 10000000; keepalive_timeout 300s; }
    server {
        listen 127.0.0.1:$1 backlog=4096;
        $tls
        location / {
            proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_set_header Host \$http_host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
CONF
	echo "$dir/nginx/nginx.conf"
}

# haproxy_conf PORT UPSTREAM [TLSPORT] writes HAProxy's config into $dir/haproxy.cfg and prints its
# path: one thread, the benchmark's settings; with TLSPORT also a TLS bind there with tls_cert's PEM.
haproxy_conf() {
	local tls="" glob=""
	if [ -n "${3:-}" ]; then
		tls_cert
		glob="ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphers $tls_ciphers
    ssl-default-bind-ciphersuites $tls_suites"
		tls="bind 127.0.0.1:$3 ssl crt $tls_pem alpn http/1.1 backlog 4096
    http-request set-header X-Forwarded-Proto https if { ssl_fc }"
	fi
	cat >"$dir/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 20000
    no strict-limits
    tune.bufsize 16384
    $glob
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 300s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:$1 backlog 4096
    $tls
    option forwardfor
    default_backend origin
backend origin
    server origin $2
CONF
	echo "$dir/haproxy.cfg"
}

# start_sf LABEL BINARY UPSTREAM starts SwitchFlow on CPU 0; its PID and port are left in last_pid and
# last_port.
start_sf() {
	last_port=$(port)
	local tp=""
	[ "${TLS:-0}" = 1 ] && tp=$(port)
	sf_config "$last_port" "$3" $tp >"$dir/$1.toml"
	taskset -c 0 "$2" -config "$dir/$1.toml" 2>"$dir/$1.log" &
	last_pid=$!
	pids+=("$last_pid")
	wait_port "$last_port"
	if [ -n "$tp" ]; then
		wait_port "$tp"
		last_port=$tp
	fi
}

# start_nginx UPSTREAM starts nginx (nginx_conf) on CPU 0; PID and port in last_pid and last_port (with
# TLS=1 its TLS port).
start_nginx() {
	local p tp=""
	p=$(port)
	[ "${TLS:-0}" = 1 ] && tp=$(port)
	nginx_conf "$p" "$1" $tp >/dev/null
	taskset -c 0 "$(command -v nginx || echo /usr/sbin/nginx)" -c "$dir/nginx/nginx.conf" -p "$dir/nginx" 2>/dev/null &
	last_pid=$! last_port=${tp:-$p}
	pids+=("$last_pid")
	wait_port "$p"
	[ -z "$tp" ] || wait_port "$tp"
}
