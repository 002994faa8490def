package engine

import (
	"net"
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/bufpool"
	"switchflow/codec"
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
// It is kept small (168 bytes) because an idle keep-alive connection holds nothing else of ours: what a
// request needs lives in the exchange, which a connection holds from a parsed head until it idles between
// requests (the sweep then gives it back to the loop's free list: freeExchange). Code that can
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
	mute       bool // a write to it failed: gnet closes it once the callback returns (toClient)

	tls *tlsClient // a TLS client: its handshake and real address (tls.go); nil for plain HTTP
}

// clientIP is cc's address as text, for X-Forwarded-For: written once into the exchange, which a busy
// connection keeps from one request to the next, else into the loop's scratch buffer (valid until the
// next call). Loop only.
func (ls *loopState) clientIP(cc *clientConn) []byte {
	if !cc.ip.IsValid() {
		return nil
	}
	if cc.exchange != nil {
		if cc.ipLen == 0 {
			if b := cc.ip.AppendTo(cc.ipText[:0]); len(b) <= len(cc.ipText) {
				cc.ipLen = uint8(len(b))
			}
		}
		if cc.ipLen != 0 {
			return cc.ipText[:cc.ipLen]
		}
	}
	ls.ipBuf = cc.ip.AppendTo(ls.ipBuf[:0])
	return ls.ipBuf
}

// clientOpened admits a connection: a header slab, or the prebuilt 503 when all max_connections are taken.
func (ls *loopState) clientOpened(c gnet.Conn) ([]byte, gnet.Action) {
	if !ls.tlsAttach(c) { // tls.go: a TLS client's bytes go through its record layer from here on
		return nil, gnet.Close
	}
	if ls.s.draining.Load() && !ls.s.handedOver.Load() {
		return nil, gnet.Close // after a handover: a TLS client handed to a loop as the drain began is served
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
	ls.tlsOpened(cc, c) // tls.go: X-Forwarded-Proto https, the version and cipher for the access log
	c.SetContext(cc)
	ls.clients.push(&cc.listNode, cc)
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
	ls.armClient(cc)
	return nil, gnet.None
}

// clientGone releases everything a client held, exactly once, from OnClose.
func (ls *loopState) clientGone(cc *clientConn) {
	if cc.state == csClosed {
		return
	}
	cc.state = csClosed
	ls.endExchange(cc, false, alreadyGone)
	ls.clients.remove(&cc.listNode)
	ls.clientsOpen.Add(-1)
	if ls.reqOwner == cc {
		ls.reqOwner = nil
	}
	cc.filled = 0
	ls.returnLarge(cc)
	ls.s.slabs.Put(cc.slab)
	cc.slab = nil
}

// closeClient ends cc's exchange, if it has one, and closes cc once what is queued for it has been
// written. Loop only.
func (ls *loopState) closeClient(cc *clientConn) { ls.endExchange(cc, false, closeFlushed) }

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
	ls.armClient(cc)
	if cc.exchange == nil {
		return // a new connection
	}
	// The exchange is reset for the next request, pipelined or not; the sweep takes it back once cc idles.
	ls.cacheForget(cc)
	cc.cacheTag = ""
	cc.be = nil
	cc.route = nil
	cc.tried, cc.attempts = 0, 0
	cc.respStarted, cc.closeAfterRes, cc.reqDone, cc.bodyFromConn = false, false, false, false
	cc.headAsGet = false
	if cc.head != nil {
		ls.releaseHead(cc)
	}
	cc.reqSeen = 0
	cc.freeRetries, cc.cause = 0, 0
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
			if ls.forwardBody(cc, nil) && !cc.reqDone && cc.state == csForwarding {
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
func (ls *loopState) dropClient(cc *clientConn) { ls.endExchange(cc, false, closeNow) }

// finishClient ends the current exchange on a kept-alive client and starts on the next pipelined request.
func (ls *loopState) finishClient(cc *clientConn) {
	if cc.state == csClosed || cc.mute {
		return // a write to it failed: its close is queued, and no next request starts meanwhile
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

// clientTimedOut handles a client deadline: 408 for a head not complete in time (a new connection's first
// head, or a later one once its first byte came), a silent close for an idle keep-alive connection (as
// nginx does), a forced close for a client that would not drain.
func (ls *loopState) clientTimedOut(cc *clientConn) {
	cc.deadline = 0
	switch {
	case cc.held && cc.state == csForwarding && cc.be != nil:
		// The backend read nothing of the body for idle_timeout (nginx: proxy_send_timeout, 504): the
		// backend holds a partial request, so it is closed whatever the table says of a retry.
		srv := cc.be.srv
		be := cc.be
		cc.be = nil
		ls.abandonBackend(be)
		ls.backendFailed(cc, srv, failUploadStalled, true)
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
