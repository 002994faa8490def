// Package admin is SwitchFlow's admin listener: a plain net/http server, on its own goroutine and
// address ([admin] listen), that answers
//
//	GET /metrics   the Prometheus text exposition format 0.0.4, every name prefixed switchflow_
//	GET /healthz   200 "ok" while the proxy serves, 503 "draining" after SIGTERM
//	GET /status    the same figures as JSON, with each upstream server's state
//
// Other paths get 404, other methods on these paths 405. It owns the Snapshot types (plain data: what
// the engine counted, summed over its event loops at the moment of the request) and their rendering.
//
// It shares the process's file descriptors with the proxy, so it holds at most MaxConns connections
// (more wait in the kernel's accept queue), closes idle ones (Serve's timeouts), and rides out a lack
// of descriptors by pausing its accepts rather than retrying at once.
//
// It is not the proxy path: nothing here runs on an event loop, and the engine's loops never wait on it.
// admin imports only the standard library; it must not import engine (engine imports admin and hands it a
// Source), config, or anything that runs on the event loops.
package admin
