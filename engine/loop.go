package engine

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/cache"
	"switchflow/codec"
	"switchflow/tlsrec"
)

// slabReleaseAfter is how long a keep-alive connection waits idle before its header slab's pages are given
// back to the kernel: long enough that a busy connection never pays the madvise and the page fault.
const slabReleaseAfter = 2 * time.Second

// loopState is everything one event loop owns. Every field is loop only, except the atomic counters,
// which other goroutines read (shutdown, metrics) but only the loop writes.
type loopState struct {
	s    *Server
	loop gnet.EventLoop
	lt   *loopTable // routes, balancers and idle pools of the table this loop last saw
	rs   *responseSet

	// Scratch space reused by every connection of the loop inside one callback; nothing keeps it.
	// req is written by parseHead and request(cc) only and read through request(cc) only, which gives
	// it back to cc from the offsets cc's exchange kept (keepHead) unless req holds cc's head from this
	// very callback (reqOwner: see parseHead).
	req      codec.Request
	reqOwner *clientConn
	tlsBufs  tlsrec.Buffers // the record layers' scratch of its TLS clients and TLS backends (tlsrec): what they return lives until the next call
	resp     codec.Response
	headBuf  []byte      // outgoing request or response head
	pathBuf  []byte      // rewritten target (strip_prefix)
	ipBuf    []byte      // a client's address as text, for X-Forwarded-For
	freeEx   []*exchange // exchanges of connections that went idle, for the next to need one
	iov      [4][]byte   // what send writes: a head, its body pieces and kept trailers; or a cache hit's head, headers, body
	trailers []byte      // the kept trailer bytes of a chunked body being forwarded (codec.ChunkedReader.Forward)
	hitBuf   []byte      // a cache hit's per-response headers
	keyBuf   []byte      // a cache key being looked up

	freeHeads []*codec.HeadIndex // storage of kept heads whose requests ended, for the next to wait (keepHead)

	shard          *cache.Shard          // this loop's view of the micro-cache
	waits          map[string]*cacheWait // clients waiting for a fetch, by key
	lastCacheSweep int64

	clients  connList[clientConn]  // every open client connection, for timeouts
	backends connList[backendConn] // backend connections with a request in flight, for response_timeout
	dialing  []*backendConn        // dials in flight, oldest first but for removals (handOver)
	splices  int64                 // response bodies handed to gnet to splice (trySplice)

	sweepRunnable gnet.Runnable

	clientsOpen atomic.Int64 // mirrors clients.len for other goroutines
	quiet       atomic.Bool  // the last sweep found nothing to time: OnTick sweeps it every quietTicks
	sweeps      atomic.Int64 // sweeps run, for tests
	reparses    atomic.Int64 // heads parsed a second time (request: a retry after the head went out), for tests

	// Metrics and the access log (stats.go, accesslog.go).
	st       loopStats                    // only this loop writes; the admin goroutine reads
	ctr      *loopCounters                // per route and server, by registry id; grown by bindTable
	ctrPub   atomic.Pointer[loopCounters] // ctr, for the admin goroutine
	alog     *accessBuf                   // nil: log.access is off
	clockNow int64                        // clock(): read once per callback
	clockOK  bool                         // clockNow is this callback's; settle clears it

	// Callbacks handed to the dialer, bound once (a method value per dial would allocate): they run on
	// the loop from EventLoop.Execute, so they end with settle as every callback does.
	onDialFail func(any, error)
}

func newLoopState(s *Server, el gnet.EventLoop) *loopState {
	ls := &loopState{
		s:       s,
		loop:    el,
		rs:      newResponseSet(time.Now()),
		headBuf: make([]byte, 0, 2*s.headerBuffer+1024),
		pathBuf: make([]byte, 0, s.headerBuffer),
		ipBuf:   make([]byte, 0, 64),
		hitBuf:  make([]byte, 0, 128),
		keyBuf:  make([]byte, 0, s.headerBuffer),
		shard:   cache.NewShard(s.cache),
		waits:   make(map[string]*cacheWait),
	}
	// The header indexes are sized once, from max_headers (restart only: a parse in flight holds views
	// into them), so that parsing never allocates.
	ls.req.Headers = make([]codec.Header, s.maxHeaders)
	ls.resp.Headers = make([]codec.Header, s.maxHeaders)
	ls.lt = newLoopTable(s.tbl.Load())
	ls.bindTable(ls.lt)
	if s.alog != nil {
		ls.alog = &accessBuf{a: s.alog}
	}
	ls.onDialFail = func(ctx any, err error) { ls.dialFailed(ctx, err); ls.settle() }
	ls.sweepRunnable = gnet.RunnableFunc(func(context.Context) error {
		ls.sweep()
		ls.settle()
		return nil
	})
	return ls
}

// current returns this loop's state for the newest table, rebuilding it after a reload or a change of
// a followed name's addresses (swapTable). The old table's idle connections move to the new table's
// pools where their server stays (same upstream, same name, same address); the others are closed,
// their servers gone. Loop only.
func (ls *loopState) current() *loopTable {
	if t := ls.s.tbl.Load(); t != ls.lt.tbl {
		old := ls.lt
		ls.lt = newLoopTable(t)
		ls.bindTable(ls.lt)
		for gi, p := range old.pools {
			ng, _ := ls.lt.groupNamed(old.tbl.groups[gi].Name)
			p.Each(func(_ int, be *backendConn) {
				if ng >= 0 {
					if srv := ls.lt.tbl.groups[ng].ServerLike(be.srv); srv != nil && ls.lt.pools[ng].Put(srv.Index, be) {
						be.lt, be.group, be.srv = ls.lt, ng, srv
						return
					}
				}
				be.state = bsClosing
				_ = be.gc.Close()
			})
		}
	}
	return ls.lt
}

// sweep enforces timeouts and refreshes Date. It runs on the loop every tickInterval, or every quietTicks
// ticks while the loop is quiet (OnTick).
func (ls *loopState) sweep() {
	ls.sweeps.Add(1)
	ls.clockNow, ls.clockOK = max(ls.s.monoNow(), 1), true
	ls.rs.refreshDate(time.Now())
	ls.current()
	now := ls.clockNow
	if now-ls.lastCacheSweep >= int64(time.Second) {
		ls.lastCacheSweep = now
		ls.shard.Sweep(now)
	}
	var idle int64
	for n := ls.clients.head; n != nil; {
		cc := n.owner
		n = n.next
		if cc.state == csHead && cc.filled == 0 {
			idle++
			if cc.exchange != nil {
				ls.freeExchange(cc)
			}
		}
		if cc.deadline != 0 && now >= cc.deadline {
			ls.clientTimedOut(cc)
		} else if cc.held {
			ls.watchSlowBackend(cc)
		} else if cc.state == csClosing && cc.gc.OutboundBuffered() == 0 {
			_ = cc.gc.Close()
		} else if cc.state == csHead && cc.filled == 0 && cc.slabDirty && now-cc.idleSince >= int64(slabReleaseAfter) {
			// An idle keep-alive connection should cost what nginx's does, not a header page.
			cc.slabDirty = false
			ls.s.slabs.Release(cc.slab)
		}
	}
	if len(ls.dialing) > 0 {
		ls.queuedTimeouts()
	}
	for n := ls.backends.head; n != nil; {
		be := n.owner
		n = n.next
		if be.held {
			if cc := be.client; cc != nil && cc.be == be {
				ls.watchSlowClient(be, cc)
			}
		} else if be.splicing {
			ls.spliceWatch(be)
		} else if be.deadline != 0 && now >= be.deadline {
			ls.backendTimedOut(be)
		}
	}
	ls.publishStats(idle)
	ls.quiet.Store(ls.clients.head == nil && ls.backends.head == nil && len(ls.dialing) == 0 && len(ls.waits) == 0)
}

// drain closes idle keep-alive clients and makes busy ones close after their response. Loop only.
//
// With grace > 0 (a handover, handover.go: another process serves new connections) a client waiting for
// a head is closed only once it has waited that long, since it was accepted or its last response went
// out: a keep-alive client that sends its next request meanwhile gets it answered with a close, instead
// of meeting a close, or a reset, as its request arrives; a connection the old process accepted just
// before it let go of its listeners gets its request served, not closed unanswered.
func (ls *loopState) drain(grace time.Duration) {
	now := ls.clock()
	for n := ls.clients.head; n != nil; {
		cc := n.owner
		n = n.next
		if cc.state == csHead && cc.filled == 0 {
			if now < cc.idleSince+int64(grace) {
				cc.headTimer = false // closed quietly at the end of the grace, like an idle one, not answered 408
				ls.armClient(cc)     // deadline.go: what is left of the grace
			} else {
				ls.closeClient(cc)
			}
		}
	}
}

// listNode is embedded by connections kept on a connList. The list links nodes, not connections, so that
// pushing and removing never go through a generic method call: both are inlined where they are used.
type listNode[T any] struct {
	prev, next *listNode[T]
	owner      *T // the connection while it is on a list, else nil
}

// connList is an intrusive doubly linked list: insertion and removal without allocation. Walk it with
// `for n := l.head; n != nil; n = n.next` and n.owner.
type connList[T any] struct {
	head *listNode[T]
	n    int
}

// push puts x, whose node is n, at the head of l; nothing happens if it is on a list already.
func (l *connList[T]) push(n *listNode[T], x *T) {
	if n.owner != nil {
		return
	}
	n.owner, n.prev, n.next = x, nil, l.head
	if l.head != nil {
		l.head.prev = n
	}
	l.head = n
	l.n++
}

// remove takes n off l; nothing happens if it is on no list.
func (l *connList[T]) remove(n *listNode[T]) {
	if n.owner == nil {
		return
	}
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	}
	n.prev, n.next, n.owner = nil, nil, nil
	l.n--
}

// coalesceMax is the most bytes that send copies behind a head so that both leave in one sendto: on the
// 13-byte and 4 KiB loads the kernel's sendmsg path (the message header and iovec copied in and checked)
// and gnet's writev cost more than copying 4 KiB.
const coalesceMax = 4 << 10

// send writes bufs to c in one system call: a head and what follows it (body pieces, a cache hit's
// headers). When what follows the first comes to at most coalesceMax bytes, all are copied into the
// loop's head buffer and go out with one write; otherwise as one writev. bufs[0] may be the head buffer's
// own content (the head just built there). bufs, a slice of ls.iov, is cleared after, so that it keeps
// nothing alive. It returns the write's error (see toClient for what one means). Loop only.
func (ls *loopState) send(c gnet.Conn, bufs [][]byte) (err error) {
	switch len(bufs) {
	case 0:
	case 1:
		_, err = c.Write(bufs[0])
	default:
		rest := 0
		for _, b := range bufs[1:] {
			rest += len(b)
		}
		if rest > coalesceMax {
			_, err = c.Writev(bufs)
			break
		}
		joined := ls.headBuf[:0]
		for _, b := range bufs {
			joined = append(joined, b...)
		}
		ls.headBuf = joined[:0]
		_, err = c.Write(joined)
	}
	clear(bufs)
	return err
}

// toClient sends bufs to cc as send does, and cc.write sends one buffer. A write that fails leaves cc
// mute: our gnet queues the connection's close for after the running callback (patch 14), so cc and its
// exchange stay valid until then, and nothing new starts on it meanwhile (finishClient). No caller has to
// check anything after a write: a mute client only gets writes that go nowhere until OnClose releases it.
// Loop only.
func (ls *loopState) toClient(cc *clientConn, bufs [][]byte) {
	if ls.send(cc.gc, bufs) != nil {
		cc.mute = true
	}
}

func (cc *clientConn) write(b []byte) {
	if _, err := cc.gc.Write(b); err != nil {
		cc.mute = true
	}
}

// discard drops n bytes from c's inbound buffer. gnet's Discard treats n <= 0 as "everything", so a
// zero-length step of a state machine must not reach it.
func discard(c gnet.Conn, n int) {
	if n > 0 {
		_, _ = c.Discard(n)
	}
}

// clock is the loop's time in monotonic ns since s.base, read once per callback: settle clears it as
// each callback returns, so requests answered in one callback share one clock read. Loop only.
func (ls *loopState) clock() int64 {
	if !ls.clockOK {
		ls.clockNow = max(ls.s.monoNow(), 1)
		ls.clockOK = true
	}
	return ls.clockNow
}
