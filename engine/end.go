// The end of an exchange: the proxy's own answers instead of the backend's (reject, failRequest,
// abortRequest), a response completed (finishExchange), and a backend that failed it (backendBroken,
// backendTimedOut).

package engine

import (
	"errors"
	"switchflow/codec"
)

// reject answers a request the proxy refuses itself, with the prebuilt response, and closes.
func (ls *loopState) reject(cc *clientConn, status int) {
	b := ls.rs.get(status, false, cc.headRequest())
	ls.recordPrebuilt(cc, status, b, false)
	cc.write(b)
	ls.closeClient(cc)
}

// failRequest answers a request with a prebuilt response, without (or instead of) the backend's. The
// connection stays open only for a request without a body, so that an unread body is never parsed as the
// next request; otherwise the client is closed.
func (ls *loopState) failRequest(cc *clientConn, status int) {
	if cc.respStarted {
		ls.closeClient(cc)
		return
	}
	keep := !cc.bodyFromConn && cc.reqBody == codec.BodyNone && cc.keepAlive && !ls.s.draining.Load()
	b := ls.rs.get(status, keep, cc.headRequest())
	ls.recordPrebuilt(cc, status, b, keep)
	cc.write(b)
	if keep {
		ls.finishClient(cc)
		return
	}
	ls.closeClient(cc)
}

// abortRequest gives up on a request whose body turned out bad: the backend connection is closed (it has
// a partial request), and the client gets status and a close.
func (ls *loopState) abortRequest(cc *clientConn, status int) {
	if be := cc.be; be != nil {
		cc.be = nil
		ls.abandonBackend(be)
	}
	if !cc.respStarted {
		b := ls.rs.get(status, false, cc.headRequest())
		ls.recordPrebuilt(cc, status, b, false)
		cc.write(b)
	}
	ls.closeClient(cc)
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
