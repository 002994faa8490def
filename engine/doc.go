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
// swapped whole on SIGHUP), the header slab pool (taken once per connection), and the servers' health
// (atomics). gnet's ticker goroutine only schedules each loop's sweep, which enforces every timeout and
// refreshes the prebuilt responses' Date once a second.
//
// # Buffers and lifetimes
//
// A request head is copied from gnet's buffer into the client's header slab (bufpool) and parsed there,
// so its views stay valid until the response completes: a retry rebuilds the head from the slab. A
// response head is parsed in place in gnet's buffer and rewritten into the loop's scratch buffer within
// the same callback. Body bytes are never copied by SwitchFlow: they go from one connection's read buffer
// to the other's Write (gnet copies only what the socket does not take at once).
//
// # Backpressure
//
// gnet (v2.9, v2.10) cannot stop reading a socket (its issues #712, #722): it reads into an unbounded
// buffer while the other side waits. SwitchFlow parks instead, within gnet's public API, rather than
// patching gnet: only slow peers pay for it and the fast path is untouched. When more than io_buffer
// bytes wait for a client, its backend's socket is duplicated (Conn.Dup) and gnet's conn for it closed
// from its own OnTraffic (gnet's close does not shut the socket down); nobody reads the duplicate, so TCP
// flow control holds the backend back. The loop's sweep hands the socket back with EventLoop.Enroll once
// the client has drained to half of io_buffer, and OnOpen resumes the exchange where it stood. A client
// that leaves while its backend is parked closes the duplicate. The upload direction is not parked yet.
//
// # Writes can close
//
// gnet closes a connection whose write fails inside Write itself, so OnClose and all it triggers may run
// in the middle of a callback of this package. Every Write on the request and response paths is followed
// by lost(cc, be) before the loop touches either connection again.
//
// # Imports
//
// engine imports codec, cache, config, upstream and bufpool. Nothing imports engine but main.
package engine
