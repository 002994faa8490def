#!/usr/bin/env bash
# browser-check.sh: a real browser through SwitchFlow. Headless Chromium loads a page from the test origin
# (scripts/browsercheck) through the proxy: 60 assets (images, scripts, stylesheets, fetched bodies; two of
# each kind about 1 MiB), with a ~7.5 KB cookie jar and a ~700-byte Referer/X-Pad on every request after
# the page, a WebSocket echo (10 messages, up to 200 KB) and Server-Sent Events (5 events 300 ms apart,
# each of which must arrive on its own). Exit status 0 only on PASS. See docs/browser-check.md.
#
#   scripts/browser-check.sh                    # installs chromium (apt-get) if missing, runs the check
#   SWITCHFLOW_BROWSER_EXTRA_SERVER='header_buffer = "16KiB"' scripts/browser-check.sh
#                                               # extra lines for the proxy's [server] section
#   TIMEOUT=180s scripts/browser-check.sh       # how long the origin waits for the page's verdict
#   KEEP=1 scripts/browser-check.sh             # keep the work dir (config, proxy log, access log)
#   CHROMIUM=/path/to/chrome scripts/browser-check.sh
#   CHROMIUM_EXTRA_FLAGS='--log-net-log=/tmp/net.json' scripts/browser-check.sh   # more Chromium flags
#
# The proxy runs with the default header settings unless the knob above says otherwise; its config is
# printed on failure, with the requests it refused (from its access log).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

timeout="${TIMEOUT:-120s}"
extra_server="${SWITCHFLOW_BROWSER_EXTRA_SERVER:-}"

say() { echo "browser-check: $*" >&2; }

# --- chromium ---------------------------------------------------------------------------------------
chromium="${CHROMIUM:-}"
if [ -z "$chromium" ]; then
	chromium=$(command -v chromium || command -v chromium-browser || true)
fi
if [ -z "$chromium" ]; then
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || { say "chromium is missing and installing it needs root or sudo"; exit 2; }
		SUDO="sudo"
	fi
	say "installing chromium (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q >&2
	$SUDO apt-get install -y -q --no-install-recommends chromium >&2
	chromium=$(command -v chromium)
fi

# --- build ------------------------------------------------------------------------------------------
work="$(mktemp -d /tmp/switchflow-browser.XXXXXX)"
pids=()   # the origin and the proxy
cpgid=""  # chromium's process group (it forks a zygote, renderers, a GPU and network process)
# pid_alive PID / group_alive PGID: whether the process, or any process of the group, still runs
# (a zombie does not count: the origin, the proxy and Chromium's first process are this shell's children).
pid_alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
group_alive() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }
cleanup() {
	status=$?
	trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
	trap - EXIT
	if [ -n "$cpgid" ]; then
		kill -TERM -- "-$cpgid" 2>/dev/null || true
		for _ in $(seq 1 30); do group_alive "$cpgid" || break; sleep 0.1; done
		kill -KILL -- "-$cpgid" 2>/dev/null || true
		wait "$cpgid" 2>/dev/null || true
		# Chromium's crash handlers run in sessions of their own; their --database is under $work.
		for p in $(ps -eo pid=,args= | awk -v w="$work/" 'index($0, "chrome_crashpad_handler") && index($0, w) { print $1 }'); do
			kill -TERM "$p" 2>/dev/null || true
		done
	fi
	if [ ${#pids[@]} -gt 0 ]; then
		kill -TERM "${pids[@]}" 2>/dev/null || true
		for _ in $(seq 1 50); do
			any=0
			for p in "${pids[@]}"; do if pid_alive "$p"; then any=1; fi; done
			if [ "$any" = 0 ]; then break; fi
			sleep 0.1
		done
		kill -KILL "${pids[@]}" 2>/dev/null || true
		for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	fi
	if [ "${KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -f Makefile ] && grep -q '^build:' Makefile; then
	say "building the proxy: make build"
	make build >&2
	proxy="$PWD/switchflow"
else
	say "building the proxy: go build"
	go build -o "$work/switchflow" .
	proxy="$work/switchflow"
fi
go build -o "$work/browsercheck" ./scripts/browsercheck

# --- origin and proxy -------------------------------------------------------------------------------
{ read -r oport; read -r pport; } < <("$work/browsercheck" -free-ports 2)
cat >"$work/switchflow.toml" <<TOML
[server]
listen = "127.0.0.1:$pport"
loops = 2
max_connections = 1000
shutdown_timeout = "2s"
$extra_server

[log]
level = "info"
access = "$work/access.log"

[[upstream]]
name = "origin"
servers = [ { addr = "127.0.0.1:$oport" } ]

[[route]]
path_prefix = "/"
upstream = "origin"
TOML
if [ -n "$extra_server" ]; then say "extra [server] lines: $extra_server"; fi
"$proxy" -t -config "$work/switchflow.toml" >&2

waitport() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	say "nothing listening on 127.0.0.1:$1 ($2)"
	return 1
}

"$work/browsercheck" -listen "127.0.0.1:$oport" -timeout "$timeout" >"$work/result.txt" 2>"$work/origin.log" &
opid=$!
pids+=("$opid")
"$proxy" -config "$work/switchflow.toml" 2>"$work/proxy.log" &
pids+=($!)
waitport "$oport" origin
waitport "$pport" proxy

# --- the browser ------------------------------------------------------------------------------------
# No --dump-dom or --virtual-time-budget: the page reports to the origin itself (POST /verdict), so
# nothing depends on when Chromium decides the page is done, and the events' gaps are real time. Headless
# Chromium keeps the page open until it is stopped; setsid gives it a process group, stopped as one.
profile="$work/profile"
mkdir -p "$profile"
url="http://127.0.0.1:$pport/"
say "chromium $("$chromium" --version 2>/dev/null | head -1) → proxy 127.0.0.1:$pport → origin 127.0.0.1:$oport"
# Its own HOME and XDG dirs keep the crash database and caches out of the user's home and put the
# work dir's path on the crash handler's command line: that process leaves the group (its own session),
# and cleanup finds it by that path. (--disable-crashpad-for-testing would spare it, but Chromium 156
# aborts with "FD ownership violation" under it.)
mkdir -p "$work/home"
HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_CACHE_HOME="$work/home/.cache" \
setsid "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --disable-dev-shm-usage \
	--no-first-run --no-default-browser-check --disable-background-networking --disable-component-update \
	--disable-sync --disable-extensions --mute-audio --no-proxy-server --password-store=basic \
	--user-data-dir="$profile" ${CHROMIUM_EXTRA_FLAGS:-} \
	"$url" >"$work/chromium.log" 2>&1 &
cpgid=$!

rc=0
wait "$opid" || rc=$?
cat "$work/result.txt"
if [ "$rc" -ne 0 ]; then
	if [ -s "$work/access.log" ]; then
		refused=$(awk '$9 >= 400' "$work/access.log" || true)
		if [ -n "$refused" ]; then
			say "the proxy answered $(wc -l <<<"$refused") requests with an error; by status:"
			awk '{print $9}' <<<"$refused" | sort | uniq -c | sed 's/^/    /' >&2
			say "the first of them (access log):"
			head -5 <<<"$refused" | cut -c1-300 | sed 's/^/    /' >&2
		else
			say "the proxy's access log shows no error status"
		fi
	fi
	say "proxy config:"
	sed 's/^/    /' "$work/switchflow.toml" >&2
	if grep -qiE 'level=(WARN|ERROR)' "$work/proxy.log"; then
		say "proxy warnings (last 10):"
		grep -iE 'level=(WARN|ERROR)' "$work/proxy.log" | tail -10 | cut -c1-300 | sed 's/^/    /' >&2
	fi
	if [ -s "$work/origin.log" ]; then
		say "origin log (last 10):"
		tail -10 "$work/origin.log" | sed 's/^/    /' >&2
	fi
	if ! group_alive "$cpgid" || ! [ -s "$work/access.log" ]; then
		say "chromium exited early or sent nothing; its log (last 15):"
		tail -15 "$work/chromium.log" | sed 's/^/    /' >&2
	fi
	exit 1
fi
