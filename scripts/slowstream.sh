#!/usr/bin/env bash
# Runs the streaming memory tests of engine/streaming_test.go at the streaming issue's sizes; CI runs the
# same tests at small ones (32 MiB at 32 MiB/s; 100 clients × 8 MiB). Each test builds the switchflow
# binary, runs it, and bounds its VmRSS peak over its idle baseline while checking every byte:
#
#   TestStreamingSlowReader       one client reads SIZE at RATE                  (loops 1 and 4)
#   TestStreamingManySlowReaders  CLIENTS clients at once, CLIENT_SIZE each at CLIENT_RATE   (loops 4)
#   TestStreamingSlowUpload       a client uploads SIZE, first an eighth slowly, then fast, to an origin
#                                 reading at RATE
#   TestStreamingPipelinedUpload  SIZE pipelined behind an unread response; skipped until
#                                 pipelineBackpressure is set
#
#   scripts/slowstream.sh                               # the issue: 256MiB at 1MiB/s, 100 clients; ~40 min
#   SIZE=16MiB RATE=4MiB CLIENTS=20 scripts/slowstream.sh   # a quick check of the script, ~30 s
#   LOOPS=1 scripts/slowstream.sh                       # one loop count for every test
#   RACE=-race scripts/slowstream.sh                    # the clients under the race detector (slower)
#
# Environment: SIZE, RATE (default 256MiB, 1MiB), CLIENTS (100), CLIENT_SIZE, CLIENT_RATE (SIZE, RATE),
# LOOPS (each test's default), RACE (empty). Extra arguments go to go test (e.g. -run TestStreamingSlowReader).
set -euo pipefail
cd "$(dirname "$0")/.."
size="${SIZE:-256MiB}"
rate="${RATE:-1MiB}"
args=(
	-stream.size="$size" -stream.rate="$rate"
	-stream.clients="${CLIENTS:-100}" -stream.clientsize="${CLIENT_SIZE:-$size}" -stream.clientrate="${CLIENT_RATE:-$rate}"
	-stream.upsize="$size" -stream.uprate="$rate"
)
if [ -n "${LOOPS:-}" ]; then
	args+=(-stream.loops="$LOOPS")
fi
scripts/gnet.sh # the patched gnet that go.mod points at
# shellcheck disable=SC2086 # RACE is empty or one flag
exec go test ${RACE:-} -count=1 -run '^TestStreaming' -timeout 0 -v "$@" ./engine "${args[@]}"
