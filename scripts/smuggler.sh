#!/usr/bin/env bash
# Runs defparam/smuggler (https://github.com/defparam/smuggler; not vendored here) against SwitchFlow on
# loopback, in front of the demo origin.
#
#   scripts/smuggler.sh /path/to/smuggler-checkout [logdir]
#
# It builds SwitchFlow and the demo origin, starts both on free 127.0.0.1 ports with a temporary
# config, runs smuggler's default, exhaustive and doubles payload sets, saves each output under logdir
# (default: a new temp dir), stops everything on exit, and prints a summary. Exit status 1 when
# smuggler reported any CRITICAL or "Potential ... Issue" line.
#
# smuggler resolves -c relative to its own configs/ directory unless the path's second character is
# '/' (smuggler.py: `if self._configfile[1] != '/'`), so an absolute path would be mangled; the configs
# are passed by name, which selects $1/configs/<name>.
set -euo pipefail

smug="${1:?usage: $0 /path/to/smuggler [logdir]}"
smug="$(cd "$smug" && pwd)"
[ -f "$smug/smuggler.py" ] || { echo "no smuggler.py in $smug" >&2; exit 2; }
cd "$(dirname "$0")/.."
logdir="${2:-$(mktemp -d /tmp/switchflow-smuggler.XXXXXX)}"
mkdir -p "$logdir"
work="$(mktemp -d /tmp/switchflow-smuggler-run.XXXXXX)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
waitport() {
	for _ in $(seq 1 100); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2).close()" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listening on 127.0.0.1:$1" >&2
	return 1
}

scripts/gnet.sh # the patched gnet that go.mod points at
go build -o "$work/switchflow" .
go build -o "$work/origin" ./benchmarks/origin
oport=$(freeport)
pport=$(freeport)
cat >"$work/switchflow.toml" <<TOML
[server]
listen = "127.0.0.1:$pport"
loops = 2
max_connections = 1000
read_header_timeout = "10s"
idle_timeout = "60s"

[log]
level = "warn"

[[upstream]]
name = "demo"
servers = [ { addr = "127.0.0.1:$oport" } ]
connect_timeout = "2s"
response_timeout = "10s"
retries = 0
max_fails = 0

[[route]]
path_prefix = "/"
upstream = "demo"
TOML

"$work/origin" -addr "127.0.0.1:$oport" -name demo >"$logdir/origin.log" 2>&1 &
pids+=($!)
waitport "$oport"
"$work/switchflow" -config "$work/switchflow.toml" >"$logdir/switchflow.log" 2>&1 &
pids+=($!)
waitport "$pport"

url="http://127.0.0.1:$pport/"
status=0
for cfg in default exhaustive doubles; do
	echo "== smuggler -c $cfg.py -> $url"
	log="$logdir/smuggler-$cfg.log"
	args=(-u "$url" --no-color -t 5)
	[ "$cfg" = default ] || args+=(-c "$cfg.py")
	if ! (cd "$smug" && python3 smuggler.py "${args[@]}") >"$log" 2>&1; then
		echo "   smuggler exited non-zero (see $log)"
		status=2
	fi
	total=$(grep -cE '\]\s*:' "$log" || true)
	ok=$(grep -cE ': OK' "$log" || true)
	disc=$(grep -c 'DISCONNECTED' "$log" || true)
	crit=$(grep -ciE 'CRITICAL|Potential (CLTE|TECL) Issue' "$log" || true)
	echo "   payloads: $total  OK: $ok  DISCONNECTED: $disc  CRITICAL/potential: $crit"
	echo "   statuses seen: $(grep -oE '(TECL|CLTE): [0-9.]+ - [0-9]+' "$log" | awk '{print $1 $4}' | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
	if [ "$crit" -gt 0 ]; then
		grep -iE 'CRITICAL|Potential (CLTE|TECL) Issue' "$log" | sed 's/^/   /'
		status=1
	fi
done
if kill -0 "${pids[1]}" 2>/dev/null; then echo "switchflow still running after the scans"; else echo "switchflow DIED during the scans"; status=1; fi
echo "logs: $logdir"
exit $status
