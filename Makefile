# SwitchFlow's build. Every target that compiles depends on `gnet`: go.mod replaces gnet with .build/gnet,
# the pinned release with the patch series of third_party/gnet/patches applied (scripts/gnet.sh), and
# without that folder neither go build nor go vet can load the module.
#
#   make build      the proxy, ./switchflow (no cgo needed)
#   make run        the proxy on switchflow.toml in front of the demo origin; Ctrl-C stops both
#   make test       what CI runs (.ci/run): gofmt, go vet, the race-detector tests, the memory-bound ones
#   make bench      the benchmark against nginx, HAProxy and the other peers (ARGS="-rounds 1 ...")
#   make chart      redraws the chart from RESULTS, a results JSON the bench wrote (no rerun)
#   make gnet       only the patched gnet (.build/gnet); reruns when a patch or the version changes
#   make gnet-update GNET_VERSION=v2.x.y   moves the series to another gnet release (third_party/README.md)

SHELL := bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
RESULTS ?= benchmarks/results/2026-11-24-full-results.json
CHART ?= benchmarks/results/2026-11-24-full-chart.png

.PHONY: build run test bench chart gnet gnet-pin gnet-update tools clean

build: gnet
	CGO_ENABLED=0 $(GO) build -o switchflow .

gnet:
	@scripts/gnet.sh

# The helper programs: the demo and benchmark origin, the benchmark harness, its TLS handshake client.
tools: gnet
	CGO_ENABLED=0 $(GO) build -o bin/origin ./benchmarks/origin
	CGO_ENABLED=0 $(GO) build -o bin/bench ./benchmarks/cmd/bench
	CGO_ENABLED=0 $(GO) build -o bin/hsload ./benchmarks/cmd/hsload

run: build tools
	@scripts/run.sh

# -race needs cgo, so a C compiler (gcc) on PATH: apt-get install gcc.
test: gnet
	$(GO) version
	@echo "== gofmt"
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	@echo "== go vet"
	$(GO) vet ./...
	@echo "== tests, with the race detector"
	$(GO) test -race -count=1 -timeout 20m ./...
	@echo "== memory-bound tests again without the race detector (it adds memory of its own; some skip under -race)"
	$(GO) test -count=1 -timeout 5m -run 'TestSlowloris|TestCacheHitAllocatesNothing|TestSlowReaderHoldsBackend|TestFastUploadHoldsClient|TestSlowHTTP10Reader|TestTunnelBackpressure|TestTLSSlowReadersAndUploadersBounded|TestTLSManyClients' ./engine
	$(GO) test -count=1 -timeout 5m -run 'TestRecordsAllocate' ./tlsrec
	@echo "== the chart's module (benchmarks/chart)"
	$(GO) -C benchmarks/chart vet ./...
	$(GO) -C benchmarks/chart test -count=1 ./...

bench: tools
	bin/bench $(ARGS)

chart:
	$(GO) -C benchmarks/chart run . -in $(abspath $(RESULTS)) -out $(abspath $(CHART))

gnet-pin:
	@scripts/gnet.sh pin

# Moves go.mod to GNET_VERSION, pins its hashes in go.sum and applies the series; a patch that no longer
# applies is named, and the tree before it is left in .build/gnet.tmp for mending (third_party/README.md).
gnet-update:
	@test -n "$(GNET_VERSION)" || { echo "usage: make gnet-update GNET_VERSION=v2.x.y"; exit 1; }
	$(GO) mod edit -require=github.com/panjf2000/gnet/v2@$(GNET_VERSION)
	scripts/gnet.sh pin
	scripts/gnet.sh
	GOFLAGS=-mod=mod $(GO) mod tidy
	scripts/gnet.sh pin

clean:
	rm -rf .build bin switchflow
