// The end of an exchange. endExchange is the one function that ends one, whatever ended it. Around it:
// the proxy's own answers instead of the backend's (reject, failRequest, abortRequest), a response
// completed (finishExchange; hitDone in cache.go), a backend that failed it (backendBroken,
// backendTimedOut; the failure table is failure.go), and the client's own end (closeClient, dropClient,
// clientGone in client.go).

package engine

import (
	"errors"
	"switchflow/codec"
)

// clientNext is what becomes of the client when its exchange ends.
type clientNext uint8

const (
	nextRequest  clientNext = iota // a kept-alive client goes on to its next (pipelined) request
	closeFlushed                   // closed once what is queued for it is written
	closeNow                       // closed at once, its queue dropped
	alreadyGone                    // its OnClose runs: the connection is closed already
)

// endExchange ends cc's exchange, if it has one, then deals with the client as next says. The response is
// recorded once (the metrics, and the access log with its termination cause): the status, head and body
// bytes the exchange says went out, or 499 when nothing did. What the request held in the micro-cache is
// settled: a complete response fills it, anything else lets its waiters go to the backend. The backend
// connection goes back to the pool when it delivered the whole response and may carry another, and is
// closed otherwise. Running it again for the same exchange does nothing more. Loop only.
func (ls *loopState) endExchange(cc *clientConn, complete bool, next clientNext) {
	if cc.exchange != nil {
		cc.hit = nil
		be := cc.be
		cc.be = nil
		ls.noteProgress(cc, be)
		ls.recordExchange(cc)
		if complete {
			ls.finishCapture(cc)
		} else {
			ls.cacheForget(cc)
		}
		if be != nil {
			if complete && be.keepAlive && cc.reqDone && be.gc.InboundBuffered() == 0 {
				ls.poolOrClose(be)
			} else {
				ls.abandonBackend(be)
			}
		}
	}
	switch next {
	case nextRequest:
		ls.finishClient(cc)
	case closeFlushed:
		if cc.state == csClosed || cc.state == csClosing {
			return
		}
		cc.state = csClosing
		ls.armClient(cc)
		if cc.gc.OutboundBuffered() == 0 {
			_ = cc.gc.Close()
		}
		// Otherwise the sweep closes it once gnet has flushed the buffer, or at the deadline.
	case closeNow:
		if cc.state != csClosed {
			cc.state = csClosing
			_ = cc.gc.Close()
		}
	}
}

// reject answers a request the proxy refuses itself, with the prebuilt response, and closes.
func (ls *loopState) reject(cc *clientConn, status int) {
	b := ls.rs.get(status, false, cc.headRequest())
	ls.recordPrebuilt(cc, status, b, false)
	cc.write(b)
	ls.endExchange(cc, false, closeFlushed)
}

// failRequest answers a request with a prebuilt response, without (or instead of) the backend's. The
// connection stays open only for a request without a body, so that an unread body is never parsed as the
// next request; otherwise the client is closed.
func (ls *loopState) failRequest(cc *clientConn, status int) {
	if cc.respStarted {
		ls.endExchange(cc, false, closeFlushed)
		return
	}
	keep := !cc.bodyFromConn && cc.reqBody == codec.BodyNone && cc.keepAlive && !ls.s.draining.Load()
	b := ls.rs.get(status, keep, cc.headRequest())
	ls.recordPrebuilt(cc, status, b, keep)
	cc.write(b)
	next := closeFlushed
	if keep {
		next = nextRequest
	}
	ls.endExchange(cc, false, next)
}

// abortRequest gives up on a request whose body turned out bad: the backend connection is closed (it has
// a partial request), and the client gets status, unless its response began, and a close.
func (ls *loopState) abortRequest(cc *clientConn, status int) {
	if !cc.respStarted {
		b := ls.rs.get(status, false, cc.headRequest())
		ls.recordPrebuilt(cc, status, b, false)
		cc.write(b)
	}
	ls.endExchange(cc, false, closeFlushed)
}

// finishExchange completes a response forwarded from be: be goes back to the pool if it can carry another
// request, and the client goes on to its next request or closes.
func (ls *loopState) finishExchange(be *backendConn, cc *clientConn) {
	next := nextRequest
	if cc.closeAfterRes || !cc.reqDone {
		next = closeFlushed
	}
	ls.endExchange(cc, true, next)
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
	if cc != nil {
		cc.be = nil
	}
	ls.backendFailed(cc, be.srv, failRefused, true)
}

// backendTimedOut: no response head within response_timeout (SPEC 3.4: 504).
func (ls *loopState) backendTimedOut(be *backendConn) {
	cc := be.client
	f := failTimeout
	if be.headDone {
		f = failBodyTimeout
		ls.s.log.Warn("upstream timed out in the middle of a response body", "upstream", be.srv.Upstream, "server", be.srv.Name)
	} else {
		ls.s.log.Warn("upstream response timeout", "upstream", be.srv.Upstream, "server", be.srv.Name)
	}
	ls.closeBackend(be)
	if cc != nil {
		cc.be = nil
	}
	ls.backendFailed(cc, be.srv, f, true)
}

// responseHeadProblem names what is wrong with a response head the codec refused, for the log.
func responseHeadProblem(err error) string {
	if errors.Is(err, codec.ErrTooManyHeaders) {
		return "response head with more than max_headers header lines"
	}
	return "malformed response head"
}
