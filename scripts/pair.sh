#!/usr/bin/env bash
# pair.sh: paired A/B of running proxies, for a change's effect on this noisy kind of machine. It runs wrk
# against each proxy in turn, 3 rounds, and prints req/s, p99 and CPU µs per request (all threads, from
# /proc/PID/task/*/stat) for every run, so that runs taken seconds apart can be compared pair by pair.
#
#   scripts/pair.sh SECONDS CONNECTIONS PATH LABEL:PID:PORT [LABEL:PID:PORT ...]
#   LUA=/path/to/script.lua scripts/pair.sh ...      # e.g. the POST script the bench writes
#
# Start the proxies first, each pinned (taskset -c 0) with the origin on CPU 1; wrk runs on CPU 1.
set -euo pipefail
d=$1 c=$2 path=$3
shift 3
lua=()
if [ -n "${LUA:-}" ]; then lua=(-s "$LUA"); fi
ticks() { cat /proc/"$1"/task/*/stat | awk '{s += $14 + $15} END {print s}'; }
hz=$(getconf CLK_TCK)
for round in 1 2 3; do
	for t in "$@"; do
		IFS=: read -r label pid port <<<"$t"
		t0=$(ticks "$pid")
		out=$(taskset -c 1 wrk -t1 -c"$c" -d"${d}"s --latency "${lua[@]}" "http://127.0.0.1:$port$path")
		t1=$(ticks "$pid")
		n=$(awk '/requests in/ {print $1}' <<<"$out")
		rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
		p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
		awk -v l="$label" -v r="$round" -v rps="$rps" -v p99="$p99" -v dt=$((t1 - t0)) -v hz="$hz" -v n="$n" \
			'BEGIN {printf "round %s %-10s req/s %s  p99 %s  CPU µs/req %.1f\n", r, l, rps, p99, dt / hz * 1e6 / n}'
	done
done
