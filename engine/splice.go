// Splicing: the rest of a large Content-Length response body moves from the backend's socket to the
// client's through a pipe (Conn.SpliceTo), not through the loop.

package engine

import "switchflow/codec"

// spliceMin is the least body still to come for which splicing pays: below it a read and a write cost
// less than setting a transfer up.
const spliceMin = 64 << 10

// trySplice hands the rest of a Content-Length body to gnet, which moves it from the backend's socket to
// the client's with splice(2), without copying it through the loop (Conn.SpliceTo). It applies when
// nothing is left unread in gnet and nothing is queued for the client (gnet refuses otherwise), the
// request has been sent whole (so the client is never held for its upload meanwhile), and no copy of
// the body is kept for the cache. A TLS backend's socket carries records, not the body: never spliced.
// The transfer ends in Server.OnSpliced.
func (ls *loopState) trySplice(be *backendConn, cc *clientConn) bool {
	if !ls.s.splice || be.srv.TLS() != nil || be.body != codec.BodyLength || be.remaining < spliceMin || !cc.reqDone ||
		cc.capture != nil || cc.headAsGet || be.gc.InboundBuffered() > 0 || cc.gc.OutboundBuffered() > 0 {
		return false
	}
	if be.gc.SpliceTo(cc.gc, be.remaining) != nil {
		return false
	}
	be.splicing = true
	be.clientQueued, be.splicedSeen = 0, 0
	ls.splices++
	ls.armBackend(be) // on ls.backends: the sweep watches the client's progress (spliceWatch)
	return true
}

// spliced runs when gnet has read the last byte of a spliced body from the backend; what the pipe still
// holds counts as queued for the client, and later writes to it go out behind those bytes.
func (ls *loopState) spliced(be *backendConn) {
	if !be.splicing {
		return
	}
	be.splicing = false
	ls.armBackend(be)
	cc := be.client
	if be.state != bsActive || cc == nil || cc.be != be {
		return
	}
	be.remaining = 0
	ls.finishExchange(be, cc)
}

// spliceWatch runs from the sweep while a body is spliced: a client that stops reading altogether must
// not hold the pair forever (watchSlowClient).
func (ls *loopState) spliceWatch(be *backendConn) {
	cc := be.client
	if cc == nil {
		return
	}
	q := ls.watchSlowClient(be, cc)
	// The backend's side: response_timeout runs from the last spliced byte while the client keeps up
	// (with bytes queued for the client, the wait is the client's, timed above).
	if sent := be.gc.SplicedBytes(); sent != be.splicedSeen || q > 0 || be.deadline == 0 {
		be.splicedSeen = sent
		ls.armBackend(be)
	} else if ls.clock() >= be.deadline {
		ls.backendTimedOut(be)
	}
}
