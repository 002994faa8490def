#!/usr/bin/env bash
# run.sh: the demo behind `make run`. Starts the demo origin (bin/origin, built by make) on ORIGIN_ADDR,
# waits until it answers, then runs ./switchflow on CONFIG in the foreground. When the proxy exits, or
# on Ctrl-C, SIGTERM or a closed terminal (SIGHUP, which the proxy alone would take as "reload"), the
# proxy is stopped gracefully and the origin by its PID, so nothing is left running.
#
#   CONFIG=switchflow.toml ORIGIN_ADDR=127.0.0.1:9001 scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
config=${CONFIG:-switchflow.toml}
origin_addr=${ORIGIN_ADDR:-127.0.0.1:9001}
host=${origin_addr%:*} port=${origin_addr##*:}
for bin in ./switchflow ./bin/origin; do
	[ -x "$bin" ] || { echo "run: $bin is missing; use make run" >&2; exit 1; }
done

origin= proxy=
stop() {
	trap - EXIT INT TERM HUP
	if [ -n "$proxy" ] && kill -TERM "$proxy" 2>/dev/null; then wait "$proxy" 2>/dev/null || true; fi
	if [ -n "$origin" ] && kill -TERM "$origin" 2>/dev/null; then wait "$origin" 2>/dev/null || true; fi
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP

# answers: the origin replies to a request with an HTTP status line.
answers() {
	local line
	exec 3<>"/dev/tcp/$host/$port" || return 1
	printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$origin_addr" >&3
	IFS= read -r -t 2 line <&3 || true
	exec 3<&- 3>&-
	[[ $line == HTTP/1.* ]]
}

./bin/origin -addr "$origin_addr" &
origin=$!
for _ in $(seq 100); do
	kill -0 "$origin" 2>/dev/null || { echo "run: the demo origin exited; is $origin_addr in use?" >&2; exit 1; }
	if answers 2>/dev/null; then break; fi
	sleep 0.05
done
answers 2>/dev/null || { echo "run: the demo origin does not answer on $origin_addr" >&2; exit 1; }
echo "run: demo origin (pid $origin) answers on $origin_addr; starting ./switchflow -config $config"

./switchflow -config "$config" &
proxy=$!
status=0
wait "$proxy" || status=$?
proxy=
exit "$status"
