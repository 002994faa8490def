#!/usr/bin/env bash
# Runs engine.TestSoak for longer than CI does (CI runs it for its 30 s default inside go test ./...).
#
#   scripts/soak.sh            # 10 minutes, with the race detector
#   scripts/soak.sh 1h         # any Go duration
#   RACE= scripts/soak.sh 30m  # without -race
#
# The test mixes keep-alive, connection-per-request, pipelined, ~5% malformed requests, heads sent in
# pieces and pipeliners that do not read, against two loopback origins, one killed and restarted every
# 1.5 s, and fails on any error on a well-formed request, on an answer meant for another request, on descriptors or header slabs not back to baseline, or on heap growth over 8 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
dur="${1:-10m}"
race="${RACE--race}"
scripts/gnet.sh # the patched gnet that go.mod points at
exec go test $race -count=1 -run '^TestSoak$' -timeout 0 -v ./engine -soak="$dur"
