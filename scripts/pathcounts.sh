#!/usr/bin/env bash
# pathcounts.sh OLD NEW [PATH]: instructions per request on the request path alone, for two builds, with
# where they differ. callgrind counts only inside gnet's I/O callback (processIO: reading, the engine's
# OnTraffic, writing), so the Go runtime's background work (GC, timers, the scheduler), which moves with
# how long a run lasts, stays out; 64 keep-alive connections, wrk for 5 s after 2 s of warm-up, the proxy
# on CPU 0 and wrk and the origin on CPU 1. Alternate the two builds over a few runs: a count moves by
# about 1-2 % from run to run. Then a per-function diff of self cost per request, largest growth first
# (scripts/lib/cgself.py: callgrind_annotate mixes up Go's recursion cycles).
# CONNS=N: N connections instead of 64; with 1, no callback serves more than one request, and the count
# hardly moves from run to run. SF_KEEPALIVE=0 measures the path that dials a backend connection for
# every request (scripts/lib/peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 path=${3:-/}
make -s tools >/dev/null
. scripts/lib/peers.sh
op=$(port)
taskset -c 1 bin/origin -addr 127.0.0.1:"$op" >/dev/null 2>&1 & pids+=($!)
wait_port "$op"
for label in old new; do
	bin=$old; [ $label = new ] && bin=$new
	p=$(port); sf_config "$p" "127.0.0.1:$op" >"$dir/$label.toml"
	# As in compare-builds.sh: Go's preemption signals and RDTSCP are off, which valgrind cannot take.
	GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1 taskset -c 0 valgrind --tool=callgrind --separate-recs=1 \
		--toggle-collect='*processIO*' --callgrind-out-file="$dir/$label.cg" "$bin" -config "$dir/$label.toml" 2>"$dir/$label.vg.log" & vpid=$!
	wait_port "$p"
	taskset -c 1 wrk -t1 -c"${CONNS:-64}" -d2s "http://127.0.0.1:$p$path" >/dev/null || true
	callgrind_control -z "$vpid" >/dev/null || true
	taskset -c 1 wrk -t1 -c"${CONNS:-64}" -d5s "http://127.0.0.1:$p$path" | awk '/requests in/ {print $1}' >"$dir/$label.n"
	callgrind_control -d "$vpid" >/dev/null || true
	kill -INT "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true
done
python3 scripts/lib/cgself.py "$dir"/old.cg.1 "$dir/old.n" "$dir"/new.cg.1 "$dir/new.n"
# KEEP=DIR keeps the callgrind outputs and request counts, for callgrind_annotate or another cgself.py run.
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$dir"/*.cg.1 "$dir"/*.n "$KEEP"/; fi
