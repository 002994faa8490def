// Dialing: a request picks a server and gets a pooled connection or a new one from the dialer workers;
// a freed connection serves a waiting request first; a failed dial retries or answers.

package engine

import (
	"errors"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/upstream"
)

// connect sends the request to the next server: an idle pooled connection if there is one, else a dial.
func (ls *loopState) connect(cc *clientConn) {
	lt := cc.lt
	g := lt.tbl.groups[cc.route.group]
	srv := lt.pickers[cc.route.group].PickKey(ls.clock(), cc.tried, cc.ipHash, cc.keyHash)
	if srv == nil {
		if cc.attempts == 0 {
			ls.failRequest(cc, 503)
		} else {
			ls.failRequest(cc, 502)
		}
		return
	}
	cc.tried |= 1 << uint(srv.Index)
	cc.attempts++
	cc.srv = srv
	if be, ok := lt.pools[cc.route.group].Get(srv.Index); ok {
		be.state = bsActive
		be.reused = true
		ls.attach(cc, be)
		ls.sendHead(cc, be)
		return
	}
	ls.keepHead(cc) // the head goes out in a later callback, when a connection is dialed or freed
	be := &backendConn{ls: ls, lt: lt, group: cc.route.group, srv: srv, state: bsDialing, client: cc}
	cc.be = be
	cc.state = csConnecting
	ls.armClient(cc) // the dial's clock runs instead
	be.dialDeadline = ls.clock() + int64(g.ConnectTimeout)
	ls.dialStarted(be)
	if lt.dials[cc.route.group][srv.Index] >= maxDials {
		be.queued = true // a connection freed meanwhile (handOver) or the next dial slot serves it
		return
	}
	if !ls.startDial(be) {
		ls.notDialing(be)
		cc.be = nil
		ls.failRequest(cc, 502)
	}
}

// backendOpened runs in OnOpen of a dialed connection. The client may have gone, or given up on this
// dial, while it was being made: then the fresh connection is pooled for the next request.
func (ls *loopState) backendOpened(be *backendConn, c gnet.Conn) {
	ls.notDialing(be)
	ls.dialDone(be)
	ls.backendOpenedStat(be)
	be.gc = c
	if be.state == bsClosing {
		_ = c.Close() // given up while it was dialed; OnClose finds it closing
		return
	}
	cc := be.client
	// The connection exists from here on: bsDialing would make closeBackend leave it open.
	be.state = bsActive
	if cc == nil || cc.be != be || cc.state != csConnecting {
		be.client = nil
		ls.poolOrClose(be)
		return
	}
	ls.sendHead(cc, be)
}

// dialFailed runs on the loop when a dial failed or timed out.
func (ls *loopState) dialFailed(ctx any, err error) {
	be := ctx.(*backendConn)
	ls.notDialing(be)
	ls.dialDone(be)
	be.state = bsClosing
	cc := be.client
	be.client = nil
	f := failConnect
	var hs *upstream.HandshakeError
	switch {
	case ls.s.dialShortage(err):
		f = failNoDescriptor // SPEC 3.3: out of descriptors is the proxy's failure, not the server's
	case errors.As(err, &hs):
		f = failTLSHandshake
		ls.s.log.Warn("upstream tls handshake failed", "upstream", be.srv.Upstream, "server", be.srv.Name,
			"server_name", be.srv.TLS().ServerName, "reason", hs.Reason, "error", hs.Err)
	default:
		ls.s.log.Warn("upstream connect failed", "upstream", be.srv.Upstream, "server", be.srv.Name, "error", err)
	}
	if cc == nil || cc.be != be || cc.state != csConnecting {
		cc = nil // its client gave up on this dial
	} else {
		cc.be = nil
	}
	// Nothing was sent: any method may go to the next server (SPEC 3.4, refused or connect_timeout).
	ls.backendFailed(cc, be.srv, f, false)
}

// retry sends cc's request to the next server if retries allow and the request can be replayed, else
// answers status. sent says whether the request was (partly) written to the failed server.
func (ls *loopState) retry(cc *clientConn, status int, sent bool) {
	g := cc.lt.tbl.groups[cc.route.group]
	if cc.attempts > g.Retries || cc.respStarted || cc.bodyFromConn || (sent && !cc.idempotent) {
		ls.failRequest(cc, status)
		return
	}
	// The head and any body bytes are still in the slab: rewind to replay them.
	cc.pos = cc.headLen
	cc.reqDone = false
	cc.reqSeen = 0
	cc.reqRemaining = max(cc.reqLength, 0)
	cc.chunked.Reset()
	cc.state = csConnecting
	ls.connect(cc)
}

// handOver gives a connection that just became free to a client waiting for a dial to the same server
// (the list is in dial order but for swap-removals, so usually the one waiting longest), instead of
// pooling it (or, with the pool full, closing it) while that client waits. Under more concurrency than keepalive, this is what keeps connection churn from showing in
// latency: a freed connection serves a waiting request at once. The dial goes on and its connection
// joins the pool, or serves the next waiter, when it opens.
func (ls *loopState) handOver(be *backendConn) bool {
	for _, d := range ls.dialing {
		cc := d.client
		if d.srv != be.srv || cc == nil || cc.be != d || cc.state != csConnecting {
			continue
		}
		d.client = nil
		if d.queued {
			ls.dropQueued(d)
		}
		be.state = bsActive
		be.reused = true
		ls.attach(cc, be)
		ls.sendHead(cc, be)
		return true
	}
	return false
}

// maxDials bounds the dials in flight from one loop to one server. A burst of clients beyond the pool
// (keepalive) would otherwise ask for a dial each: on a busy loop the dialer falls behind, dials wait in
// its queue past connect_timeout, and the server is marked down for what is the proxy's own backlog. Past
// the bound a request waits (queued) for a connection that a finished response frees (handOver) or for
// the next dial slot, within the same connect_timeout.
const maxDials = 32

// startDial hands be to the dialer with what is left of its connect_timeout. It reports false when the
// dialer refuses (its queue full or closed); be is then the caller's to drop.
func (ls *loopState) startDial(be *backendConn) bool {
	left := time.Duration(be.dialDeadline - ls.clock())
	if left < time.Millisecond {
		left = time.Millisecond
	}
	if ls.s.dialer.Dial(ls.loop, be.srv.Addr, be.srv.TLS(), left, be, ls.onDialFail) != nil {
		return false
	}
	be.queued, be.dialed = false, true
	be.lt.dials[be.group][be.srv.Index]++
	return true
}

// dialDone frees be's dial slot and starts the oldest queued dial to the same server whose client still
// waits; queued entries whose client went away are dropped on the way.
func (ls *loopState) dialDone(be *backendConn) {
	if !be.dialed {
		return
	}
	be.dialed = false
	be.lt.dials[be.group][be.srv.Index]--
	for i := 0; i < len(ls.dialing); {
		d := ls.dialing[i]
		if !d.queued || d.srv != be.srv {
			i++
			continue
		}
		if cc := d.client; cc == nil || cc.be != d || cc.state != csConnecting {
			ls.dropQueued(d)
			continue // dropQueued moved the last entry to i
		}
		if !ls.startDial(d) {
			cc := d.client
			ls.dropQueued(d)
			cc.be = nil
			ls.failRequest(cc, 502)
		}
		return
	}
}

// dropQueued forgets a queued dial that was never started.
func (ls *loopState) dropQueued(d *backendConn) {
	ls.notDialing(d)
	d.queued = false
	d.client = nil
	d.state = bsClosing
}

// queuedTimeouts runs from the sweep: a request whose dial is still queued at its connect_timeout gets
// what a connect timeout gets (the next server, else 502), but its server is not blamed: the wait was the
// proxy's. Entries whose client went away are dropped.
func (ls *loopState) queuedTimeouts() {
	for i := len(ls.dialing) - 1; i >= 0; i-- {
		if i >= len(ls.dialing) {
			continue
		}
		d := ls.dialing[i]
		if !d.queued {
			continue
		}
		cc := d.client
		if cc == nil || cc.be != d || cc.state != csConnecting {
			ls.dropQueued(d)
			continue
		}
		if ls.clock() < d.dialDeadline {
			continue
		}
		ls.dropQueued(d)
		cc.be = nil
		ls.backendFailed(cc, d.srv, failDialQueued, false)
	}
}

// dialStarted and notDialing keep loopState.dialing, the dials in flight, for handOver.
func (ls *loopState) dialStarted(be *backendConn) {
	be.dialIdx = len(ls.dialing)
	ls.dialing = append(ls.dialing, be)
}

func (ls *loopState) notDialing(be *backendConn) {
	i := be.dialIdx
	if i < 0 || i >= len(ls.dialing) || ls.dialing[i] != be {
		return
	}
	last := len(ls.dialing) - 1
	ls.dialing[i] = ls.dialing[last]
	ls.dialing[i].dialIdx = i
	ls.dialing[last] = nil
	ls.dialing = ls.dialing[:last]
	be.dialIdx = -1
}

// maxFreeRetries bounds the retries of a request after a pooled connection turned out closed by the
// backend while idle: those are not the server's fault and do not use up `retries`.
const maxFreeRetries = 8
