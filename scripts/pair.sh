#!/usr/bin/env bash
# pair.sh: paired A/B of running proxies, for a change's effect on this noisy kind of machine. It runs wrk
# against each proxy in turn, ROUNDS rounds (default 3), and prints for every run req/s, p99, CPU µs per
# request split into user and system time, and context switches per request (voluntary and involuntary),
# all summed over the process's threads from /proc/PID/task/*. At the end it prints, for every proxy
# after the first, the median over rounds of its CPU per request divided by the first proxy's in the same
# round: runs seconds apart share the machine's mood, so the paired ratio is steadier than either figure.
#
#   scripts/pair.sh SECONDS CONNECTIONS PATH LABEL:PID:PORT[:https] [LABEL:PID:PORT[:https] ...]
#   ROUNDS=10 scripts/pair.sh ...                    # more rounds, a steadier median
#   LUA=/path/to/script.lua scripts/pair.sh ...      # e.g. the POST script the bench writes
#
# Start the proxies first, each pinned (taskset -c 0) with the origin on CPU 1; wrk runs on CPU 1.
# While one proxy is measured the others are stopped (SIGSTOP, then SIGCONT): an idle Go process on the
# same core still wakes a few hundred times a second (the runtime's sysmon, timers), and each wake-up
# preempts the proxy under test. STOP_OTHERS=0 leaves them running.
set -euo pipefail
d=$1 c=$2 path=$3
shift 3
rounds=${ROUNDS:-3}
lua=()
if [ -n "${LUA:-}" ]; then lua=(-s "$LUA"); fi
# ticks PID: user and system clock ticks of all threads; switches PID: voluntary and involuntary.
ticks() { cat /proc/"$1"/task/*/stat | awk '{u += $14; s += $15} END {print u, s}'; }
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {print v, n}'; }
hz=$(getconf CLK_TCK)
log=$(mktemp)
pids=()
for t in "$@"; do
	IFS=: read -r _ pid _ <<<"$t"
	pids+=("$pid")
done
trap 'kill -CONT "${pids[@]}" 2>/dev/null; rm -f "$log"' EXIT
# others PID: the PIDs of the proxies other than PID.
others() { for p in "${pids[@]}"; do if [ "$p" != "$1" ]; then echo "$p"; fi; done; }
for round in $(seq "$rounds"); do
	for t in "$@"; do
		IFS=: read -r label pid port scheme <<<"$t"
		if [ "${STOP_OTHERS:-1}" = 1 ]; then
			kill -STOP $(others "$pid") 2>/dev/null || true
		fi
		read -r u0 s0 < <(ticks "$pid")
		read -r v0 n0 < <(switches "$pid")
		out=$(taskset -c 1 wrk -t1 -c"$c" -d"${d}"s --latency "${lua[@]}" "${scheme:-http}://127.0.0.1:$port$path")
		read -r u1 s1 < <(ticks "$pid")
		read -r v1 n1 < <(switches "$pid")
		kill -CONT "${pids[@]}" 2>/dev/null || true
		n=$(awk '/requests in/ {print $1}' <<<"$out")
		rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
		p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
		awk -v l="$label" -v r="$round" -v rps="$rps" -v p99="$p99" -v n="$n" -v hz="$hz" \
			-v u=$((u1 - u0)) -v s=$((s1 - s0)) -v v=$((v1 - v0)) -v iv=$((n1 - n0)) \
			'BEGIN {cpu = (u + s) / hz * 1e6 / n
			printf "round %s %-10s req/s %8.0f  p99 %-8s CPU µs/req %6.1f (usr %5.1f sys %5.1f)  switches/req %.3f + %.3f\n",
				r, l, rps, p99, cpu, u / hz * 1e6 / n, s / hz * 1e6 / n, v / n, iv / n
			printf "%s %s %.4f\n", r, l, cpu > "/dev/stderr"}' 2>>"$log"
	done
done
first=${1%%:*}
awk -v first="$first" '
	{ cpu[$1, $2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 }; if ($1 > nr) nr = $1 }
	END {
		for (i = 2; i <= k; i++) {
			m = 0
			for (r = 1; r <= nr; r++) if ((r, first) in cpu && (r, order[i]) in cpu) v[++m] = cpu[r, order[i]] / cpu[r, first]
			for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (v[b] < v[a]) { t = v[a]; v[a] = v[b]; v[b] = t }
			med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
			printf "%s / %s CPU per request: median %.3f over %d rounds (lowest %.3f, highest %.3f)\n", order[i], first, med, m, v[1], v[m]
		}
	}' "$log"
