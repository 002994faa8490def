#!/usr/bin/env bash
# upgrade-wrk.sh: wrk against the proxy while it upgrades itself N times with SIGUSR2 (README, "Upgrading
# the binary"). Two wrk runs at once, pinned to CPU 1 with the demo origin: keep-alive connections, and a
# new connection per request (Connection: close). The proxy runs on CPU 0 with two loops and
# reuse_port. Each upgrade waits for the pid file to name a new process and for the old one to exit (no
# sleeps); the next one follows at once. It prints both wrk reports, and exits 1 if wrk counted any
# socket error or non-2xx response, or an upgrade failed.
#
# MODE=copy replaces the proxy the way that needs no SIGUSR2, for comparison: a second copy started on
# the same address (reuse_port), and SIGTERM to the old one once the copy has written the pid file.
#
#   make build tools && [MODE=copy] scripts/upgrade-wrk.sh [UPGRADES=10] [SECONDS=20]
set -euo pipefail
cd "$(dirname "$0")/.."
upgrades=${1:-10} duration=${2:-20} mode=${MODE:-usr2}
for bin in ./switchflow ./bin/origin; do
	[ -x "$bin" ] || { echo "upgrade-wrk: $bin is missing; make build tools" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "upgrade-wrk: wrk is not installed (scripts/install-bench-deps.sh)" >&2; exit 1; }

dir=$(mktemp -d)
origin= first=
cleanup() {
	[ -n "$origin" ] && kill "$origin" 2>/dev/null || true
	if [ -s "$dir/sf.pid" ]; then kill "$(cat "$dir/sf.pid")" 2>/dev/null || true; fi
	[ -n "$first" ] && kill "$first" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
oport=$(port) pport=$(port)
taskset -c 1 ./bin/origin -addr "127.0.0.1:$oport" >/dev/null 2>&1 &
origin=$!
cp ./switchflow "$dir/switchflow"
cat >"$dir/sf.toml" <<EOF
[server]
listen = "127.0.0.1:$pport"
loops = 2
max_connections = 4096
shutdown_timeout = "10s"
pid_file = "$dir/sf.pid"
[[upstream]]
name = "o"
servers = [ { addr = "127.0.0.1:$oport" } ]
[[route]]
upstream = "o"
EOF
taskset -c 0 "$dir/switchflow" -config "$dir/sf.toml" 2>"$dir/log" &
first=$!
waitfor() { # waitfor SECONDS COMMAND...: polls COMMAND every 50 ms
	local deadline=$((SECONDS + $1)); shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.05
	done
}
pidis() { [ "$(cat "$dir/sf.pid" 2>/dev/null)" = "$1" ]; }
pidnot() { local p; p=$(cat "$dir/sf.pid" 2>/dev/null) && [ -n "$p" ] && [ "$p" != "$1" ]; }
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
waitfor 10 pidis "$first" || { echo "upgrade-wrk: the proxy did not start" >&2; cat "$dir/log" >&2; exit 1; }

url="http://127.0.0.1:$pport/"
taskset -c 1 wrk -t1 -c64 -d"${duration}s" "$url" >"$dir/wrk-keepalive" 2>&1 &
ka=$!
taskset -c 1 wrk -t1 -c32 -d"${duration}s" -H 'Connection: close' "$url" >"$dir/wrk-close" 2>&1 &
cl=$!
failed=0
for i in $(seq "$upgrades"); do
	old=$(cat "$dir/sf.pid")
	if [ "$mode" = copy ]; then
		taskset -c 0 "$dir/switchflow" -config "$dir/sf.toml" 2>>"$dir/log" >/dev/null &
	else
		kill -USR2 "$old"
	fi
	if ! waitfor 30 pidnot "$old"; then echo "upgrade $i: no new process" >&2; failed=1; break; fi
	if [ "$mode" = copy ]; then kill -TERM "$old"; fi
	waitfor 30 gone "$old" || { echo "upgrade $i: the old process $old did not exit" >&2; failed=1; break; }
	echo "upgrade $i: pid $old -> $(cat "$dir/sf.pid")"
done
wait "$ka" "$cl"
echo "== keep-alive (64 connections)"; cat "$dir/wrk-keepalive"
echo "== a connection per request (32 connections)"; cat "$dir/wrk-close"
grep -q 'upgrade failed' "$dir/log" && { grep 'upgrade failed' "$dir/log" >&2; failed=1; }
if grep -q 'Socket errors\|Non-2xx' "$dir/wrk-keepalive" "$dir/wrk-close"; then failed=1; fi
exit $failed
