package engine

// Backpressure (SPEC 3.3): one mechanism for every direction. A connection stops being read
// (Conn.PauseRead, our gnet patch) while more than half of io_buffer waits to be written to the
// connection its bytes go to, and is read again as soon as that queue is written out
// (Server.OnDrained). TCP flow control holds the sender back meanwhile; the paused connection's own
// queue keeps flushing, so both directions of an exchange can be held at once, and no byte is ever
// dropped. Half, because the read that crosses the line adds up to one more read buffer: what is
// queued stays near io_buffer.
//
//   - Responses: a backend is held while its client reads slowly (holdBackend).
//   - Uploads: a client is held while its backend reads its body slowly (holdClientForBackend).
//   - Pipelined requests, and a body that arrives while its backend is dialed: a client is held while
//     more than io_buffer of what it sent waits for the loop (holdClient), or while more than
//     io_buffer of responses waits for it (readHead).
//   - Tunnels: each side is held while its peer reads slowly (holdTunnel).
//   - Large cache hits are written io_buffer at a time, each time the client's queue is written out
//     (pumpHit).
//
// Large Content-Length response bodies are spliced instead (trySplice): gnet does not read the
// backend while the pipe to the client is full.
//
// The slow side's timeouts: a client that reads nothing of its response for idle_timeout, counted
// from the last time its queue shrank, is closed (watchSlowClient); a backend that reads nothing of an
// upload for idle_timeout, counted the same way, gets the client a 504 (watchSlowBackend).

// holdBackend stops reading be while more than half of io_buffer of its response waits for cc, and
// reports whether it did. clientDrained reads it again. Loop only.
func (ls *loopState) holdBackend(be *backendConn, cc *clientConn) bool {
	q := cc.gc.OutboundBuffered()
	if q <= ls.s.ioBuffer/2 {
		return false
	}
	_ = be.gc.PauseRead()
	if !be.held {
		be.held = true // the wait is the client's now: response_timeout is off
		be.clientQueued = q
		ls.armBackend(be) // on ls.backends: the sweep watches the client's progress
		ls.armClient(cc)
	}
	return true
}

// holdClientForBackend stops reading cc while more than half of io_buffer of its body waits for be.
// backendDrained reads it again. Loop only.
func (ls *loopState) holdClientForBackend(cc *clientConn, be *backendConn) {
	q := be.gc.OutboundBuffered()
	if q <= ls.s.ioBuffer/2 {
		return
	}
	_ = cc.gc.PauseRead()
	if !cc.held {
		cc.held = true
		cc.backendQueued = q
		ls.armClient(cc) // a backend that stops reading: 504
	}
}

// watchSlowClient runs from the sweep while be waits for its client (held or splicing): idle_timeout
// runs from the last time the client's queue shrank. It returns that queue's length.
func (ls *loopState) watchSlowClient(be *backendConn, cc *clientConn) int {
	q := cc.gc.OutboundBuffered()
	if q == 0 || cc.deadline == 0 || q < be.clientQueued {
		ls.armClient(cc)
	}
	be.clientQueued = q
	return q
}

// watchSlowBackend runs from the sweep while cc is held for its backend: idle_timeout runs from the
// last time the backend's queue shrank.
func (ls *loopState) watchSlowBackend(cc *clientConn) {
	be := cc.be
	if be == nil || be.gc == nil {
		return
	}
	if q := be.gc.OutboundBuffered(); q < cc.backendQueued {
		cc.backendQueued = q
		ls.armClient(cc)
	}
}

// clientDrained runs when everything queued for cc has been written (Server.OnDrained): whatever was
// held back for cc's sake is read again. Most drains are of a client between requests, which holds no
// exchange. Loop only.
func (ls *loopState) clientDrained(cc *clientConn) {
	if cc.gc == nil {
		return
	}
	switch cc.state {
	case csHead:
		// A pipelining client held back by readHead while its responses were queued: its next
		// request, then reading again unless what it sent already fills io_buffer.
		if cc.filled > 0 || cc.gc.InboundBuffered() > 0 {
			ls.readHead(cc)
		}
		ls.resumeClient(cc)
	case csCacheSend:
		if cc.exchange != nil && cc.hit != nil {
			ls.pumpHit(cc)
		}
	case csTunnel:
		if be := cc.be; cc.exchange != nil && be != nil && be.state == bsTunnel && be.gc != nil {
			_ = be.gc.ResumeRead()
		}
	case csForwarding:
		if be := cc.be; cc.exchange != nil && be != nil && be.held && be.state == bsActive {
			be.held = false
			ls.armClient(cc)
			ls.armBackend(be) // response_timeout again, from now
			_ = be.gc.ResumeRead()
			if be.gc.InboundBuffered() > 0 {
				ls.backendTraffic(be)
			}
		}
	}
}

// backendDrained runs when everything queued for be has been written (Server.OnDrained). Loop only.
func (ls *loopState) backendDrained(be *backendConn) {
	cc := be.client
	if cc == nil || cc.be != be || cc.gc == nil {
		return
	}
	switch {
	case be.state == bsTunnel && cc.state == csTunnel:
		_ = cc.gc.ResumeRead()
	case be.state == bsActive && cc.held:
		cc.held = false
		ls.armClient(cc) // the body's own idle clock again
		ls.resumeClient(cc)
		if cc.gc.InboundBuffered() > 0 {
			ls.clientTraffic(cc)
		}
	}
}

// capPipelined bounds what a client may send beyond the request being answered (the next pipelined
// requests and their bodies), which waits in gnet's buffer until the response is done. holdClient pauses
// reading past io_buffer; at most one more read arrives after the pause, so the close past 2 × io_buffer +
// header_buffer is a last bound that a paused client does not reach. Loop only.
func (ls *loopState) capPipelined(cc *clientConn) {
	ls.holdClient(cc)
	if cc.gc.InboundBuffered() <= 2*ls.s.ioBuffer+ls.s.headerBuffer {
		return
	}
	ls.s.log.Warn("client closed: it sent more than 2 x io_buffer + header_buffer ahead of the response in flight",
		"client", cc.ip.String(), "buffered", cc.gc.InboundBuffered())
	ls.dropClient(cc)
}

// holdClient stops reading cc while more than io_buffer of what it sent waits in gnet's buffer for the
// loop to get to it: further pipelined requests while one is answered, or a body while its backend is
// dialed (SPEC 2, io_buffer: the most bytes buffered before reading pauses). Our gnet copy can pause a
// connection's reads while its own queue keeps flushing (third_party/README.md); resumeClient undoes it
// once the loop has taken the bytes. Loop only.
func (ls *loopState) holdClient(cc *clientConn) {
	if cc.gc.InboundBuffered() > ls.s.ioBuffer {
		_ = cc.gc.PauseRead()
	}
}

// resumeClient reads cc again once at most io_buffer of its bytes wait in gnet's buffer (a no-op unless
// holdClient paused it). Loop only.
func (ls *loopState) resumeClient(cc *clientConn) {
	if cc.gc == nil || cc.state == csClosed || cc.gc.InboundBuffered() > ls.s.ioBuffer {
		return
	}
	if cc.state == csHead && cc.gc.OutboundBuffered() > ls.s.ioBuffer {
		return // held by readHead until its responses drain (Server.OnDrained)
	}
	_ = cc.gc.ResumeRead()
}
