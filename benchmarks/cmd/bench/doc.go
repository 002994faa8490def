// Command bench is SwitchFlow's benchmark harness. It builds and starts a
// fasthttp origin, starts each proxy in turn pinned to one CPU with one
// worker, drives it with wrk pinned to another CPU, and reports throughput,
// latency, CPU time per request and memory, with ratios against nginx from
// the same run. See benchmarks/README.md for the method.
//
//	make bench ARGS="-rounds 3 -duration 10s"
//
// It owns the harness: starting and stopping peers, wrk runs, /proc accounting, the table, results.json
// and chart.png. It imports nothing of SwitchFlow's packages: SwitchFlow is built and run as a binary,
// like every peer, so that the harness measures what users run.
package main
