// Command origin is the backend that every benchmark and end-to-end test
// proxies to: a small fasthttp server with fixed, deterministic responses.
//
// Usage:
//
//	make tools && bin/origin -addr 127.0.0.1:9001,127.0.0.1:9002 -name a
//
// -addr takes a comma-separated list; one process listens on all of them.
// Every response carries the header "X-Origin: <name>" so tests can tell
// which backend answered.
//
// Endpoints:
//
//	/              200, "Hello, World!" (13 bytes), text/plain; also any path not below
//	/json          200, a fixed 4 KiB JSON document
//	/big           200, 1 MiB; byte i is byte(i*7+3)
//	/chunked       200, chunked: 64 KiB of the same pattern in 4 KiB chunks
//	/huge?mb=N     200, N MiB (1..1024, default 64) of the same pattern with Content-Length,
//	               streamed from a reader, not held in memory (the benchmark's slowread)
//	/echo          the request body back, with the request's Content-Type
//	/slow?ms=N     sleeps N ms (at most 60000), then 200 "Hello, World!"
//	/status?code=N answers status N (200..599; anything else gets 400)
//	/cached/...    200, the same 4 KiB JSON as /json with "Cache-Control: max-age=1",
//	               for the benchmark's cache scenarios; requests are counted per path
//	/stats         200, JSON {"cached":{"/cached/json":N,...}}: requests per /cached/ path
//	               since start ("Cache-Control: no-store")
//
// The server logs nothing per request: it must not be the bottleneck of a
// benchmark it takes part in.
package main
