// Command gnetfwd is a bare gnet byte forwarder: the floor under SwitchFlow,
// not a proxy anyone would deploy. Each client connection gets its own
// backend connection, opened on the same event loop, and bytes are copied
// both ways unchanged: no HTTP parsing, no headers added or dropped, no
// pooling, no limits, no timeouts, no backpressure. Whatever SwitchFlow
// spends above gnetfwd in a keep-alive scenario is what its HTTP work and
// bookkeeping cost; what gnetfwd spends is gnet, the Go runtime and the
// kernel.
//
// It runs with the same loop count and GOMAXPROCS as SwitchFlow does in the
// harness: one loop, GOMAXPROCS = loops + 1 (the harness sets it), the same
// 64 KiB read buffer.
//
// Usage:
//
//	gnetfwd -listen 127.0.0.1:8086 -upstream 127.0.0.1:9001
//
// It imports gnet only (our patched copy, as SwitchFlow does) and nothing of SwitchFlow's.
package main
