#!/usr/bin/env bash
# kernelmem.sh: the kernel memory one slow reader holds. A fast 500 MiB download first (three times,
# with its speed), so that autotuned socket buffers would have grown; then a client that sends one
# request for 500 MiB and reads nothing; ss -tmn shows the backend socket's receive queue (r) and the
# client socket's send queue (w) while it waits.
#
#   scripts/kernelmem.sh [BINARY]      # default ./switchflow (make build); "nginx" measures nginx
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-./switchflow}
[ "$bin" = ./switchflow ] && make -s build >/dev/null
make -s tools >/dev/null
. scripts/lib/peers.sh
op=$(port)
taskset -c 1 bin/origin -addr 127.0.0.1:"$op" >/dev/null 2>&1 & pids+=($!)
wait_port "$op"
if [ "$bin" = nginx ]; then
	start_nginx "127.0.0.1:$op"
else
	start_sf proxy "$bin" "127.0.0.1:$op"
fi
pp=$last_port
for _ in 1 2 3; do curl -s -o /dev/null -w 'fast 500 MiB download: %{speed_download} B/s\n' "http://127.0.0.1:$pp/huge?mb=500"; done
python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"GET /huge?mb=500 HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(6)' "$pp" & pids+=($!)
sleep 4
echo "a client reading nothing: backend socket (r = receive queue), then client socket (w = send queue)"
ss -tmn state established "( dport = :$op )" | grep skmem | head -1
ss -tmn state established "( sport = :$pp )" | grep skmem | head -1
