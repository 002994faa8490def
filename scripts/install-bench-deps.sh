#!/usr/bin/env bash
# Installs the benchmark peers and load generator: nginx, HAProxy and wrk,
# from Debian packages. Idempotent: a tool already on PATH is left alone.
# The nginx package starts a system nginx on port 80; it is stopped, because
# the benchmark starts its own nginx, pinned, from a config in the out dir.
set -euo pipefail

need=()
command -v nginx   >/dev/null 2>&1 || command -v /usr/sbin/nginx   >/dev/null 2>&1 || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || command -v /usr/sbin/haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v wrk     >/dev/null 2>&1 || need+=(wrk)

if [ ${#need[@]} -eq 0 ]; then
	echo "install-bench-deps: nginx, haproxy and wrk are present"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-bench-deps: need root (or sudo) to install: ${need[*]}" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-bench-deps: installing ${need[*]}"
$SUDO apt-get update -q

pkgs=()
for n in "${need[@]}"; do
	case "$n" in
	nginx)
		# nginx-light is the smallest build; newer Debian releases dropped it.
		if apt-cache show nginx-light >/dev/null 2>&1; then pkgs+=(nginx-light); else pkgs+=(nginx); fi
		;;
	*) pkgs+=("$n") ;;
	esac
done
$SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}"

# The packages may have started system services; the benchmark runs its own.
for svc in nginx haproxy; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		$SUDO systemctl stop "$svc" || true
	elif command -v service >/dev/null 2>&1; then
		$SUDO service "$svc" stop >/dev/null 2>&1 || true
	fi
done
# Without an init system the postinst may have started nginx directly.
if [ -f /run/nginx.pid ]; then
	$SUDO kill "$(cat /run/nginx.pid)" 2>/dev/null || true
fi

for t in nginx haproxy wrk; do
	if ! command -v "$t" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$t" ]; then
		echo "install-bench-deps: $t still missing after install" >&2
		exit 1
	fi
done
echo "install-bench-deps: done"
