package engine

import (
	"github.com/panjf2000/gnet/v2"

	"switchflow/codec"
	"switchflow/upstream"
)

// backendState is where a backend connection stands.
type backendState uint8

const (
	bsDialing backendState = iota // a dialer worker is connecting; gc is nil
	bsActive                      // carrying a client's request and response
	bsIdle                        // in its loop's idle pool
	bsTunnel                      // carrying an upgraded connection's bytes; never pooled
	bsClosing                     // Close requested or OnClose ran; ignore everything
)

// backendConn is one backend connection (loop only), always on the loop of the client it serves.
type backendConn struct {
	listNode[backendConn]
	gc     gnet.Conn
	ls     *loopState
	lt     *loopTable // the table whose idle pool it may return to
	group  int
	srv    *upstream.Server
	state  backendState
	client *clientConn
	reused bool // taken from the idle pool for this request
	held   bool // not read until its client's queue is written out (flow.go); on ls.backends

	statOpen     bool  // counted in its server's open connections (stats.go)
	deadline     int64 // response_timeout (for the head, then between reads of the body), monotonic ns; 0 = none
	dialIdx      int   // index in loopState.dialing while bsDialing; -1 when not there
	dialDeadline int64 // connect_timeout for the request that asked for the dial, monotonic ns
	queued       bool  // bsDialing but not handed to the dialer yet: maxDials are in flight to srv
	dialed       bool  // handed to the dialer and not answered yet: counted in lt.dials
	clientQueued int   // while held or splicing: the client's queue at the last progress seen
	counted      bool  // srv.Begin was called for the exchange in flight
	splicing     bool  // gnet splices the rest of the body to the client (Conn.SpliceTo); on ls.backends
	splicedSeen  int64 // while splicing: SplicedBytes at the last progress the sweep saw

	// The response in flight.
	gotBytes  bool
	headDone  bool
	interim   uint8 // interim (1xx) responses relayed for this request
	body      codec.BodyKind
	remaining int64
	chunked   codec.ChunkedReader
	dechunk   bool // chunked response to an HTTP/1.0 client: forward the payload only, then close
	keepAlive bool // the connection may carry another request after this response
}

func (ls *loopState) attach(cc *clientConn, be *backendConn) {
	cc.be = be
	be.client = cc
}

// startExchange resets be for a new request. Loop only.
func (be *backendConn) startExchange() {
	be.gotBytes, be.headDone, be.dechunk, be.keepAlive, be.held = false, false, false, false, false
	be.interim = 0
	be.deadline = 0 // not on ls.backends: the end of its last exchange took it off (poolOrClose)
	if !be.counted {
		be.counted = true
		be.srv.Begin()
	}
}

// requestSent arms response_timeout: SPEC 3.4 counts it from the request sent to the response head.
func (ls *loopState) requestSent(be *backendConn) {
	if be.headDone || be.state != bsActive {
		return
	}
	ls.armBackend(be)
}

func (ls *loopState) endCount(be *backendConn) {
	if be.counted {
		be.counted = false
		be.srv.End()
	}
}

// poolOrClose returns an idle connection to its loop's pool, or closes it when the pool is full or
// belongs to a table a reload replaced.
func (ls *loopState) poolOrClose(be *backendConn) {
	ls.backends.remove(&be.listNode)
	ls.endCount(be)
	be.client = nil
	be.deadline = 0
	if be.lt == ls.lt { // a reload replaced the table: its servers may be gone
		if ls.handOver(be) {
			return
		}
		if be.lt.pools[be.group].Put(be.srv.Index, be) {
			be.state = bsIdle
			return
		}
	}
	ls.closeBackend(be)
}

// closeBackend closes be; its OnClose will find it bsClosing and do nothing more.
func (ls *loopState) closeBackend(be *backendConn) {
	if be.state == bsIdle {
		be.lt.pools[be.group].Remove(be.srv.Index, be)
	}
	ls.backends.remove(&be.listNode)
	ls.endCount(be)
	be.client = nil
	be.splicing = false
	switch be.state {
	case bsDialing:
		// No gnet conn yet: OnOpen finds the client gone and closes it, or the failure callback fires;
		// a queued dial was never started, so nothing will answer it.
		if be.queued {
			ls.dropQueued(be)
		}
		be.state = bsClosing
		return
	}
	be.state = bsClosing
	if be.gc != nil {
		_ = be.gc.Close()
	}
}

// abandonBackend is called when the client of be is gone or gave up on the exchange.
func (ls *loopState) abandonBackend(be *backendConn) {
	if be.state == bsDialing {
		if be.queued {
			ls.dropQueued(be) // never started: nothing will answer it
			return
		}
		be.client = nil // OnOpen will pool it, or dialFailed will drop it
		return
	}
	ls.closeBackend(be)
}

// backendClosed runs from OnClose of a backend connection.
func (ls *loopState) backendClosed(be *backendConn, err error) {
	ls.backendGone(be)
	state := be.state
	be.state = bsClosing
	switch state {
	case bsIdle:
		be.lt.pools[be.group].Remove(be.srv.Index, be)
		return
	case bsTunnel:
		if cc := be.client; cc != nil {
			be.client, cc.be = nil, nil
			ls.closeClient(cc)
		}
		return
	case bsActive:
	default:
		return
	}
	ls.backends.remove(&be.listNode)
	ls.endCount(be)
	cc := be.client
	be.client = nil
	if cc == nil {
		return
	}
	cc.be = nil
	if !be.headDone {
		ls.tlsAlertBeforeHead(be, err) // upstreamtls.go
		// Closed or reset before a complete response head (SPEC 3.4): idempotent requests go to the next
		// server, others get 502. A pooled connection that the backend had closed while idle is not the
		// server's fault and does not use up a retry.
		f := failClosed
		if be.reused && !be.gotBytes && cc.freeRetries < maxFreeRetries {
			f = failPooledClosed
		}
		ls.backendFailed(cc, be.srv, f, true)
		return
	}
	if be.body == codec.BodyUntilClose {
		// The close is the end of this body: the response is complete.
		cc.closeAfterRes = true
	}
	ls.noteProgress(cc, be) // closeClient records the response
	// Otherwise the backend died mid-body: closing the client shows a truncated body, never a wrong one.
	ls.closeClient(cc)
}
