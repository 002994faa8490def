// Command idleconns opens N keep-alive connections to an HTTP/1.1 server,
// sends one GET on each, reads the whole response, and then holds every
// connection open and idle. The benchmark harness uses it to measure what
// idle client connections cost a proxy in memory.
//
// When all connections are open it prints one line to stdout,
//
//	ready ok=N failed=M
//
// and then holds them until stdin reaches EOF, a SIGINT or SIGTERM arrives,
// or -hold passes, whichever comes first.
//
// Usage:
//
//	idleconns -addr 127.0.0.1:8080 -n 10000
//
// Standard library only; it imports nothing of SwitchFlow's.
package main
