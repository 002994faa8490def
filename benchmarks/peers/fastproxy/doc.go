// Command fastproxy is a minimal fasthttp reverse proxy, a benchmark peer for
// SwitchFlow: one fasthttp.HostClient with keep-alive connections to a single
// upstream. It forwards every request unchanged but for the hop-by-hop
// headers, which fasthttp drops or rewrites itself, and X-Forwarded-For.
//
// Usage:
//
//	fastproxy -listen 127.0.0.1:8081 -upstream 127.0.0.1:9001
//
// It imports nothing of SwitchFlow's: a peer must not share SwitchFlow's code.
package main
