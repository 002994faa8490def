// The request path: a head read into the slab and parsed, routed, and sent to a backend with the
// body bytes behind it (the body's own path is reqbody.go).

package engine

import (
	"errors"
	"switchflow/codec"
	"switchflow/upstream"
)

// readHead moves bytes into the slab and parses the head, rescanning the bounded slab on each read. In
// a large slab it parses only once the head's end may have arrived: rescanning up to 64 KiB on every
// read of a head sent a byte at a time would cost a connection seconds of CPU.
func (ls *loopState) readHead(cc *clientConn) {
	cc.inReadHead = true
	defer func() { cc.inReadHead = false }()
	for cc.state == csHead {
		before := cc.filled
		if cc.gc.OutboundBuffered() > ls.s.ioBuffer {
			// SPEC 3.3: a client that pipelines and does not read is not read further once io_buffer
			// of responses waits for it; Server.OnDrained takes up its next request.
			_ = cc.gc.PauseRead()
			return
		}
		if cc.filled < len(cc.buf()) {
			if in, _ := cc.gc.Peek(-1); len(in) > 0 {
				n := copy(cc.buf()[cc.filled:], in)
				cc.slabDirty = true
				discard(cc.gc, n)
				cc.filled += n
				ls.st.bytesIn.Add(uint64(n))
			}
		}
		if cc.filled == 0 {
			return
		}
		started := false
		if !cc.headTimer && requestStarted(cc.buf()[:cc.filled]) {
			// The first byte of a request on a kept-alive connection: read_header_timeout from now on.
			// Empty lines before it (skipped by the parser, RFC 9112 2.2) leave the idle clock running;
			// they still fill the slab, so a flood of them ends in 431. The clock is armed only if the
			// head is not whole in this read: a whole one stops it at once.
			cc.headTimer = true
			started = true
		}
		if cc.large != nil && cc.filled < len(cc.buf()) && !headEndIn(cc.buf()[:cc.filled], before) {
			if started {
				ls.armClient(cc)
			}
			return
		}
		n, err := ls.parseHead(cc, cc.buf()[:cc.filled])
		if err != nil && started {
			ls.armClient(cc)
		}
		if err == codec.ErrNeedMore {
			if cc.filled < len(cc.buf()) {
				return
			}
			if ls.borrowLarge(cc) {
				continue // read on into the large slab
			}
			// 414 when the request line alone does not fit the slab, else 431.
			ls.reject(cc, codec.OversizeStatus(cc.buf()))
			return
		}
		if err != nil {
			ls.reject(cc, statusForParseError(err))
			return
		}
		cc.headLen, cc.pos = n, n
		cc.deadline = 0 // the head is whole: its clock stops, and what the request does next arms its own
		if cc.exchange == nil {
			ls.attachExchange(cc)
		}
		ls.beginRequest(cc)
		ls.startRequest(cc, &ls.req)
		// startRequest either sent a response and went back to csHead (loop for a pipelined request), or
		// waits for a backend.
	}
}

// parseHead parses b, a head in cc's slab, into the loop's scratch request. The scratch belongs to
// cc only from a successful parse of cc's head to the end of the callback (settle) or to cc's next
// head (waitHead), whichever comes first: a failed or partial parse of any connection, this one
// included, leaves it to nobody, so no other client's bytes can ever be read as cc's request.
func (ls *loopState) parseHead(cc *clientConn, b []byte) (int, error) {
	ls.reqOwner = nil
	n, err := codec.ParseRequest(b, &ls.req)
	if err == nil {
		ls.reqOwner = cc
	}
	return n, err
}

// keepHead keeps cc's parsed head as offsets into its slab, for a request that leaves the callback that
// parsed it before its head is sent (a dial, a wait for a connection or for a cache fill): the head stays
// unchanged in the slab until the exchange ends, and request gives it back from there without parsing it
// again. Only the requests that wait pay for it, never one sent at once. Loop only.
func (ls *loopState) keepHead(cc *clientConn) {
	if ls.reqOwner == cc && cc.head == nil {
		if n := len(ls.freeHeads); n > 0 {
			cc.head = ls.freeHeads[n-1]
			ls.freeHeads = ls.freeHeads[:n-1]
		} else {
			cc.head = new(codec.HeadIndex) // a pointer: the exchange, kept by busy connections, stays small
		}
		cc.head.Keep(&ls.req, cc.buf())
	}
}

// releaseHead gives the kept head's storage back to the loop as cc's request ends (waitHead), for the
// next request that waits. An exchange that ends with its connection's close leaves it to the garbage
// collector. Loop only.
func (ls *loopState) releaseHead(cc *clientConn) {
	if len(ls.freeHeads) < freeExchangesKept {
		ls.freeHeads = append(ls.freeHeads, cc.head)
	}
	cc.head = nil
}

// request returns cc's parsed request head in the loop's scratch: as it is when the scratch holds it
// (parseHead), else restored from the offsets keepHead kept, else (a retry of a request sent at once,
// whose head nobody kept) parsed again from the slab. ok is false only if those bytes no longer parse,
// or no longer hold what was kept, which cannot happen.
func (ls *loopState) request(cc *clientConn) (req *codec.Request, ok bool) {
	switch {
	case ls.reqOwner == cc:
	case cc.head != nil:
		ls.reqOwner = nil
		if !cc.head.Restore(&ls.req, cc.buf()[:cc.headLen]) {
			return nil, false
		}
		ls.reqOwner = cc
	default:
		ls.reparses.Add(1)
		if _, err := ls.parseHead(cc, cc.buf()[:cc.headLen]); err != nil {
			return nil, false
		}
	}
	return &ls.req, true
}

// headEndIn reports whether b, of which b[from:] arrived last, may hold the end of a head: an LF
// followed by an LF, or by CR LF, that ends in the new bytes.
func headEndIn(b []byte, from int) bool {
	for i := max(from-2, 1); i < len(b); i++ {
		if b[i] == '\n' && (b[i-1] == '\n' || (i >= 2 && b[i-1] == '\r' && b[i-2] == '\n')) {
			return true
		}
	}
	return false
}

// requestStarted reports whether b holds a byte of a request line: anything past the empty lines the
// parser skips (codec.EmptyLinesLen), a CR whose LF has not arrived yet excepted.
func requestStarted(b []byte) bool {
	n := codec.EmptyLinesLen(b)
	return n < len(b) && !(n == len(b)-1 && b[n] == '\r')
}

func statusForParseError(err error) int {
	switch {
	case errors.Is(err, codec.ErrTooManyHeaders):
		return 431
	case errors.Is(err, codec.ErrUnsupportedTransferEncoding):
		return 501
	case errors.Is(err, codec.ErrUnsupportedVersion):
		return 505
	default:
		return 400
	}
}

// headRequest reports whether the request being answered is a HEAD, whose answer is a head without a
// body (RFC 9110 9.3.2). While a head is still being read (or was refused by the parser) the method is
// read from the slab: "HEAD " after any leading empty lines, so a 400, 408, 414 or 431 to a HEAD whose
// request line got that far has no body either; afterwards the exchange knows.
func (cc *clientConn) headRequest() bool {
	if cc.state == csHead {
		b := cc.buf()[:cc.filled]
		b = b[codec.EmptyLinesLen(b):]
		return len(b) >= 5 && string(b[:5]) == "HEAD "
	}
	return cc.exchange != nil && cc.isHead
}

// startRequest routes a parsed request and asks for a backend. Loop only.
func (ls *loopState) startRequest(cc *clientConn, req *codec.Request) {
	lt := ls.current()
	body := req.Body()
	cc.lt = lt
	cc.minor = req.Minor
	cc.isHead = req.IsHead()
	// Only WebSocket is tunnelled (SPEC 3.1): an h2c upgrade would let a client speak HTTP/2 to the
	// backend past the proxy's rules (h2c smuggling), so it goes on as a plain request, its Upgrade and
	// HTTP2-Settings dropped as hop-by-hop.
	cc.upgrade = req.Minor == 1 && req.Flags&codec.FlagUpgradeWebSocket != 0 && req.Flags&codec.FlagConnUpgrade != 0
	cc.keepAlive = req.KeepAlive()
	cc.idempotent = req.Idempotent()
	cc.reqBody = body
	cc.reqLength = req.ContentLength
	cc.reqRemaining = req.ContentLength
	cc.chunked.Reset()
	var authority []byte
	path, ok := req.Target, true
	if !isOriginForm(path) {
		authority, path, ok = ls.otherForm(path)
	}
	if !ok {
		ls.reject(cc, 400)
		return
	}
	host := req.Host
	if authority != nil {
		host = authority
	}
	cc.route = lt.tbl.routes.match(host, path)
	if cc.route == nil {
		ls.failRequest(cc, 404) // keeps the connection when the request has no body
		return
	}
	if g := lt.tbl.groups[cc.route.group]; g.Balance == upstream.Hash {
		cc.keyHash = requestKeyHash(g, req, path, cc.ip) // req is valid only during this callback
	}
	if max := lt.tbl.maxBodySize; max > 0 && body == codec.BodyLength && req.ContentLength > max {
		ls.reject(cc, 413)
		return
	}
	if body == codec.BodyChunked {
		if status := ls.precheckChunked(cc, lt.tbl.maxBodySize); status != 0 {
			ls.reject(cc, status)
			return
		}
	}
	if cc.route.cacheTTL > 0 && ls.cacheRequest(cc, req, hostWithoutPort(host)) {
		return
	}
	ls.connect(cc)
}

// sendHead writes the request head (and any body bytes already in the slab) to be. The loop's scratch
// Request still holds cc's parse on the fast path; after a dial or a wait another connection may have
// used it, and request gives cc's head back from the offsets its exchange kept.
func (ls *loopState) sendHead(cc *clientConn, be *backendConn) {
	req, ok := ls.request(cc)
	if !ok {
		ls.failRequest(cc, 500) // cannot happen: the same bytes parsed before
		return
	}
	target := req.Target
	if !isOriginForm(target) {
		_, target, _ = ls.otherForm(target) // it routed: the form is valid
	}
	if cc.route.stripPrefix {
		ls.pathBuf = appendStripped(ls.pathBuf[:0], target, cc.route.prefix)
		target = ls.pathBuf
	}
	if cc.headAsGet {
		req.Method = methodGET // SPEC 3.6 keeps HEAD responses: fetch the GET that fills the cache
	}
	head := codec.AppendProxyRequest(ls.headBuf[:0], req, target, ls.clientIP(cc), cc.proto(), be.srv.HostHeader, cc.upgrade)
	ls.headBuf = head[:0] // keep a grown buffer
	cc.state = csForwarding
	be.startExchange()
	if cc.reqBody == codec.BodyNone {
		if _, err := be.gc.Write(head); err != nil {
			return // the backend's close follows this callback (patch 14): it retries or fails the request
		}
		cc.reqDone = true
		ls.requestSent(be)
		return
	}
	ls.forwardBody(cc, head)
	ls.resumeClient(cc)
}

var protoHTTP = []byte("http")

// isOriginForm reports whether a request target is in the origin form ("/path?query"), as nearly every
// one is; otherForm deals with the others. Inlined where it is asked.
func isOriginForm(target []byte) bool { return len(target) > 0 && target[0] == '/' }

// otherForm splits a request target not in the origin form into the authority of an absolute form (nil
// for "*" and the like) and the origin-form path the backend gets: "http://a.example?q" becomes "/?q", in
// the loop's pathBuf (valid until its next use). ok is false for an absolute form without a valid
// authority (400).
func (ls *loopState) otherForm(target []byte) (authority, path []byte, ok bool) {
	authority, path, ok = codec.OriginForm(target)
	if ok && authority != nil && (len(path) == 0 || path[0] != '/') {
		ls.pathBuf = append(append(ls.pathBuf[:0], '/'), path...)
		path = ls.pathBuf
	}
	return authority, path, ok
}

var methodGET = []byte("GET")
