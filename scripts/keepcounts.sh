#!/usr/bin/env bash
# keepcounts.sh: instructions (callgrind) and system calls (strace) per keep-alive request of nginx and
# SwitchFlow builds, with the connections opened and warmed before the counted window (bin/keepload),
# so that over HTTPS no handshake is counted (a wrk run opens its connections inside the window, which
# compare-builds.sh counts: 64 handshakes in a few thousand requests under callgrind). Proxies on CPU 0,
# the origin and the load on CPU 1; 64 connections, a 5 s window, "/" (13 bytes) and "/json" (4 KiB).
#
#   TLS=1 scripts/keepcounts.sh nginx /tmp/sf-a /tmp/sf-b      # each argument: nginx or a SwitchFlow binary
set -euo pipefail
cd "$(dirname "$0")/.."
make -s tools >/dev/null
ulimit -n "$(ulimit -Hn)"
. scripts/lib/peers.sh
op=$(port)
taskset -c 1 bin/origin -addr 127.0.0.1:"$op" >/dev/null 2>&1 & pids+=($!)
wait_port "$op"
tlsflag=false; [ "${TLS:-0}" = 1 ] && tlsflag=true
# window PORT PATH BEFORE AFTER: runs keepload against PORT; BEFORE runs once it is warm, AFTER once its window ended; prints the requests.
window() {
	coproc KL { taskset -c 1 bin/keepload -addr 127.0.0.1:"$1" -path "$2" -tls=$tlsflag -d 5s -c 64; }
	local line
	read -r line <&"${KL[0]}"
	[ "$line" = ready ] || { echo "keepload: $line" >&2; return 1; }
	eval "$3"
	echo >&"${KL[1]}"
	read -r _ reqs <&"${KL[0]}"
	eval "$4"
	echo >&"${KL[1]}"
	wait "$KL_PID" 2>/dev/null || true
	echo "$reqs"
}
nginx_conf() { # PORT
	mkdir -p "$dir/ng"
	local listen=""
	[ "${TLS:-0}" = 1 ] && { tls_cert; listen="ssl; ssl_certificate $dir/tls.crt; ssl_certificate_key $dir/tls.key; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256"; }
	cat >"$dir/ng/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $dir/ng/nginx.pid; error_log $dir/ng/error.log warn;
events { worker_connections 2000; use epoll; multi_accept on; }
http { access_log off; client_body_temp_path $dir/ng/cb; proxy_temp_path $dir/ng/px; keepalive_requests 10000000;
  upstream origin { server 127.0.0.1:$op; keepalive 256; keepalive_requests 10000000; }
  server { listen 127.0.0.1:$1 $listen; location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$http_host; } } }
CONF
}
for who in "$@"; do
	for s in "/ hello" "/json json4k"; do
		read -r path name <<<"$s"
				# the command line and the port to load
		p=$(port) tp=""
		if [ $who = nginx ]; then
			nginx_conf "$p"; cmd=(/usr/sbin/nginx -c "$dir/ng/nginx.conf" -p "$dir/ng"); lp=$p
		else
			[ "${TLS:-0}" = 1 ] && tp=$(port)
			sf_config "$p" "127.0.0.1:$op" $tp >"$dir/sf.toml"; cmd=("$who" -config "$dir/sf.toml"); lp=${tp:-$p}
		fi
		# Off for SwitchFlow, as in compare-builds.sh: valgrind cannot follow Go's preemption signals nor
		# execute RDTSCP.
		GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "${cmd[@]}" 2>"$dir/cg.log" & vpid=$!
		wait_port "$lp"
		n=$(window "$lp" "$path" 'callgrind_control -z $vpid >/dev/null' 'callgrind_control -d $vpid >/dev/null') || n=0
		ir=$(cat "$dir"/cg.out* 2>/dev/null | awk '/^summary:/ {s += $2} END {print s+0}')
		kill -INT "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; rm -f "$dir"/cg.out*
		taskset -c 0 "${cmd[@]}" 2>/dev/null & spid=$!
		wait_port "$lp"
		m=$(window "$lp" "$path" 'strace -c -f -q -p $spid -o $dir/st.out & tpid=$!; sleep 1' 'kill -INT $tpid; wait $tpid 2>/dev/null || true') || m=0
		calls=$(awk '$NF == "total" {print $4}' "$dir/st.out")
		kill -QUIT "$spid" 2>/dev/null || kill -INT "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
		awk -v l="$who" -v s="$name" -v ir="$ir" -v n="$n" -v c="$calls" -v m="$m" -v t="${TLS:-0}" 'BEGIN {
			printf "counts tls=%s %-16s %-7s instructions/request %8.0f (%d requests under callgrind)  system calls/request %.2f (%d requests under strace)\n", t, l, s, (n ? ir / n : 0), n, (m ? c / m : 0), m }'
	done
done
