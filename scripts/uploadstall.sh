#!/usr/bin/env bash
# uploadstall.sh: how smoothly SwitchFlow and nginx take a fast 100 MiB upload to an origin that reads as
# fast as it can. Each proxy runs pinned to CPU 0, the origin and the client on CPU 1; the proxies take
# turns, ROUNDS rounds (default 3). Prints, per upload, the writes that blocked longer than 30 ms.
#
#   scripts/uploadstall.sh                       # ./switchflow (make build) against nginx
#   OTHER=/path/to/switchflow scripts/uploadstall.sh   # a second SwitchFlow build beside them
#   SIZE=200MiB ROUNDS=5 scripts/uploadstall.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3} size=${SIZE:-100MiB}
make -s build >/dev/null
CGO_ENABLED=0 go build -o bin/uploadstall ./benchmarks/cmd/uploadstall
. scripts/lib/peers.sh

sinkp=$(port)
taskset -c 1 bin/uploadstall -serve 127.0.0.1:"$sinkp" & pids+=($!)
wait_port "$sinkp"
targets=()
start_sf switchflow ./switchflow "127.0.0.1:$sinkp"
targets+=("switchflow:$last_port")
if [ -n "${OTHER:-}" ]; then
	start_sf other "$OTHER" "127.0.0.1:$sinkp"
	targets+=("other:$last_port")
fi
start_nginx "127.0.0.1:$sinkp"
targets+=("nginx:$last_port")

echo "uploadstall: $size per upload, writes of 64 KiB, $rounds rounds; $(date -u +%FT%TZ) on $(nproc) CPUs"
for r in $(seq "$rounds"); do
	for t in "${targets[@]}"; do
		taskset -c 1 bin/uploadstall -addr 127.0.0.1:"${t#*:}" -size "$size" -label "round=$r ${t%%:*}"
	done
done
