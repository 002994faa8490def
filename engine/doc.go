// Package engine is SwitchFlow's gnet event handler: it owns the client connections, the backend
// connections that serve them, and the per-connection state machines that move requests one way and
// responses the other.
//
// # Loops
//
// A backend connection lives on the event loop of the client it serves: pooled connections are kept
// per loop, and new ones are opened onto the client's loop (upstream.Dialer, EventLoop.Enroll). So a
// request and its response never cross goroutines, and everything in loopState, clientConn and
// backendConn is loop only. The only state shared between loops is the routing table (an atomic pointer,
// swapped whole on SIGHUP and when a name an upstream follows changes its addresses: resolve.go), the
// header slab pool (taken once per connection), and the servers' health (atomics). gnet's ticker goroutine only schedules each loop's sweep, which enforces every timeout and
// refreshes the prebuilt responses' Date once a second.
//
// An HTTPS backend connection ([upstream.tls]) is the same backendConn: the dialer worker runs its
// handshake, and OnOpen installs its record layer (tlsrec) as the gnet connection's transform before
// its first byte (upstreamtls.go), so every read and write of the engine sees plaintext. It is pooled
// and timed as a plain one, and never spliced. The servers' session caches are shared by the loops
// (crypto/tls's lock, taken per handshake and per session ticket).
//
// # Buffers and lifetimes
//
// A request head is copied from gnet's buffer into the client's header slab (bufpool) and parsed there,
// into the loop's scratch Request, so its views stay valid until the response completes. A request that
// waits (a dial, a connection freed later, a cache fill) keeps its parse as offsets into the slab
// (codec.HeadIndex, keepHead) and gets it back without parsing again; a retry of a request that went out
// at once, whose parse nobody kept, parses the slab's head again (request). A
// response head is parsed in place in gnet's buffer and rewritten into the loop's scratch buffer within
// the same callback. Body bytes are never copied by SwitchFlow: they go from one connection's read buffer
// to the other's Write (gnet copies only what the socket does not take at once). The one exception is a
// chunked body's trailer section, at most 8 KiB (codec.MaxTrailerBytes): its lines that may travel in
// trailers are copied into the loop's scratch (loopState.trailers) and written behind the body, so that
// Content-Length, Transfer-Encoding, Host and the other fields RFC 9110 6.5.1 keeps out of trailers are
// never passed on (codec.ChunkedReader.Forward).
//
// # Backpressure
//
// One mechanism, in flow.go: a connection stops being read (Conn.PauseRead, our gnet patch) while
// more than half of io_buffer waits to be written to the connection its bytes go to, and is read
// again as soon as that queue is written out (Server.OnDrained). TCP flow control holds the sender
// back meanwhile; the paused connection's own queue keeps flushing, so both directions can be held at
// once and no byte is ever dropped. Responses, uploads, pipelined requests, a body that arrives while
// its backend is dialed, tunnels and large cache hits all go through it. Large Content-Length
// response bodies are spliced instead (trySplice): gnet moves them from the backend's socket to the
// client's through a pipe (Conn.SpliceTo), not reading the backend while the pipe is full;
// Server.OnSpliced ends the exchange once the last byte has left the backend, and the pipe's rest
// counts as the client's queue. capPipelined (2 × io_buffer + header_buffer) and capTunnel
// (8 × io_buffer one way) remain as last bounds behind the pauses. The tests decide: a 32 MiB stream
// to a slow side grows the heap by well under 2 MiB in each direction (flow_test.go,
// tunnel_test.go, streaming_test.go).
//
// # Timeouts
//
// Each connection carries one deadline (clientConn.deadline, backendConn.deadline, monotonic ns), set
// where the wait begins and checked by the sweep every 100 ms (a loop with no client and nothing in
// flight is swept once a second: it has nothing to time), so a timeout fires up to 100 ms late and
// arming one costs a store. A deadline counts from the clock of the callback that sets it (loopState.clock,
// read once per callback), never from the last sweep's: that one is up to 100 ms old, and timeouts
// counted from it fired up to 100 ms early. What each wait is bounded by:
//
//   - a request head: read_header_timeout (408); an idle keep-alive client: idle_timeout (silent close);
//   - a request body that stops coming: idle_timeout from the last bytes forwarded (forwardBody; 408, or
//     a close once the response began); a client that reads nothing of its response: idle_timeout from
//     the last time its queue shrank (watchSlowClient, for a held or spliced backend);
//   - a dial: connect_timeout (next server, then 502); a response head: response_timeout from the request
//     sent (504); a response body that stops coming: response_timeout between reads (armBackend after
//     each read, spliceWatch; the client's connection closes, the body cut short);
//   - a backend that reads nothing of an upload: idle_timeout from the last time its queue shrank
//     (watchSlowBackend, 504); a tunnel: both sides silent for idle_timeout.
//
// Which of these runs on a connection is derived from its state in one place (deadline.go:
// clientTimeout, backendTimeout); state changes and progress call armClient or armBackend, and nothing
// else sets a deadline but the end of an exchange and a deadline that fired, which disarm it.
//
// # A failed write
//
// Stock gnet closes a connection whose write fails inside Write itself, so OnClose and all it triggers
// would run in the middle of a callback of this package. Our gnet (patch 14) only marks the connection
// and queues its close, which runs once the callback has returned: a connection never closes under the
// code using it, so no write needs a check after it for safety. The client is left mute (toClient):
// finishClient starts no next request on it. Writes to a backend are checked only where it changes the
// outcome: a request head or body that did not go out consumes nothing, so the backend's close may still
// retry the request (forwardBody).
//
// # Running out of descriptors
//
// Never fatal (SPEC 3.3, fds.go): our gnet copy pauses a loop's accepting (patch 11) and reports it to
// Server.OnAcceptError, which counts it and logs at most once a second; a dial that finds no descriptor
// answers 503 without marking the server (dialFailed). Serve returns an error whenever the loops end
// without Shutdown having stopped them, so that main exits non-zero (SPEC 1).
//
// # Handing the listeners to another process
//
// A binary upgrade (SIGUSR2, handover.go): Server.Inherit makes Serve take listening sockets from the
// process before (gnet patch 13's WithListenerFDs; fdListener for [tls] and [admin]); DupListeners gives
// them to the next one; HandOver lets go of them without taking them out of listening (ReleaseListeners,
// not StopAccepting) and drains, keeping a waiting client a second for the request it may be sending
// (loopState.drain). Ready closes at the first tick, when every loop runs on a bound listener.
//
// # Metrics and the access log
//
// Every exchange ends in endExchange (end.go), whatever ended it: a forwarded response (finishExchange),
// a cache hit (hitDone), a prebuilt answer (reject, failRequest, abortRequest), a request cut short by
// either side, a tunnel's end included (closeClient, dropClient, clientGone). Its response is recorded
// there once by loopState.record (stats.go); a prebuilt answer records itself as it is written
// (recordPrebuilt), before endExchange, since it knows its own sizes. record counts into
// the loop's own atomic counters (only that loop writes them; Server.Snapshot sums them for the admin
// listener) and formats the access log line into the loop's buffer, which one writer goroutine drains
// (accesslog.go). The loop reads the clock at most once per callback (loopState.clock). Nothing of this
// allocates or takes a lock per request.
//
// # Imports
//
// engine imports codec, cache, config, upstream, bufpool, tlsrec (TLS's record layer, a gnet Transform on
// each TLS client, tlsconn.go, and each TLS backend connection, upstreamtls.go) and admin (the admin
// listener it runs, which imports nothing of ours). Nothing imports engine but main.
package engine
