// Deadlines: which clock runs on a connection is derived from its state here, and only here (HAProxy's
// h1_refresh_timeout). A state change, or progress that restarts a wait, calls armClient or armBackend;
// the sweep (loop.go) fires what has passed. Nothing else sets a deadline. Disarming is done in place
// where a wait ends for good, which needs no derivation: a head parsed whole, a cache wait over, the start
// and the end of an exchange, a deadline that fired.

package engine

import "time"

// clientTimeout is how long cc may now wait for its peer (counted from the call): 0 when no clock of its
// own runs on it (a dial, a response awaited from the backend, whose clocks are the dialer's and the
// backend's). Between requests the loop's table decides (ls.lt: every request and every sweep bring it up
// to date after a reload); during one, the table the request was routed by. Loop only.
func (ls *loopState) clientTimeout(cc *clientConn) time.Duration {
	switch cc.state {
	case csHead:
		switch {
		case cc.headLen > 0:
			return 0 // a complete head, being handed on
		case cc.headTimer:
			return ls.lt.tbl.readHeaderTimeout // a first head, or a later one whose first byte came
		case ls.s.handedOver.Load():
			// Another process serves new connections: what is left of the grace this one keeps a
			// waiting client for the request it may be sending (loopState.drain, handover.go).
			return max(time.Duration(cc.idleSince+int64(handoverGrace)-ls.clock()), 1)
		}
		return ls.lt.tbl.idleTimeout // keep-alive, between requests
	case csClosing:
		return ls.lt.tbl.idleTimeout // the last bytes must drain
	case csCacheWait:
		return cacheLockTimeout
	case csCacheSend, csTunnel:
		return cc.lt.tbl.idleTimeout // a large hit written as the client drains; a silent tunnel
	case csForwarding:
		if !cc.reqDone {
			// A body that stops coming (nginx: client_body_timeout, 408), or a backend that stops
			// reading it while the client is held (proxy_send_timeout, 504).
			return cc.lt.tbl.idleTimeout
		}
		if be := cc.be; be != nil && (be.held || be.splicing) && cc.gc.OutboundBuffered() > 0 {
			return cc.lt.tbl.idleTimeout // a client that reads its response too slowly (nginx: send_timeout)
		}
	}
	return 0
}

// armClient restarts cc's clock: its deadline becomes now plus what its state allows. Loop only.
func (ls *loopState) armClient(cc *clientConn) {
	if t := ls.clientTimeout(cc); t > 0 {
		cc.deadline = ls.clock() + int64(t)
	} else {
		cc.deadline = 0
	}
}

// backendTimeout is how long be may now wait for its next bytes: response_timeout (SPEC 3.4) from the
// request sent to the response head, and between reads of the body (nginx: proxy_read_timeout), also
// while it is spliced; 0 while the request is still being sent (the client's clock runs), while be is held
// for a slow client (the client's clock runs), and outside an exchange. be.lt, not ls.lt: after a reload
// the request keeps the settings of the table it was routed by. Loop only.
func (ls *loopState) backendTimeout(be *backendConn) time.Duration {
	if be.state != bsActive || be.held {
		return 0
	}
	if be.splicing || be.headDone || (be.client != nil && be.client.reqDone) {
		return be.lt.tbl.groups[be.group].ResponseTimeout
	}
	return 0
}

// armBackend restarts be's clock, and keeps be on ls.backends, where the sweep looks, exactly while
// something there concerns it: a deadline, or a hold or a splice whose client's progress it watches.
// Loop only.
func (ls *loopState) armBackend(be *backendConn) {
	if t := ls.backendTimeout(be); t > 0 {
		be.deadline = ls.clock() + int64(t)
	} else {
		be.deadline = 0
	}
	if be.deadline != 0 || be.held || be.splicing {
		ls.backends.push(&be.listNode, be)
	} else {
		ls.backends.remove(&be.listNode)
	}
}
