package engine

import (
	"errors"
	"time"

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

// maxFreeRetries bounds the retries of a request after a pooled connection turned out closed by the
// backend while idle: those are not the server's fault and do not use up `retries`.
const maxFreeRetries = 8

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

func (be *backendConn) node() *listNode[backendConn] { return &be.listNode }

func (ls *loopState) attach(cc *clientConn, be *backendConn) {
	cc.be = be
	be.client = cc
}

// startExchange resets be for a new request. Loop only.
func (be *backendConn) startExchange() {
	be.gotBytes, be.headDone, be.dechunk, be.keepAlive, be.held = false, false, false, false, false
	be.interim = 0
	be.deadline = 0
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
	ls.awaitBody(be)
}

// awaitBody arms response_timeout from now, for the backend's next bytes: the response head after
// requestSent, and between reads of a response body (nginx: proxy_read_timeout), so that a backend that
// stops in the middle of a body does not hold its client forever; the client sees the body cut short and
// the connection closed (SPEC 3.4, backend closes mid-body). Called after each read that leaves the body
// unfinished; a held or spliced body is watched by the sweep instead.
func (ls *loopState) awaitBody(be *backendConn) {
	// be.lt, not ls.lt: after a reload the request keeps the settings of the table it was routed by.
	be.deadline = ls.clock() + int64(be.lt.tbl.groups[be.group].ResponseTimeout)
	listPush(&ls.backends, be)
}

func (ls *loopState) endCount(be *backendConn) {
	if be.counted {
		be.counted = false
		be.srv.End()
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
	short := ls.s.dialShortage(err) // SPEC 3.3: out of descriptors is the proxy's failure, not the server's
	if !short {
		be.srv.Fail(ls.clock())
		ls.s.log.Warn("upstream connect failed", "upstream", be.srv.Upstream, "server", be.srv.Name, "error", err)
	}
	if cc == nil || cc.be != be || cc.state != csConnecting {
		return
	}
	cc.be = nil
	if short {
		ls.failRequest(cc, 503)
		return
	}
	// Nothing was sent: any method may go to the next server (SPEC 3.4, refused or connect_timeout).
	ls.retry(cc, 502, false)
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

// poolOrClose returns an idle connection to its loop's pool, or closes it when the pool is full or
// belongs to a table a reload replaced.
func (ls *loopState) poolOrClose(be *backendConn) {
	listRemove(&ls.backends, be)
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
	if ls.s.dialer.Dial(ls.loop, be.srv.Addr, left, be, ls.onDialFail) != nil {
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
		ls.retry(cc, 502, false)
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

// closeBackend closes be; its OnClose will find it bsClosing and do nothing more.
func (ls *loopState) closeBackend(be *backendConn) {
	if be.state == bsIdle {
		be.lt.pools[be.group].Remove(be.srv.Index, be)
	}
	listRemove(&ls.backends, be)
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

// backendTraffic parses the response head and streams the body to the client.
func (ls *loopState) backendTraffic(be *backendConn) gnet.Action {
	switch be.state {
	case bsIdle:
		// Traefik's rule: an idle pooled connection that receives unsolicited bytes is broken.
		be.lt.pools[be.group].Remove(be.srv.Index, be)
		be.state = bsClosing
		return gnet.Close
	case bsActive:
	case bsTunnel:
		cc := be.client
		if cc == nil {
			return gnet.None
		}
		ls.tunnelCopy(be.gc, cc.gc, cc)
		ls.holdTunnel(be.gc, cc.gc)
		ls.capTunnel(cc, be)
		return gnet.None
	default:
		_, _ = be.gc.Discard(-1)
		return gnet.None
	}
	cc := be.client
	if cc == nil {
		ls.closeBackend(be)
		return gnet.None
	}
	for {
		data, _ := be.gc.Peek(-1)
		if len(data) == 0 {
			return gnet.None
		}
		be.gotBytes = true
		var head []byte
		consumed := 0
		whole := data // the head's own bytes while asIs
		asIs := false
		if !be.headDone {
			resp := &ls.resp
			n, err := codec.ParseResponse(data, resp)
			if err == codec.ErrNeedMore {
				if len(data) > ls.s.largeHeaderBuffer {
					ls.backendBroken(be, "response head larger than large_header_buffer")
				}
				return gnet.None
			}
			if err != nil {
				ls.backendBroken(be, responseHeadProblem(err))
				return gnet.None
			}
			if n > ls.s.largeHeaderBuffer {
				// The same bound whether the head came in one read or in many (SPEC 3.4).
				ls.backendBroken(be, "response head larger than large_header_buffer")
				return gnet.None
			}
			if resp.Status < 200 {
				if resp.Status == 101 {
					if !cc.upgrade || !cc.reqDone {
						ls.backendBroken(be, "101 to a request that asked for no upgrade")
						return gnet.None
					}
					head := codec.AppendProxyResponse(ls.headBuf[:0], resp, cc.minor, false, false, true)
					ls.headBuf = head[:0]
					if _, _ = cc.gc.Write(head); lost(cc, be) {
						return gnet.None
					}
					discard(be.gc, n)
					ls.startTunnel(cc, be)
					return gnet.None
				}
				// Interim responses (100, 102, 103, ...) go to HTTP/1.1 clients with their headers and
				// to no HTTP/1.0 client (RFC 9110 15.2). A handful per request is what real servers send;
				// past that the backend is flooding a client that may not read, and has failed.
				be.interim++
				if be.interim > maxInterim {
					ls.backendBroken(be, "more than 8 interim responses to one request")
					return gnet.None
				}
				if cc.minor == 1 {
					head := codec.AppendProxyResponse(ls.headBuf[:0], resp, 1, true, false, false)
					ls.headBuf = head[:0]
					if _, _ = cc.gc.Write(head); lost(cc, be) {
						return gnet.None
					}
				}
				discard(be.gc, n)
				continue
			}
			be.headDone = true
			be.deadline = 0
			listRemove(&ls.backends, be)
			be.body = resp.Body(cc.isHead && !cc.headAsGet)
			be.remaining = resp.ContentLength
			be.chunked.Reset()
			be.dechunk = be.body == codec.BodyChunked && cc.minor == 0
			// A response that has no body by its status or the request's method but declares one (a
			// 204 or 304 with a Content-Length, a HEAD answered with one) may be followed by body bytes
			// that arrive later, and would be read as the next request's response: such a connection
			// carries nothing more (SPEC 3.4).
			be.keepAlive = resp.KeepAlive() && be.body != codec.BodyUntilClose && cc.reqDone &&
				!(be.body == codec.BodyNone && declaresBody(resp))
			clientKeep := cc.keepAlive && cc.reqDone && !ls.s.draining.Load() &&
				be.body != codec.BodyUntilClose && !be.dechunk
			cc.closeAfterRes = !clientKeep
			if resp.Verbatim(cc.minor, clientKeep) && resp.Flags&codec.FlagHasDate != 0 && cc.cacheTag == "" {
				// Nothing to drop, merge or add: the head goes out as the backend wrote it, with the body
				// bytes that follow it in the same buffer, in one write and without a copy.
				head, asIs = data[:n], true
			} else {
				head = codec.AppendProxyResponse(ls.headBuf[:0], resp, cc.minor, clientKeep, be.dechunk, false)
				if resp.Flags&codec.FlagHasDate == 0 {
					// RFC 9110 6.6.1: a proxy with a clock adds the Date a backend left out.
					head = appendDate(head, ls.rs.date[:])
				}
				if cc.cacheTag != "" {
					head = appendXCache(head, cc.cacheTag)
				}
				ls.headBuf = head[:0]
			}
			if cc.cacheLeader {
				ls.startCapture(cc, be, resp)
			}
			cc.respStarted = true
			ls.noteResponse(cc, resp, len(head)) // status and sizes for the metrics and the access log
			consumed = n
			data = data[n:]
		}
		if be.dechunk {
			if head != nil {
				if _, _ = cc.gc.Write(head); lost(cc, be) {
					return gnet.None
				}
			}
			discard(be.gc, consumed)
			if ls.dechunkBody(be, cc) {
				ls.finishExchange(be, cc)
			} else if !lost(cc, be) {
				ls.holdBackend(be, cc)
			}
			return gnet.None
		}
		// k body bytes are consumed; data[:pass] of them go to the client as they came, then ls.trailers
		// (a chunked body's trailer section without the fields that must not travel in trailers).
		k, pass, done := 0, 0, false
		ls.trailers = ls.trailers[:0]
		switch be.body {
		case codec.BodyNone:
			done = true
		case codec.BodyLength:
			k = len(data)
			if int64(k) > be.remaining {
				k = int(be.remaining)
			}
			be.remaining -= int64(k)
			done = be.remaining == 0
			pass = k
		case codec.BodyChunked:
			var err error
			k, pass, _, ls.trailers, done, err = be.chunked.Forward(data, ls.trailers)
			if err != nil {
				if head != nil {
					cc.respStarted = false
				}
				ls.backendBroken(be, "malformed chunked response body")
				return gnet.None
			}
		case codec.BodyUntilClose:
			k = len(data)
			pass = k
			cc.bodySent += int64(k) // noteProgress cannot tell these from what is left
		}
		if cc.headAsGet {
			// A HEAD whose GET fills the cache: the client gets the head, the body goes to the capture.
			if head != nil {
				_, _ = cc.gc.Write(head)
			}
		} else {
			out := ls.iov[:0]
			if asIs {
				out = append(out, whole[:consumed+pass]) // the head and the body behind it, as they came
			} else {
				if head != nil {
					out = append(out, head)
				}
				if pass > 0 {
					out = append(out, data[:pass])
				}
			}
			if len(ls.trailers) > 0 {
				out = append(out, ls.trailers)
			}
			ls.send(cc.gc, out)
		}
		if lost(cc, be) {
			return gnet.None
		}
		if cc.capture != nil && k > 0 {
			cc.capture.Write(data[:k])
		}
		discard(be.gc, consumed+k)
		if done {
			ls.finishExchange(be, cc)
			return gnet.None
		}
		if ls.trySplice(be, cc) || ls.holdBackend(be, cc) || k == 0 {
			return gnet.None
		}
	}
}

// spliceMin is the least body still to come for which splicing pays: below it a read and a write cost
// less than setting a transfer up.
const spliceMin = 64 << 10

// trySplice hands the rest of a Content-Length body to gnet, which moves it from the backend's socket to
// the client's with splice(2), without copying it through the loop (Conn.SpliceTo). It applies when
// nothing is left unread in gnet and nothing is queued for the client (gnet refuses otherwise), the
// request has been sent whole (so the client is never held for its upload meanwhile), and no copy of
// the body is kept for the cache. The transfer ends in Server.OnSpliced.
func (ls *loopState) trySplice(be *backendConn, cc *clientConn) bool {
	if !ls.s.splice || be.body != codec.BodyLength || be.remaining < spliceMin || !cc.reqDone ||
		cc.capture != nil || cc.headAsGet || be.gc.InboundBuffered() > 0 || cc.gc.OutboundBuffered() > 0 {
		return false
	}
	if be.gc.SpliceTo(cc.gc, be.remaining) != nil {
		return false
	}
	be.splicing = true
	be.clientQueued, be.splicedSeen, be.deadline = 0, 0, 0
	ls.splices++
	listPush(&ls.backends, be) // the sweep watches the client's progress (spliceWatch)
	return true
}

// spliced runs when gnet has read the last byte of a spliced body from the backend; what the pipe still
// holds counts as queued for the client, and later writes to it go out behind those bytes.
func (ls *loopState) spliced(be *backendConn) {
	if !be.splicing {
		return
	}
	be.splicing = false
	listRemove(&ls.backends, be)
	cc := be.client
	if be.state != bsActive || cc == nil || cc.be != be {
		return
	}
	be.remaining = 0
	cc.deadline = 0
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
		be.deadline = ls.clock() + int64(be.lt.tbl.groups[be.group].ResponseTimeout)
	} else if ls.clock() >= be.deadline {
		ls.backendTimedOut(be)
	}
}

// dechunkBody forwards the payload of a chunked response without its framing (for HTTP/1.0 clients, who
// then see the end of the body as the close). It reports whether the body is complete.
func (ls *loopState) dechunkBody(be *backendConn, cc *clientConn) bool {
	for {
		data, _ := be.gc.Peek(-1)
		if len(data) == 0 {
			return false
		}
		n, piece, done, err := be.chunked.Next(data)
		if err != nil {
			ls.backendBroken(be, "malformed chunked response body")
			return false
		}
		if len(piece) > 0 {
			if _, _ = cc.gc.Write(piece); lost(cc, be) {
				return false
			}
		}
		discard(be.gc, n)
		if done {
			return true
		}
		if n == 0 {
			return false
		}
	}
}

// finishExchange completes a response: the backend connection goes back to the pool if it can carry
// another request, and the client goes on to its next request or closes.
func (ls *loopState) finishExchange(be *backendConn, cc *clientConn) {
	ls.noteProgress(cc, be)
	ls.record(cc, int(cc.status), cc.bodySent, int64(cc.respHead)+cc.bodySent)
	cc.be = nil
	ls.finishCapture(cc)
	if be.keepAlive && cc.reqDone && be.gc.InboundBuffered() == 0 {
		ls.poolOrClose(be)
	} else {
		ls.closeBackend(be)
	}
	if cc.closeAfterRes || !cc.reqDone {
		ls.closeClient(cc)
		return
	}
	ls.finishClient(cc)
}

// maxInterim is the most interim (1xx) responses relayed for one request before the backend is taken
// to be flooding: each one costs the client's queue bytes that no final response bounds.
const maxInterim = 8

// declaresBody reports whether a response head announces a body (a Content-Length other than 0, or a
// Transfer-Encoding).
func declaresBody(resp *codec.Response) bool {
	return resp.Flags&codec.FlagTransferEncoding != 0 ||
		(resp.Flags&codec.FlagContentLength != 0 && resp.ContentLength != 0)
}

// responseHeadProblem names what is wrong with a response head the codec refused, for the log.
func responseHeadProblem(err error) string {
	if errors.Is(err, codec.ErrTooManyHeaders) {
		return "response head with more than max_headers header lines"
	}
	return "malformed response head"
}

// backendBroken handles a response the proxy refuses: one malformed, too large or of the wrong shape.
// The backend connection is closed, and the client gets 502 if its response has not started, else a
// close (SPEC 3.4). The server is not marked down for it: it answered, and what it answered is the
// application's (a page with many headers, a bad chunk), which another server of the same application
// would answer the same; taking the server out would turn one bad response into 503s for every request
// of the application (nginx's proxy_next_upstream leaves invalid_header out by default too).
func (ls *loopState) backendBroken(be *backendConn, why string) {
	cc := be.client
	ls.s.log.Warn("upstream response refused", "upstream", be.srv.Upstream, "server", be.srv.Name, "reason", why)
	ls.noteProgress(cc, be)
	ls.closeBackend(be)
	if cc == nil {
		return
	}
	cc.be = nil
	ls.failRequest(cc, 502)
}

// backendTimedOut: no response head within response_timeout (SPEC 3.4: 504).
func (ls *loopState) backendTimedOut(be *backendConn) {
	cc := be.client
	be.srv.Fail(ls.clock())
	if be.headDone {
		ls.s.log.Warn("upstream timed out in the middle of a response body", "upstream", be.srv.Upstream, "server", be.srv.Name)
	} else {
		ls.s.log.Warn("upstream response timeout", "upstream", be.srv.Upstream, "server", be.srv.Name)
	}
	ls.closeBackend(be)
	if cc == nil {
		return
	}
	cc.be = nil
	ls.failRequest(cc, 504)
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
	listRemove(&ls.backends, be)
	ls.endCount(be)
	cc := be.client
	be.client = nil
	if cc == nil {
		return
	}
	cc.be = nil
	if !be.headDone {
		// Closed or reset before a complete response head (SPEC 3.4): idempotent requests go to the next
		// server, others get 502. A pooled connection that the backend had closed while idle is not the
		// server's fault and does not use up a retry.
		if be.reused && !be.gotBytes && cc.freeRetries < maxFreeRetries {
			cc.freeRetries++
			cc.attempts--
			cc.tried &^= 1 << uint(be.srv.Index)
		} else {
			be.srv.Fail(ls.clock())
		}
		ls.retry(cc, 502, true)
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

// startTunnel switches an upgraded exchange to byte passing (SPEC 3.1: Upgrade after a 101). The
// backend connection is spent: it is closed with the tunnel, never pooled. The tunnel lives until either
// side closes or both stay silent for idle_timeout.
func (ls *loopState) startTunnel(cc *clientConn, be *backendConn) {
	listRemove(&ls.backends, be)
	ls.endCount(be)
	be.deadline = 0
	be.headDone = true
	be.state = bsTunnel
	be.held = false
	cc.state = csTunnel
	cc.respStarted = true
	cc.status = 101 // recorded when the tunnel ends
	// Bytes the client sent after its request head (the first frames of the new protocol) go first.
	if cc.pos < cc.filled {
		_, _ = be.gc.Write(cc.buf()[cc.pos:cc.filled])
		cc.pos = cc.filled
	}
	ls.tunnelCopy(cc.gc, be.gc, cc)
	ls.tunnelCopy(be.gc, cc.gc, cc)
}

// capTunnel closes a tunnel whose queue grows past 8 × io_buffer in one direction anyway: holdTunnel
// pauses reading long before that, so this is a last bound, not the flow control. Loop only.
func (ls *loopState) capTunnel(cc *clientConn, be *backendConn) {
	if cc.state != csTunnel || be.state != bsTunnel {
		return
	}
	limit := 8 * ls.s.ioBuffer
	if cc.gc.OutboundBuffered() <= limit && be.gc.OutboundBuffered() <= limit {
		return
	}
	ls.s.log.Warn("tunnel closed: both ends send faster than they read",
		"client", cc.ip.String(), "upstream", be.srv.Upstream, "server", be.srv.Name)
	ls.dropClient(cc)
}

// tunnelCopy moves whatever from has buffered to to, and restarts the tunnel's idle clock.
func (ls *loopState) tunnelCopy(from, to gnet.Conn, cc *clientConn) {
	if in, _ := from.Peek(-1); len(in) > 0 {
		_, _ = to.Write(in)
		discard(from, len(in))
		if to == cc.gc {
			cc.bodySent += int64(len(in))
			ls.st.bytesOut.Add(uint64(len(in)))
		} else {
			ls.st.bytesIn.Add(uint64(len(in)))
		}
	}
	cc.deadline = ls.clock() + int64(ls.lt.tbl.idleTimeout)
}

// lost reports whether cc or be went away during the last Write: gnet closes a connection whose write
// fails inside the Write call itself, so OnClose (and everything it triggers: abandoning the backend, a
// retry on another server) has already run, and the caller must stop using what it holds.
func lost(cc *clientConn, be *backendConn) bool {
	return cc.state == csClosed || cc.be != be || be.state != bsActive
}
