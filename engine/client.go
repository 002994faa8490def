package engine

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/bufpool"
	"switchflow/cache"
	"switchflow/codec"
	"switchflow/upstream"
)

// clientState is where a client connection stands in its request/response cycle.
type clientState uint8

const (
	csHead       clientState = iota // reading a request head into the slab
	csConnecting                    // head parsed; waiting for a backend connection to open
	csForwarding                    // head sent; streaming the request body and/or the response
	csTunnel                        // after a 101: bytes pass both ways untouched until either side closes
	csCacheWait                     // head parsed; waiting for another request's fetch of the same cache key
	csCacheSend                     // writing a large cache hit as the client drains
	csClosing                       // last bytes queued; closed once the outbound buffer drains
	csClosed                        // OnClose ran; nothing may touch gc
)

// clientConn is one client connection (loop only). Its request head lives in its header slab from parse
// until the response completes, so that a retry can rebuild the head and the parsed views stay valid.
//
// Slab layout: buf()[:headLen] is the current head, buf()[pos:filled] bytes read after it (body, or the
// next pipelined request) not yet processed.
//
// It is kept small (144 bytes) because an idle keep-alive connection holds nothing else of ours: what a
// request needs lives in the exchange, which a connection holds from a parsed head until its response
// ends (then it goes back to the loop's free list, once the callback returns: see settle). Code that can
// run on an idle connection (close, timeouts, drain) checks cc.exchange before touching a request field.
type clientConn struct {
	listNode[clientConn]
	*exchange
	gc    gnet.Conn
	ls    *loopState
	slab  *bufpool.Slab
	large *bufpool.Slab // a large header slab, lent while a head outgrows slab (borrowLarge)

	filled, headLen, pos int
	deadline             int64 // monotonic ns; 0 = none
	idleSince            int64 // monotonic ns when the connection last went back to waiting for a head
	backendQueued        int   // while held: the backend's queue at the last progress seen

	ip         netip.Addr // client address for X-Forwarded-For
	ipHash     uint32     // FNV-1a of the client address, for ip_hash
	state      clientState
	slabDirty  bool // the slab's pages hold bytes; released after a while idle
	headTimer  bool // deadline is read_header_timeout (else idle_timeout)
	held       bool // not read until its backend's queue of its body is written out (flow.go)
	inReadHead bool // readHead is on the stack: finishClient must not re-enter it

	tls *tlsClient // a TLS client: its handshake and real address (tls.go); nil for plain HTTP
}

// exchange is the request a client connection has in flight, and what it needs until the response ends.
type exchange struct {
	lt            *loopTable
	route         *routeRT
	minor         uint8
	isHead        bool
	headAsGet     bool // a HEAD that leads a cache fill: sent upstream as GET, answered with the head only
	upgrade       bool // the request asks for a protocol upgrade (Upgrade + Connection: upgrade)
	keepAlive     bool
	idempotent    bool
	reqBody       codec.BodyKind
	reqLength     int64 // the request's Content-Length (-1: none), for a replay
	reqRemaining  int64 // Content-Length bytes still to forward
	reqSeen       int64 // chunked payload bytes forwarded, for max_body_size
	reqDone       bool  // whole request (head and body) forwarded
	bodyFromConn  bool  // some body bytes were read past the slab: the request cannot be replayed
	chunked       codec.ChunkedReader
	tried         uint64 // servers tried for this request, bit per server index
	keyHash       uint64 // balance = "hash": the hash of the request's hash_key (hashkey.go)
	attempts      int
	be            *backendConn
	respStarted   bool // response head sent to the client
	closeAfterRes bool
	freeRetries   int

	// The micro-cache (cache.go), on routes with cache_ttl.
	cacheTag    string         // X-Cache value for a forwarded response; "" off the cache
	cacheLeader bool           // this request fetches cacheKey for every request waiting on it
	cacheKey    string         // while cacheLeader
	capture     *cache.Builder // the leader's response, collected as it streams
	wait        *cacheWait     // while csCacheWait
	hit         *cache.Entry   // while csCacheSend: the entry being written, from body offset hitOff
	hitOff      int

	// Metrics and the access log (stats.go): what record needs when the response ends.
	start    int64            // clock when the head was parsed; 0 once recorded
	srv      *upstream.Server // the server of the last attempt
	bodyLen  int64            // a forwarded response's Content-Length
	bodySent int64            // body bytes sent to the client (noteProgress, cache hits, tunnels)
	respHead int32            // length of the response head sent
	status   uint16           // the status sent to the client
}

// freeExchangesKept bounds a loop's free list: a burst of busy connections past it leaves its exchanges
// to the garbage collector once they idle, rather than holding them for good.
const freeExchangesKept = 1024

// attachExchange gives cc an exchange, from the loop's free list when it has one. Loop only.
func (ls *loopState) attachExchange(cc *clientConn) {
	if n := len(ls.freeEx); n > 0 {
		cc.exchange = ls.freeEx[n-1]
		ls.freeEx[n-1] = nil
		ls.freeEx = ls.freeEx[:n-1]
		return
	}
	cc.exchange = new(exchange)
}

// settle takes back the exchanges of the connections whose response ended during this callback and
// that are now idle. It runs as each callback returns, not in waitHead, so that no caller still on the
// stack can find cc.exchange gone. Loop only.
func (ls *loopState) settle() {
	ls.clockOK = false // the next callback reads the clock afresh
	ls.reqOwner = nil  // the parse scratch never outlives the callback that filled it
	if len(ls.idled) == 0 {
		return
	}
	for i, cc := range ls.idled {
		ls.idled[i] = nil
		ex := cc.exchange
		if ex == nil || cc.state != csHead || cc.filled != 0 || cc.inReadHead {
			continue // closed (it keeps its exchange), or already on its next request
		}
		cc.exchange = nil
		if len(ls.freeEx) < freeExchangesKept {
			*ex = exchange{}
			ls.freeEx = append(ls.freeEx, ex)
		}
	}
	ls.idled = ls.idled[:0]
}

// clientIP is cc's address as text, in the loop's scratch buffer (valid until the next call). Loop only.
func (ls *loopState) clientIP(cc *clientConn) []byte {
	if !cc.ip.IsValid() {
		return nil
	}
	ls.ipBuf = cc.ip.AppendTo(ls.ipBuf[:0])
	return ls.ipBuf
}

// buf is cc's header slab: the large one while it has borrowed one, else its own.
func (cc *clientConn) buf() []byte {
	if cc.large != nil {
		return cc.large.Buf
	}
	if cc.slab == nil {
		return nil // closed
	}
	return cc.slab.Buf
}

// borrowLarge moves cc's head, which filled its slab, into a large slab (SPEC 3.3), and reports whether
// one was free. Loop only.
func (ls *loopState) borrowLarge(cc *clientConn) bool {
	if cc.large != nil || ls.s.largeSlabs == nil {
		return false
	}
	l, err := ls.s.largeSlabs.Get()
	if err != nil {
		return false // every large slab is lent: 431
	}
	copy(l.Buf, cc.slab.Buf[:cc.filled])
	cc.large = l
	return true
}

// returnLarge gives a borrowed large slab back, moving what it still holds (the start of the next
// pipelined request) into cc's own slab; it keeps the slab while that does not fit. Its pages go back
// to the kernel, so the large slabs cost memory only while they are lent. Loop only.
func (ls *loopState) returnLarge(cc *clientConn) {
	l := cc.large
	if l == nil || (cc.slab != nil && cc.filled > len(cc.slab.Buf)) {
		return
	}
	if cc.slab != nil {
		copy(cc.slab.Buf, l.Buf[:cc.filled])
	}
	cc.large = nil
	ls.s.largeSlabs.Release(l)
	ls.s.largeSlabs.Put(l)
}

func (cc *clientConn) node() *listNode[clientConn] { return &cc.listNode }

// clientOpened admits a connection: a header slab, or the prebuilt 503 when all max_connections are taken.
func (ls *loopState) clientOpened(c gnet.Conn) ([]byte, gnet.Action) {
	if ls.s.draining.Load() {
		return nil, gnet.Close
	}
	slab, err := ls.s.slabs.Get()
	if err != nil {
		// SPEC 3.3: connection max_connections+1 gets ready bytes and a close; nothing is allocated for it.
		// It is sent before any request byte is read, so it cannot know a HEAD: the body goes too, and
		// the close that follows ends the exchange whatever the client makes of it.
		b := ls.rs.get(503, false, false)
		ls.st.refused.Add(1)
		ls.st.bytesOut.Add(uint64(len(b)))
		return b, gnet.Close
	}
	cc := &clientConn{gc: c, ls: ls, slab: slab}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			ip = ip.Unmap()
			cc.ip = ip
			h := uint32(2166136261)
			for _, b := range ip.As16() { // the array form: AsSlice would allocate per connection
				h = (h ^ uint32(b)) * 16777619
			}
			cc.ipHash = h
		}
	}
	ls.tlsOpened(cc, c) // tls.go: a TLS client's real address, X-Forwarded-Proto https
	c.SetContext(cc)
	listPush(&ls.clients, cc)
	ls.clientsOpen.Add(1)
	if ls.quiet.Load() {
		// Swept every quietTicks until now: back to every tick, and a Date as fresh as a busy loop's.
		ls.quiet.Store(false)
		ls.rs.refreshDate(time.Now())
	}
	ls.waitHead(cc)
	// The first request's head must arrive within read_header_timeout of the accept, whether or not any
	// byte of it has come yet (SPEC 2: a client must send a whole request head within it); idle_timeout
	// is for kept-alive connections between requests.
	cc.headTimer = true
	cc.deadline = ls.clock() + int64(ls.current().tbl.readHeaderTimeout)
	return nil, gnet.None
}

// clientGone releases everything a client held, exactly once, from OnClose.
func (ls *loopState) clientGone(cc *clientConn) {
	if cc.state == csClosed {
		return
	}
	cc.state = csClosed
	// A closed client keeps its exchange (the garbage collector takes both): a callback still on the
	// stack may read it after a failed write closed the connection.
	ls.dropRequest(cc)
	listRemove(&ls.clients, cc)
	ls.clientsOpen.Add(-1)
	if ls.reqOwner == cc {
		ls.reqOwner = nil
	}
	cc.filled = 0
	ls.returnLarge(cc)
	ls.s.slabs.Put(cc.slab)
	cc.slab = nil
}

// dropRequest lets go of what cc's request holds, if it has one: its backend connection, its place in the
// cache's bookkeeping, a cache entry being written. Loop only.
func (ls *loopState) dropRequest(cc *clientConn) {
	if cc.exchange == nil {
		return
	}
	cc.hit = nil
	if be := cc.be; be != nil {
		ls.noteProgress(cc, be)
		cc.be = nil
		ls.abandonBackend(be)
	}
	ls.recordUnfinished(cc)
	ls.cacheForget(cc)
}

// closeClient closes cc once what is queued for it has been written. Loop only.
func (ls *loopState) closeClient(cc *clientConn) {
	if cc.state == csClosed || cc.state == csClosing {
		return
	}
	ls.dropRequest(cc)
	cc.state = csClosing
	cc.deadline = ls.clock() + int64(ls.lt.tbl.idleTimeout)
	if cc.gc.OutboundBuffered() == 0 {
		_ = cc.gc.Close()
	}
	// Otherwise the sweep closes it once gnet has flushed the buffer, or at the deadline.
}

// waitHead puts cc back to reading a request head, with the idle timeout running (clientOpened turns it
// into read_header_timeout for a new connection). Loop only.
func (ls *loopState) waitHead(cc *clientConn) {
	if ls.reqOwner == cc {
		ls.reqOwner = nil // the slab is about to hold the next head
	}
	cc.state = csHead
	cc.held = false
	cc.idleSince = ls.clock()
	cc.headLen = 0
	cc.headTimer = false
	cc.deadline = ls.clock() + int64(ls.current().tbl.idleTimeout)
	if cc.exchange == nil {
		return // a new connection
	}
	// The exchange is reset for a pipelined request parsed at once, and otherwise taken back by settle.
	ls.idled = append(ls.idled, cc)
	ls.cacheForget(cc)
	cc.cacheTag = ""
	cc.be = nil
	cc.route = nil
	cc.tried, cc.attempts = 0, 0
	cc.respStarted, cc.closeAfterRes, cc.reqDone, cc.bodyFromConn = false, false, false, false
	cc.headAsGet = false
	cc.reqSeen = 0
	cc.freeRetries = 0
	cc.start, cc.srv, cc.status, cc.respHead, cc.bodyLen, cc.bodySent = 0, nil, 0, 0, 0, 0
}

func (ls *loopState) clientTraffic(cc *clientConn) gnet.Action {
	switch cc.state {
	case csHead:
		ls.readHead(cc)
	case csConnecting:
		// Until the backend connection opens, what arrives is this request's body (bounded by
		// connect_timeout) or, for a request without one, the next requests.
		if cc.reqBody == codec.BodyNone {
			ls.capPipelined(cc)
		} else {
			ls.holdClient(cc) // the body waits for the dial; sendHead forwards it and resumes
		}
	case csCacheWait, csCacheSend:
		ls.capPipelined(cc)
	case csForwarding:
		if cc.reqDone {
			ls.capPipelined(cc)
		} else if be := cc.be; be != nil && be.gc != nil {
			ls.forwardBody(cc, nil)
			if !cc.reqDone && cc.state == csForwarding && !lost(cc, be) {
				ls.holdClientForBackend(cc, be)
			}
		}
	case csTunnel:
		be := cc.be
		switch {
		case be == nil:
		case be.state == bsTunnel:
			ls.tunnelCopy(cc.gc, be.gc, cc)
			ls.holdTunnel(cc.gc, be.gc)
			ls.capTunnel(cc, be)
		}
	case csClosing:
		// Whatever a closing client still sends is dropped.
		_, _ = cc.gc.Discard(-1)
	}
	return gnet.None
}

// dropClient closes cc and its backend at once, dropping what is queued for cc: for a client that is
// flooding, whose queued bytes could not be delivered in order anyway (closeClient lets them drain).
func (ls *loopState) dropClient(cc *clientConn) {
	ls.dropRequest(cc)
	cc.state = csClosing
	_ = cc.gc.Close()
}

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
		if !cc.headTimer && requestStarted(cc.buf()[:cc.filled]) {
			// The first byte of a request on a kept-alive connection: read_header_timeout from now on.
			// Empty lines before it (skipped by the parser, RFC 9112 2.2) leave the idle clock running;
			// they still fill the slab, so a flood of them ends in 431.
			cc.headTimer = true
			cc.deadline = ls.clock() + int64(ls.current().tbl.readHeaderTimeout)
		}
		if cc.large != nil && cc.filled < len(cc.buf()) && !headEndIn(cc.buf()[:cc.filled], before) {
			return
		}
		n, err := ls.parseHead(cc, cc.buf()[:cc.filled])
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
		cc.deadline = 0
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

// request returns cc's parsed request head: the scratch when it holds it (parseHead), else the head
// parsed again from cc's slab, where it stays unchanged until the exchange ends. ok is false only if
// those bytes no longer parse, which cannot happen.
func (ls *loopState) request(cc *clientConn) (req *codec.Request, ok bool) {
	if ls.reqOwner != cc {
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

// reject answers a request the proxy refuses itself, with the prebuilt response, and closes.
func (ls *loopState) reject(cc *clientConn, status int) {
	b := ls.rs.get(status, false, cc.headRequest())
	ls.recordPrebuilt(cc, status, b, false)
	_, _ = cc.gc.Write(b)
	ls.closeClient(cc)
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
	authority, path, ok := ls.originForm(req.Target)
	if !ok {
		ls.reject(cc, 400)
		return
	}
	host := req.Host
	if authority != nil {
		host = authority
	}
	host = hostWithoutPort(host)
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
	if cc.route.cacheTTL > 0 && ls.cacheRequest(cc, req, host) {
		return
	}
	ls.connect(cc)
}

// precheckChunked validates the chunked framing of every body byte already received, before the head goes
// to a backend: a bad chunk size or an oversized body that arrived with the head is answered here, so the
// backend never sees any part of that request (SPEC 3.2). Bytes that arrive later are checked as they
// stream; an error there aborts the half-sent request by closing the backend connection, so the backend
// still never sees a complete request.
func (ls *loopState) precheckChunked(cc *clientConn, max int64) int {
	var d codec.ChunkedReader
	var seen int64
	for i, src := range [2][]byte{cc.buf()[cc.pos:cc.filled], nil} {
		if i == 1 {
			src, _ = cc.gc.Peek(-1)
		}
		_, payload, done, err := scanChunked(&d, src)
		seen += payload
		switch {
		case err != nil:
			return 400
		case max > 0 && seen > max:
			return 413
		case done:
			return 0
		}
	}
	return 0
}

// scanChunked runs d over buf as far as the body goes, reporting the bytes consumed (framing included) and
// the payload bytes among them.
func scanChunked(d *codec.ChunkedReader, buf []byte) (consumed int, payload int64, done bool, err error) {
	for consumed < len(buf) {
		n, data, fin, err := d.Next(buf[consumed:])
		consumed += n
		payload += int64(len(data))
		if err != nil || fin {
			return consumed, payload, fin, err
		}
		if n == 0 {
			break
		}
	}
	return consumed, payload, false, nil
}

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
	be := &backendConn{ls: ls, lt: lt, group: cc.route.group, srv: srv, state: bsDialing, client: cc}
	cc.be = be
	cc.state = csConnecting
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
	_, _ = cc.gc.Write(b)
	if keep {
		ls.finishClient(cc)
		return
	}
	ls.closeClient(cc)
}

// finishClient ends the current exchange on a kept-alive client and starts on the next pipelined request.
func (ls *loopState) finishClient(cc *clientConn) {
	if cc.state == csClosed {
		return // the response's last Write failed and closed it
	}
	// Move what followed the request (the next pipelined request) to the front of the slab.
	rest := copy(cc.buf(), cc.buf()[cc.pos:cc.filled])
	cc.filled, cc.pos = rest, 0
	ls.returnLarge(cc)
	ls.waitHead(cc)
	if !cc.inReadHead && (cc.filled > 0 || cc.gc.InboundBuffered() > 0) {
		ls.readHead(cc)
	}
	ls.resumeClient(cc)
}

// sendHead writes the request head (and any body bytes already in the slab) to be. The loop's scratch
// Request still holds cc's parse on the fast path; after a dial or a retry another connection may have
// used it, and the head is parsed again from the slab.
func (ls *loopState) sendHead(cc *clientConn, be *backendConn) {
	req, ok := ls.request(cc)
	if !ok {
		ls.failRequest(cc, 500) // cannot happen: the same bytes parsed before
		return
	}
	_, target, _ := ls.originForm(req.Target) // it routed: the form is valid
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
		if _, _ = be.gc.Write(head); lost(cc, be) {
			return
		}
		cc.reqDone = true
		ls.requestSent(be)
		return
	}
	ls.forwardBody(cc, head)
	ls.resumeClient(cc)
}

var protoHTTP = []byte("http")

// originForm splits a request target into the authority of an absolute form (nil for the origin form)
// and the origin-form path the backend gets: "http://a.example?q" becomes "/?q", in the loop's pathBuf
// (valid until its next use). ok is false for an absolute form without a valid authority (400).
func (ls *loopState) originForm(target []byte) (authority, path []byte, ok bool) {
	authority, path, ok = codec.OriginForm(target)
	if ok && authority != nil && (len(path) == 0 || path[0] != '/') {
		ls.pathBuf = append(append(ls.pathBuf[:0], '/'), path...)
		path = ls.pathBuf
	}
	return authority, path, ok
}

var methodGET = []byte("GET")

// forwardBody streams request body bytes to the backend: those already in the slab, then those in gnet's
// buffer, each cut where the body ends, in one write; head, when not nil, goes first in the same write (the
// start of an exchange). A chunked body's trailer section goes without the fields that must not travel in
// trailers (codec.ChunkedReader.Forward): its kept lines are copied into ls.trailers and written last. One write instead of one per piece: a small upload reaches the backend in one
// segment with its head, a large one no longer goes out in slab-sized and buffer-sized parts. Loop only.
func (ls *loopState) forwardBody(cc *clientConn, head []byte) {
	be := cc.be
	out := ls.iov[:0]
	if head != nil {
		out = append(out, head)
	}
	ls.trailers = ls.trailers[:0]
	fromSlab, fromConn := 0, 0
	for i := 0; i < 2 && !cc.reqDone; i++ {
		var src []byte
		if i == 0 {
			src = cc.buf()[cc.pos:cc.filled]
		} else {
			src, _ = cc.gc.Peek(-1)
		}
		if len(src) == 0 {
			continue
		}
		var n, pass int // consumed, and forwarded as it came (the rest of n: trailers, in ls.trailers)
		switch cc.reqBody {
		case codec.BodyLength:
			n = len(src)
			if int64(n) > cc.reqRemaining {
				n = int(cc.reqRemaining)
			}
			cc.reqRemaining -= int64(n)
			cc.reqDone = cc.reqRemaining == 0
			pass = n
		case codec.BodyChunked:
			var payload int64
			var done bool
			var err error
			n, pass, payload, ls.trailers, done, err = cc.chunked.Forward(src, ls.trailers)
			if err != nil {
				clear(ls.iov[:])
				ls.abortRequest(cc, 400)
				return
			}
			cc.reqDone = done
			cc.reqSeen += payload
			if max := cc.lt.tbl.maxBodySize; max > 0 && cc.reqSeen > max {
				clear(ls.iov[:])
				ls.abortRequest(cc, 413)
				return
			}
		default:
			cc.reqDone = true
		}
		if pass > 0 {
			out = append(out, src[:pass])
		}
		if i == 0 {
			fromSlab = n
			if n < len(src) {
				break // the body ended in the slab (what follows is the next request)
			}
		} else {
			fromConn = n
		}
	}
	if len(ls.trailers) > 0 {
		// The slab's trailer bytes, then gnet's: a trailer line split between them was put together.
		out = append(out, ls.trailers)
	}
	ls.send(be.gc, out)
	if lost(cc, be) {
		return // nothing consumed: a retry rewinds and replays what it may
	}
	cc.pos += fromSlab
	if fromConn > 0 {
		cc.bodyFromConn = true
		discard(cc.gc, fromConn)
		ls.st.bytesIn.Add(uint64(fromConn))
	}
	if cc.reqDone {
		cc.deadline = 0
		ls.requestSent(be)
		return
	}
	// A body that stops coming must not hold the client's slot and a backend connection forever
	// (nginx: client_body_timeout, 408): idle_timeout runs from the last bytes forwarded.
	cc.deadline = ls.clock() + int64(cc.lt.tbl.idleTimeout)
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
		_, _ = cc.gc.Write(b)
	}
	ls.closeClient(cc)
}

// clientTimedOut handles a client deadline: 408 for a head not complete in time (a new connection's first
// head, or a later one once its first byte came), a silent close for an idle keep-alive connection (as
// nginx does), a forced close for a client that would not drain.
func (ls *loopState) clientTimedOut(cc *clientConn) {
	cc.deadline = 0
	switch {
	case cc.held && cc.state == csForwarding && cc.be != nil:
		// The backend read nothing of the body for idle_timeout (nginx: proxy_send_timeout, 504).
		cc.be.srv.Fail(ls.clock())
		ls.abortRequest(cc, 504)
	case cc.state == csHead && cc.headTimer:
		ls.reject(cc, 408)
	case cc.state == csForwarding && !cc.reqDone && cc.be != nil:
		// The request body stopped coming for idle_timeout: 408 if nothing of the response went out yet,
		// else a close; the backend, which holds a partial request, is closed either way.
		ls.abortRequest(cc, 408)
	case cc.state == csClosing:
		_ = cc.gc.Close()
	case cc.state == csCacheWait:
		ls.leaveWait(cc)
		ls.cacheMissGo(cc)
	default:
		ls.closeClient(cc)
	}
}
