# peers.sh, sourced by the measurement scripts: a private directory and the processes started in it,
# stopped and removed on exit; free loopback ports; SwitchFlow and nginx as one-core proxies in front
# of one upstream address. With TLS=1 in the environment, both terminate TLS (an ECDSA P-256
# certificate made here, TLS 1.3 with AES-128-GCM for both: Go's choice, which nginx is told to make
# too) and last_port is their TLS port: measure https://127.0.0.1:$last_port.
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
# with TLSPORT, [tls] listens there with the certificate of tls_cert. SF_KEEPALIVE (default 256) is the
# upstream's keepalive: 0 dials a backend connection for every request.
sf_config() {
	printf '[server]\nlisten = "127.0.0.1:%s"\nloops = 1\nmax_connections = 20000\n[[upstream]]\nname = "origin"\nservers = [ { addr = "%s" } ]\nkeepalive = %s\n[[route]]\nupstream = "origin"\n' "$1" "$2" "${SF_KEEPALIVE:-256}"
	if [ -n "${3:-}" ]; then
		tls_cert
		printf '[tls]\nlisten = "127.0.0.1:%s"\ncertificates = [ { cert = "%s", key = "%s" } ]\n' "$3" "$dir/tls.crt" "$dir/tls.key"
	fi
}

# tls_cert makes the certificate the TLS peers serve, once: ECDSA P-256, localhost, a year.
tls_cert() {
	[ -f "$dir/tls.crt" ] && return 0
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
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

# start_nginx UPSTREAM starts nginx (one worker, no master, so that it can write its temp files) on
# CPU 0, buffering request bodies (its default); PID and port in last_pid and last_port.
start_nginx() {
	local p listen=""
	p=$(port)
	mkdir -p "$dir/nginx"
	if [ "${TLS:-0}" = 1 ]; then
		tls_cert
		listen="ssl; ssl_certificate $dir/tls.crt; ssl_certificate_key $dir/tls.key; ssl_protocols TLSv1.2 TLSv1.3; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256"
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
    keepalive_requests 10000000;
    client_max_body_size 0;
    client_body_buffer_size 128k;
    proxy_buffering on; proxy_buffer_size 16k; proxy_buffers 4 16k; proxy_busy_buffers_size 32k;
    proxy_max_temp_file_size 0; proxy_request_buffering on;
    upstream origin { server $1; keepalive 256; keepalive_requests 10000000; }
    server {
        listen 127.0.0.1:$p backlog=4096 $listen;
        location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$http_host; }
    }
}
CONF
	taskset -c 0 "$(command -v nginx || echo /usr/sbin/nginx)" -c "$dir/nginx/nginx.conf" -p "$dir/nginx" 2>/dev/null &
	last_pid=$! last_port=$p
	pids+=("$last_pid")
	wait_port "$p"
}
