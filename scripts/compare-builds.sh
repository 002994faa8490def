#!/usr/bin/env bash
# compare-builds.sh: CPU per request of two SwitchFlow builds and nginx, paired in alternating rounds
# (scripts/pair.sh), plus counts that noise cannot move: instructions per request under callgrind and
# system calls per request under strace, for each build. Proxies on CPU 0 (loops = 1, nginx one
# worker), the origin and wrk on CPU 1.
#
#   scripts/compare-builds.sh OLD_BINARY [NEW_BINARY]      # NEW defaults to ./switchflow (make build)
#   ROUNDS=8 SECONDS_PER_RUN=3 SCENARIOS="hello json4k big1m post64k" scripts/compare-builds.sh /tmp/sf-old
#   COUNTS=0 ...   # skip callgrind and strace; PAIR=0 ...   # only them
#   TLS=1 SCENARIOS="hello json4k" ...   # over HTTPS: both builds and nginx terminate TLS (scripts/lib/peers.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# The soft open-file limit at the hard one: a proxy that raises it itself signals every thread
# (setrlimit through AllThreadsSyscall), which callgrind cannot follow.
ulimit -n "$(ulimit -Hn)"
old=$1 new=${2:-./switchflow}
rounds=${ROUNDS:-6} secs=${SECONDS_PER_RUN:-3}
scenarios=${SCENARIOS:-hello json4k big1m post64k}
[ "$new" = ./switchflow ] && make -s build >/dev/null
make -s tools >/dev/null
. scripts/lib/peers.sh

op=$(port)
taskset -c 1 bin/origin -addr 127.0.0.1:"$op" >/dev/null 2>&1 & pids+=($!)
wait_port "$op"
scheme=http
[ "${TLS:-0}" = 1 ] && scheme=https
targets=()
for label in old new; do
	bin=$old; [ $label = new ] && bin=$new
	start_sf "$label" "$bin" "127.0.0.1:$op"
	targets+=("$label:$last_pid:$last_port:$scheme")
done
start_nginx "127.0.0.1:$op"
targets+=("nginx:$last_pid:$last_port:$scheme")

printf 'wrk.method = "POST"\nwrk.body = string.rep("a", 65536)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' >"$dir/post64k.lua"
scenario() { # name -> "path connections lua"
	case $1 in
	hello) echo "/ 64 -" ;;
	json4k) echo "/json 64 -" ;;
	big1m) echo "/big 16 -" ;;
	post64k) echo "/echo 64 $dir/post64k.lua" ;;
	esac
}
echo "compare-builds: old=$old new=$new; $scheme; $(date -u +%FT%TZ); $(nproc) CPUs; $rounds rounds of ${secs}s"
for s in $scenarios; do
	[ "${PAIR:-1}" = 1 ] || break
	read -r path conns lua < <(scenario "$s")
	echo "== $s ($path, $conns connections)"
	if [ "$lua" = - ]; then lua=""; fi
	LUA=$lua ROUNDS=$rounds scripts/pair.sh "$secs" "$conns" "$path" "${targets[@]}" | grep -E 'CPU per request|^round' | grep -v '^round' || true
done
[ "${COUNTS:-1}" = 1 ] || exit 0

# VALGRIND and CALLGRIND_CONTROL may point at another valgrind (with VALGRIND_LIB for an unpacked one).
valgrind=${VALGRIND:-valgrind} cgctl=${CALLGRIND_CONTROL:-callgrind_control}
# Counts: each build alone under callgrind (instructions) and under strace (system calls), a fixed
# wrk load after a warm-up; per request = the count over the measured part / wrk's requests.
for label in old new; do
	bin=$old; [ $label = new ] && bin=$new
	for s in $scenarios; do
		read -r path conns lua < <(scenario "$s")
		luaarg=(); [ "$lua" != - ] && luaarg=(-s "$lua")
		# With TLS the measured port is the TLS one (its plain port is unused).
		p=$(port) tp=""; [ "$scheme" = https ] && tp=$(port)
		sf_config "$p" "127.0.0.1:$op" $tp >"$dir/cg.toml"
		# Off for both builds: Go's preemption signals crash callgrind (vgCallgrind_post_signal), and valgrind
		# cannot execute the RDTSCP the runtime uses when it finds it.
		GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 taskset -c 0 "$valgrind" --tool=callgrind --callgrind-out-file="$dir/cg.out" "$bin" -config "$dir/cg.toml" 2>"$dir/cg.log" & vpid=$!
		wait_port "$p"
		[ -n "$tp" ] && { wait_port "$tp"; p=$tp; }
		taskset -c 1 wrk -t1 -c"$conns" -d2s "${luaarg[@]}" "$scheme://127.0.0.1:$p$path" >/dev/null || true
		"$cgctl" -z "$vpid" >/dev/null || true
		n=$(taskset -c 1 wrk -t1 -c"$conns" -d5s "${luaarg[@]}" "$scheme://127.0.0.1:$p$path" | awk '/requests in/ {print $1}') || true
		"$cgctl" -d "$vpid" >/dev/null || true
		ir=$(cat "$dir"/cg.out* 2>/dev/null | awk '/^summary:/ {s += $2} END {print s}')
		kill -INT "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; rm -f "$dir"/cg.out*
		p=$(port) tp=""; [ "$scheme" = https ] && tp=$(port)
		sf_config "$p" "127.0.0.1:$op" $tp >"$dir/st.toml"
		taskset -c 0 "$bin" -config "$dir/st.toml" 2>/dev/null & spid=$!
		wait_port "$p"
		[ -n "$tp" ] && { wait_port "$tp"; p=$tp; }
		taskset -c 1 wrk -t1 -c"$conns" -d1s "${luaarg[@]}" "$scheme://127.0.0.1:$p$path" >/dev/null
		strace -c -f -q -p "$spid" -o "$dir/st.out" & tpid=$!
		sleep 0.5
		m=$(taskset -c 1 wrk -t1 -c"$conns" -d3s "${luaarg[@]}" "$scheme://127.0.0.1:$p$path" | awk '/requests in/ {print $1}')
		kill -INT "$tpid"; wait "$tpid" 2>/dev/null || true
		calls=$(awk '$NF == "total" {print $4}' "$dir/st.out")
		kill -INT "$spid"; wait "$spid" 2>/dev/null || true
		awk -v l="$label" -v s="$s" -v ir="$ir" -v n="$n" -v c="$calls" -v m="$m" 'BEGIN {
			printf "counts %-4s %-8s instructions/request %8.0f (%d requests under callgrind)  system calls/request %.2f (%d requests under strace)\n", l, s, ir / n, n, c / m, m }'
	done
done
