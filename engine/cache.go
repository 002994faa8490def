package engine

import (
	"context"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/cache"
	"switchflow/codec"
)

// The micro-cache in the engine (SPEC 3.6). cache/ keeps the entries and the table of fetches in flight;
// the engine decides, per request on a route with cache_ttl, between
//
//   - HIT: a fresh entry; the prebuilt head, the few per-response header bytes and the body leave in one
//     writev, and the client goes on to its next request without the backend hearing of it;
//   - waiting: a fetch for the same key is in flight (on this loop or another), so the client waits
//     in csCacheWait until it ends; it is then served the new entry, or sent to the backend when the
//     response could not be kept;
//   - MISS: the request goes to the backend; the first such GET for a key leads the fetch, and its
//     response is collected (cache.Builder) as it is forwarded;
//   - BYPASS: a request the cache must not answer (method, body, Authorization, Cookie, Upgrade).
//
// Forwarded responses on such routes carry X-Cache: MISS or BYPASS.

// cacheLockTimeout bounds how long a request waits for another's fetch of its key before it goes to the
// backend itself, as nginx's proxy_cache_lock_timeout (same default). A leader streaming a large body to a
// slow client must not hold its followers for as long as that takes.
const cacheLockTimeout = 5 * time.Second

const (
	xCacheMiss   = "MISS"
	xCacheBypass = "BYPASS"
)

// cacheWait is one loop's clients waiting for the fetch of one key.
type cacheWait struct {
	clients []*clientConn
}

// cacheRequest handles a request on a caching route. It reports whether the request was answered or
// waits; otherwise it goes to the backend, tagged MISS or BYPASS. Loop only.
func (ls *loopState) cacheRequest(cc *clientConn, req *codec.Request, host []byte) bool {
	if cc.upgrade || !cache.RequestCacheable(req) {
		cc.cacheTag = xCacheBypass
		ls.shard.Bypasses.Add(1)
		return false
	}
	key := appendCacheKey(ls.keyBuf[:0], host, req.Target)
	ls.keyBuf = key[:0]
	if e := ls.shard.Get(key, ls.clock()); e != nil {
		ls.serveHit(cc, e)
		return true
	}
	if w := ls.waits[string(key)]; w != nil {
		ls.joinWait(cc, w)
		return true
	}
	// A HEAD may lead too (SPEC 3.6 keeps HEAD responses): it fetches the GET, as nginx's
	// proxy_cache_convert_head does, keeps it, and answers with the head alone. HTTP/1.0 clients of a
	// chunked response would need de-chunking, which is never kept, so they do not lead.
	e, leader, joined := ls.shard.Lookup(key, ls.clock(), ls, !cc.isHead || cc.minor == 1)
	switch {
	case e != nil:
		ls.serveHit(cc, e)
		return true
	case joined:
		w := &cacheWait{}
		ls.waits[string(key)] = w
		ls.joinWait(cc, w)
		return true
	case leader:
		k := string(key)
		ls.waits[k] = &cacheWait{} // followers on this loop wait here, not in the store
		cc.cacheLeader, cc.cacheKey = true, k
		cc.headAsGet = cc.isHead
	}
	ls.shard.Misses.Add(1)
	cc.cacheTag = xCacheMiss
	return false
}

// appendCacheKey builds the key: the host (lower case, without port) and the request target as sent.
func appendCacheKey(dst, host, target []byte) []byte {
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	dst = append(dst, ' ') // cannot occur in a host
	return append(dst, target...)
}

func (ls *loopState) joinWait(cc *clientConn, w *cacheWait) {
	w.clients = append(w.clients, cc)
	cc.wait = w
	cc.state = csCacheWait
	ls.keepHead(cc) // a wait that ends in vain sends the head to the backend (cacheMissGo)
	ls.armClient(cc)
}

// leaveWait takes a waiting client off its wait list (it closed, or waited too long).
func (ls *loopState) leaveWait(cc *clientConn) {
	w := cc.wait
	if w == nil {
		return
	}
	cc.wait = nil
	for i, x := range w.clients {
		if x == cc {
			last := len(w.clients) - 1
			w.clients[i] = w.clients[last]
			w.clients[last] = nil
			w.clients = w.clients[:last]
			break
		}
	}
}

// serveHit answers cc from e: prebuilt head, Date/Age/X-Cache/Connection, body (none for HEAD).
func (ls *loopState) serveHit(cc *clientConn, e *cache.Entry) {
	ls.shard.Hits.Add(1)
	keep := cc.keepAlive && !ls.s.draining.Load()
	extra := e.AppendServeHeaders(ls.hitBuf[:0], ls.rs.date[:], ls.clock(), cc.minor, keep)
	ls.hitBuf = extra[:0]
	body := e.Body
	if cc.isHead {
		body = nil
	}
	first := body
	if len(first) > ls.s.ioBuffer {
		first = first[:ls.s.ioBuffer]
	}
	out := append(ls.iov[:0], e.Head, extra)
	if len(first) > 0 {
		out = append(out, first)
	}
	cc.respStarted = true
	cc.closeAfterRes = !keep
	cc.status, cc.respHead, cc.bodySent = uint16(e.Status), int32(len(e.Head)+len(extra)), 0
	ls.toClient(cc, out) // clears out: an evicted entry is not kept alive
	cc.bodySent = int64(len(first))
	if len(first) < len(body) {
		cc.hit, cc.hitOff = e, len(first)
		ls.pumpHit(cc)
		return
	}
	ls.hitDone(cc)
}

// pumpHit goes on writing a hit larger than io_buffer: a piece at a time, and only while gnet holds
// nothing unsent for the client, so that a slow reader costs io_buffer here, not the entry's size; the
// sweep calls it again once the client has drained (SPEC 3.3).
func (ls *loopState) pumpHit(cc *clientConn) {
	body := cc.hit.Body
	for cc.hitOff < len(body) {
		if cc.gc.OutboundBuffered() > ls.s.ioBuffer/2 {
			cc.state = csCacheSend
			ls.armClient(cc)
			return
		}
		end := cc.hitOff + ls.s.ioBuffer
		if end > len(body) {
			end = len(body)
		}
		cc.write(body[cc.hitOff:end])
		cc.bodySent += int64(end - cc.hitOff)
		cc.hitOff = end
	}
	cc.hit = nil
	ls.hitDone(cc)
}

// hitDone ends a response served from the cache.
func (ls *loopState) hitDone(cc *clientConn) {
	next := nextRequest
	if cc.closeAfterRes {
		next = closeFlushed
	}
	ls.endExchange(cc, true, next)
}

// startCapture runs when the leader's response head arrives: a response that may be kept is collected as
// it streams; one that may not releases the waiters at once, to the backend.
func (ls *loopState) startCapture(cc *clientConn, be *backendConn, resp *codec.Response) {
	keep, age := cache.ResponseTTL(resp, cc.route.cacheTTL)
	if keep <= 0 || be.dechunk || be.body == codec.BodyUntilClose || ls.shard.Store().MaxEntry() == 0 {
		ls.endFlight(cc, nil)
		return
	}
	cc.capture = cache.NewBuilder(cc.cacheKey, resp, int64(keep), age, ls.shard.Store().MaxEntry())
}

// endFlight ends the fetch cc leads: the entry (nil: nothing kept) goes to the store, the other loops'
// waiters are told through it, and this loop's waiters are served now. Safe to call for any client.
func (ls *loopState) endFlight(cc *clientConn, e *cache.Entry) {
	if !cc.cacheLeader {
		return
	}
	key := cc.cacheKey
	cc.cacheLeader, cc.cacheKey, cc.capture = false, "", nil
	e = ls.shard.Store().Finish(key, e, ls.clock())
	ls.flightDone(key, e)
}

// finishCapture ends the leader's fetch once its response is complete.
func (ls *loopState) finishCapture(cc *clientConn) {
	if !cc.cacheLeader {
		return
	}
	var e *cache.Entry
	if cc.capture != nil {
		e = cc.capture.Finish(ls.clock())
	}
	ls.endFlight(cc, e)
}

// FlightDone is cache.Waiter: another loop finished a fetch this loop waits for. It runs on that loop's
// goroutine, so the news is handed over with Execute.
func (ls *loopState) FlightDone(key string, e *cache.Entry) {
	_ = ls.loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		ls.flightDone(key, e)
		ls.settle()
		return nil
	}))
}

// flightDone serves or releases this loop's clients waiting for key. Loop only.
func (ls *loopState) flightDone(key string, e *cache.Entry) {
	ls.shard.Put(e)
	w := ls.waits[key]
	if w == nil {
		return
	}
	delete(ls.waits, key)
	for _, cc := range w.clients {
		if cc.wait != w || cc.state != csCacheWait {
			continue
		}
		cc.wait = nil
		if e != nil {
			ls.serveHit(cc, e)
		} else {
			ls.cacheMissGo(cc)
		}
	}
}

// cacheMissGo sends a client that waited in vain to the backend.
func (ls *loopState) cacheMissGo(cc *clientConn) {
	cc.deadline = 0 // the wait is over; the request's next state arms its own clock
	cc.cacheTag = xCacheMiss
	ls.shard.Misses.Add(1)
	ls.connect(cc)
}

// cacheForget undoes whatever cc's request holds in the cache's bookkeeping: a fetch it leads ends
// with nothing kept, a wait it is in is left. Called whenever a client's request ends early.
func (ls *loopState) cacheForget(cc *clientConn) {
	if cc.cacheLeader {
		ls.endFlight(cc, nil)
	}
	if cc.wait != nil {
		ls.leaveWait(cc)
	}
}

// appendXCache adds "X-Cache: tag" to a head that ends in the blank line.
func appendXCache(head []byte, tag string) []byte {
	head = append(head[:len(head)-2], "X-Cache: "...)
	head = append(head, tag...)
	return append(head, "\r\n\r\n"...)
}
