// Command stdproxy is a benchmark peer for SwitchFlow built from the standard
// library alone: net/http serving, httputil.ReverseProxy forwarding, and a
// Transport that keeps enough idle connections to the single upstream that
// no benchmark has to open a new backend connection per request.
//
// Usage:
//
//	stdproxy -listen 127.0.0.1:8082 -upstream 127.0.0.1:9001
//
// Standard library only; it imports nothing of SwitchFlow's.
package main
