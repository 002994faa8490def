// Package tlsrec owns TLS's record layer on an event loop: a *tls.Conn (the standard library's, nothing
// forked) whose handshake runs over the real socket on a worker goroutine, and whose records are then
// decrypted and encrypted in memory on the connection's event loop, as gnet's Transform
// (Conn.SetTransform, gnet patch 0012). No goroutine and no system call of its own once the handshake is
// over: the loop reads the socket, Inbound turns the bytes into plaintext for OnTraffic, Outbound turns
// the handler's writes into records the loop writes.
//
// The API, for a server (a client is the same with Client, its handshake in a dialer worker):
//
//	rc := tlsrec.Server(rawConn, conf)        // worker goroutine: rawConn a *net.TCPConn, in blocking mode
//	_ = rawConn.SetDeadline(handshakeEnd)     // the handshake's time limit is the socket's deadline
//	err := rc.Handshake(ctx)                  // blocking, over rawConn; never on an event loop
//	rc.Detach()                               // from now on rc never touches rawConn
//	engine.Register(gnet.NewNetConnContext(ctx, rawConn))  // gnet dups the socket onto a loop
//	// OnOpen, on the loop, before the connection's first byte either way:
//	rc.Attach(loopBuffers)                    // the loop's shared scratch (*tlsrec.Buffers), or nil
//	_ = c.SetTransform(rc)                    // gnet.Transform: Inbound, Outbound, Closing
//
// From SetTransform on, Peek, Next, Discard and InboundBuffered see plaintext, and Write, Writev and
// AsyncWrite(v) take plaintext; bytes crypto/tls read past the handshake's end (a request sent right
// behind Finished) come out in the Inbound(nil) gnet runs after OnOpen. TLS 1.3 post-handshake
// messages (KeyUpdate, tickets) are handled inside Inbound, its reply returned for the loop to write;
// a close_notify ends Inbound with io.EOF; Closing returns our close_notify.
//
// How it works: the tls.Conn's net.Conn is a transport that forwards to the socket until Detach, and
// after it reads from the bytes Inbound was given (crypto/tls copies them into its own record buffer,
// where a partial record waits for the rest) and returns a temporary net.Error when it holds none:
// crypto/tls keeps a read error only when it is not a temporary net.Error, so Read can be called again
// once more bytes arrive. Its writes append to the loop's ciphertext buffer, which Outbound returns.
//
// Memory: the scratch buffers (plaintext out of Inbound, the records out of Outbound, the joined
// slices of a Writev) are per loop (Buffers), shared by every connection on it, since gnet copies
// what it keeps of them before the next call. What one connection holds between calls is crypto/tls's
// own: its Conn and the input record buffer (a bytes.Buffer that grows to the largest record read plus
// 512 bytes, about 17 KiB once a full 16 KiB record came, and keeps that size). Output records are built
// in crypto/tls's shared pool.
//
// Allocations: none of ours per record once the loop's buffers have grown; crypto/tls allocates 16
// bytes for each record it reads (readFromUntil's reader escapes), so a keep-alive request costs one.
// CPU: a 13-byte keep-alive exchange costs both sides together about 3 µs (BenchmarkRecords).
//
// tlsrec imports only the standard library; gnet's Transform is satisfied structurally (the engine
// asserts it at compile time). Loop only, after Detach: one connection's methods are never called
// concurrently.
package tlsrec
