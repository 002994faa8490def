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
// # Imports
//
// engine imports codec, config, upstream and bufpool. Nothing imports engine but main.
package engine
