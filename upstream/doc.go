// Package upstream owns the backend side of SwitchFlow: the servers of each upstream group with their
// passive health (max_fails within fail_timeout) and active health (the Checker of health.go), the
// balancing policies, the per-loop pools of idle keep-alive backend connections, and the dialer that opens
// new backend connections onto the event loop of the client that needs them.
//
// Goroutines: a Group and its Servers are shared by every loop; their health state is atomic. A Picker and
// an IdlePool belong to one event loop and are used only from it ("loop only"). The Dialer runs a fixed
// pool of goroutines, sized at start, that dial with connect_timeout and hand the socket to the loop with
// gnet's EventLoop.Enroll; no goroutine is started per request or per connection. For an HTTPS server
// the worker also runs the TLS handshake and hands the loop the connection's record layer (tlsrec) with
// the socket (tls.go). A Checker runs one
// goroutine per group with health checks, from StartChecker to Stop; it only writes the servers' atomics.
//
// upstream may import codec, bufpool and tlsrec; it must not import engine or config, and nothing in
// it blocks an event loop.
package upstream
