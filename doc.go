// Command switchflow is an HTTP/1.1 reverse proxy and load balancer on gnet event loops.
//
//	switchflow -config switchflow.toml   run the proxy
//	switchflow -t -config FILE           check FILE and exit 0 (ok) or 1 (every problem printed)
//	switchflow -version                  print the version and the Go and gnet versions
//
// This package owns the command line, logging setup, signals and the process's lifetime: it checks the
// configuration (config) and runs the engine. It holds no proxy logic of its own and imports only
// config and engine of ours (never benchmarks/ or a test helper).
package main
