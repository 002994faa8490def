#!/usr/bin/env bash
# counts.sh: the counts that noise cannot move, per request, for SwitchFlow builds, nginx and HAProxy in
# front of one origin, over HTTPS (TLS=1, the default) or plain HTTP (TLS=0): instructions in user space
# (callgrind) and system calls (strace -c -f). The timed figures are benchmarks/cmd/bench's; these say
# whether a difference there is the proxy's or the machine's. Proxies on CPU 0 with one worker (configs
# from scripts/lib/peers.sh, the benchmark's settings), the origin and the load (bin/hsload) on CPU 1.
#
#   scripts/counts.sh                                   # ./switchflow (make build), nginx, haproxy over HTTPS
#   scripts/counts.sh nginx /tmp/sf-a /tmp/sf-b         # each argument: nginx, haproxy or a SwitchFlow binary
#   TLS=0 scripts/counts.sh nginx ./switchflow          # plain HTTP: keepalive and json
#   CERT=rsa LOADS="full resumed" SECS=20 scripts/counts.sh ./switchflow nginx
#
# LOADS (default: keepalive full resumed; with TLS=0 keepalive json):
#   keepalive  GET / (13 bytes) on CONNS (64) keep-alive connections opened and warmed before the counted
#              window (hsload -window), so that no handshake or connection setup is counted; SECS (5) s
#   json       the same with GET /json (4 KiB)
#   full       a new connection with a full TLS 1.3 handshake per request (hsload), 16 at once
#   resumed    the same, each client resuming its own session (hsload -resume)
# CERT: ecdsa (P-256, default) or rsa (2048), the benchmark's chain. MAX_VERSION=1.2: the client offers
# at most TLS 1.2 (default 1.3). For full and resumed, callgrind
# counts a run of 2 s and one of 2 + SECS s, each with new connections, after a warm-up: per request =
# the difference of their counts / the difference of their requests, so that one-time work cancels;
# give RSA under callgrind SECS=20. System calls: a 3 s run under strace after a 1 s warm-up. Callgrind
# counts user-space instructions only (the kernel's work shows in the system calls) and runs the proxy
# about 50 times slower, so the handshake loads are kept at 16 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
# The soft open-file limit at the hard one: a proxy that raises it itself signals every thread
# (setrlimit through AllThreadsSyscall), which callgrind cannot follow.
ulimit -n "$(ulimit -Hn)"
[ $# -gt 0 ] || set -- ./switchflow nginx haproxy
tls=${TLS:-1} secs=${SECS:-5} conns=${CONNS:-64}
if [ "$tls" = 1 ]; then loads=${LOADS:-keepalive full resumed}; else loads=${LOADS:-keepalive json}; fi
for w in "$@"; do [ "$w" = ./switchflow ] && make -s build >/dev/null && break; done
make -s tools >/dev/null
. scripts/lib/peers.sh
[ "$tls" = 1 ] && tls_cert
valgrind=${VALGRIND:-valgrind} cgctl=${CALLGRIND_CONTROL:-callgrind_control}
# Stop on Ctrl-C or TERM too (peers.sh's trap cleans up on the way out).
trap 'exit 130' INT
trap 'exit 143' TERM
# A step that fails shows the proxies' logs before the directory goes.
trap 'echo "counts: failed at line $LINENO" >&2; tail -n 60 "$dir"/*.log >&2 2>/dev/null || true' ERR

op=$(port)
taskset -c 1 bin/origin -addr 127.0.0.1:"$op" >/dev/null 2>&1 & pids+=($!)
wait_port "$op"

# start WHO WRAPPER... starts WHO (nginx, haproxy or a SwitchFlow binary) on CPU 0 under WRAPPER
# (nothing, or valgrind); vpid is its PID and lp the port the load goes to (the TLS one with TLS=1).
start() {
	local who=$1 p tp="" cfg
	shift
	p=$(port)
	[ "$tls" = 1 ] && tp=$(port)
	lp=${tp:-$p}
	case $who in
	nginx)
		cfg=$(nginx_conf "$p" "127.0.0.1:$op" $tp)
		taskset -c 0 "$@" "$(command -v nginx || echo /usr/sbin/nginx)" -c "$cfg" -p "$dir/nginx" 2>"$dir/nginx.log" & ;;
	haproxy)
		cfg=$(haproxy_conf "$p" "127.0.0.1:$op" $tp)
		taskset -c 0 "$@" "$(command -v haproxy || echo /usr/sbin/haproxy)" -db -f "$cfg" 2>"$dir/haproxy.log" & ;;
	*)
		sf_config "$p" "127.0.0.1:$op" $tp >"$dir/sf.toml"
		# Off for SwitchFlow: valgrind cannot follow Go's preemption signals nor execute RDTSCP.
		GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 taskset -c 0 "$@" "$who" -config "$dir/sf.toml" 2>"$dir/switchflow.log" & ;;
	esac
	vpid=$!
	pids+=("$vpid")
	wait_port "$lp"
	# The port accepts before the proxy serves on it (SwitchFlow's TLS accept waits for its loops), and
	# under callgrind that start takes seconds: wait for an answer.
	local url=http://127.0.0.1:$lp/ curlopt=()
	[ "$tls" = 1 ] && url=https://bench.example:$lp/ curlopt=(--cacert "$tls_root" --resolve "bench.example:$lp:127.0.0.1")
	for _ in $(seq 240); do curl -s "${curlopt[@]}" -m 30 -o /dev/null "$url" && return 0; sleep 0.5; done
	echo "$who never answered on $lp" >&2
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

# hsload ARGS... runs the load on CPU 1 against the proxy, verifying its chain.
hsload() {
	local t=(-plain)
	[ "$tls" = 1 ] && t=(-ca "$tls_root" -max-version "${MAX_VERSION:-1.3}")
	taskset -c 1 bin/hsload -addr "127.0.0.1:$lp" "${t[@]}" "$@"
}

# window PATH BEFORE AFTER runs hsload -window on CONNS connections: BEFORE once they are warm, AFTER
# once the window ended; prints the requests answered in the window.
window() {
	coproc KL { hsload -window -path "$1" -conns "$conns" -duration "$secs"s; }
	local line reqs
	read -r line <&"${KL[0]}"
	[ "$line" = ready ] || { echo "hsload: $line" >&2; return 1; }
	eval "$2"
	echo >&"${KL[1]}"
	read -r _ reqs <&"${KL[0]}"
	eval "$3"
	echo >&"${KL[1]}"
	wait "$KL_PID" 2>/dev/null || true
	echo "$reqs"
}

# handshakes KIND SECONDS prints the requests answered by hsload's full or resumed load.
handshakes() {
	local r=()
	[ "$1" = resumed ] && r=(-resume)
	hsload -conns 16 -duration "$2"s "${r[@]}" | sed 's/.*"requests":\([0-9]*\).*/\1/'
}

# counted SECONDS runs the handshake load for SECONDS with callgrind's counters zeroed at the start and
# dumped at the end; it prints the instructions counted and the requests answered.
counted() {
	local n ir
	rm -f "$dir"/cg.out.*
	"$cgctl" -z "$vpid" >/dev/null 2>&1
	n=$(handshakes "$l" "$1")
	"$cgctl" -d "$vpid" >/dev/null 2>&1
	ir=$(cat "$dir"/cg.out.* | awk '/^summary:/ {s += $2} END {printf "%.0f\n", s}')
	echo "$ir ${n:-0}"
}

# instructions: "$ir $n", the instructions and the requests they are for.
instructions() {
	case $l in
	keepalive | json)
		rm -f "$dir"/cg.out*
		n=$(window "$path" '"$cgctl" -z $vpid >/dev/null 2>&1' '"$cgctl" -d $vpid >/dev/null 2>&1') || n=0
		ir=$(cat "$dir"/cg.out.* 2>/dev/null | awk '/^summary:/ {s += $2} END {printf "%.0f\n", s}')
		echo "${ir:-0} $n" ;;
	*)
		handshakes "$l" 2 >/dev/null
		read -r ia na < <(counted 2)
		read -r ib nb < <(counted $((2 + secs)))
		echo "$((ib - ia)) $((nb - na))" ;;
	esac
}

# syscalls: the proxy's system calls under strace over a run, and the requests of that run.
syscalls() {
	case $l in
	keepalive | json)
		m=$(window "$path" 'strace -c -f -q -p $vpid -o $dir/st.out & tpid=$!; sleep 1' 'kill -INT $tpid; wait $tpid 2>/dev/null || true') || m=0 ;;
	*)
		handshakes "$l" 1 >/dev/null
		strace -c -f -q -p "$vpid" -o "$dir/st.out" & tpid=$!
		sleep 0.5
		m=$(handshakes "$l" 3)
		kill -INT "$tpid"; wait "$tpid" 2>/dev/null || true ;;
	esac
	echo "$(awk '$NF == "total" {print $4}' "$dir/st.out") $m"
}

echo "counts: TLS=$tls$([ "$tls" = 1 ] && echo ", ${CERT:-ecdsa} certificate, at most TLS ${MAX_VERSION:-1.3}"); $*; $(date -u +%FT%TZ); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for l in $loads; do
	case $l in
	keepalive) path=/ ;;
	json) path=/json ;;
	full | resumed) path=/; [ "$tls" = 1 ] || { echo "LOADS=$l needs TLS=1" >&2; exit 2; } ;;
	*) echo "LOADS: $l? want keepalive, json, full, resumed" >&2; exit 2 ;;
	esac
	for who in "$@"; do
		start "$who" "$valgrind" --tool=callgrind --callgrind-out-file="$dir/cg.out"
		read -r ir n < <(instructions)
		stop
		rm -f "$dir"/cg.out*
		start "$who"
		read -r calls m < <(syscalls)
		stop
		printf "%s " "$(date +%T)"
		awk -v p="$who" -v l="$l" -v ir="${ir:-0}" -v n="${n:-0}" -v c="${calls:-0}" -v m="${m:-0}" 'BEGIN {
			printf "counts %-16s %-9s instructions/request %9.0f (%d requests counted under callgrind)  system calls/request %6.2f (%d requests under strace)\n",
				p, l, (n > 0 ? ir / n : 0), n, (m > 0 ? c / m : 0), m }'
	done
done
