package engine

import (
	"sync"
	"sync/atomic"

	"switchflow/admin"
	"switchflow/codec"
	"switchflow/upstream"
)

// Metrics (SPEC 4). Every counter is written by one event loop only, in that loop's own blocks (loopStats,
// loopCounters): uncontended atomic adds, no lock, no allocation per request. The admin goroutine Loads
// them and sums over the loops (Server.Snapshot); a figure read while a loop writes may be a request
// behind, never torn.
//
// Per-route and per-server counters are indexed by ids from the server's statRegistry, which gives every
// route name (host + path_prefix) and every (upstream name, server address) an id for the life of the
// process: a reload's new table maps each of its routes and servers to the ids of the same names, so
// their counts carry across a reload, also for requests that were routed by the old table and end after
// it. A loop's arrays grow (copied, then swapped in) when a reload brings names it has no slot for.
// Routes and servers a reload removes keep their ids but are no longer reported.
//
// Every response the proxy finishes, whatever made it (forwarded, a cache hit, a prebuilt error, a
// tunnel's end, a request cut short), goes through record, once: it feeds the counters, the duration
// histogram and the access log.

// durationBounds are the request duration histogram's upper bounds, in seconds (Prometheus' defaults).
var durationBounds = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

var durationBoundsNs = func() (b [len(durationBounds)]int64) {
	for i, s := range durationBounds {
		b[i] = int64(s * 1e9)
	}
	return b
}()

// statusClientClosed is what a request that got no response is counted and logged as (nginx's 499): the
// client closed, or the proxy closed the connection, before any response byte was sent.
const statusClientClosed = 499

// numClasses: status classes 1xx-5xx at their digit, anything else at 0 (admin.Classes).
const numClasses = len(admin.Classes{})

type classCounters [numClasses]atomic.Uint64

func statusClass(status int) int {
	if c := status / 100; c >= 1 && c <= 5 {
		return c
	}
	return 0
}

// loopStats are one loop's figures that are not per route or server. Only the loop writes them.
type loopStats struct {
	dur         [len(durationBounds) + 1]atomic.Uint64 // requests by duration bucket; the last is +Inf
	durSum      atomic.Int64                           // ns
	bytesIn     atomic.Uint64                          // read from clients
	bytesOut    atomic.Uint64                          // written to clients
	refused     atomic.Uint64                          // connections answered 503 at max_connections
	clientsIdle atomic.Int64                           // counted by each sweep
	logDropped  atomic.Uint64                          // access log lines dropped
}

// serverCounters are one loop's counts for one upstream server.
type serverCounters struct {
	req  classCounters
	open atomic.Int64 // backend connections open (dialed and not yet closed), idle and held included
	idle atomic.Int64 // in the loop's keep-alive pool, counted by each sweep
}

// loopCounters are one loop's per-route and per-server counts, by registry id. The loop writes them
// through loopState.ctr; other goroutines find them through loopState.ctrPub.
type loopCounters struct {
	routes  []classCounters // id 0: no route
	servers []serverCounters
}

// tableIDs maps a table's routes and servers to registry ids.
type tableIDs struct {
	route    []int   // by routeRT.index
	server   [][]int // by group, then Server.Index
	nRoutes  int     // registry size when bound: every id above is below these
	nServers int
}

type serverKey struct{ group, server string }

// statRegistry hands out the ids. Locked only when a table is bound (start, reload) and per scrape.
type statRegistry struct {
	mu      sync.Mutex
	routes  map[string]int
	servers map[serverKey]int
	nRoutes int
	nServs  int
	lastTbl *table
	lastIDs *tableIDs
}

// bindStats returns the ids of t's routes and servers, giving new names new ids. Safe from any goroutine.
func (s *Server) bindStats(t *table) *tableIDs {
	r := &s.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastTbl == t {
		return r.lastIDs
	}
	if r.routes == nil {
		r.routes = map[string]int{}
		r.servers = map[serverKey]int{}
		r.nRoutes = 1 // id 0: no route
	}
	ids := &tableIDs{route: make([]int, len(t.cfg.Routes)), server: make([][]int, len(t.groups))}
	for _, rt := range t.routeList() {
		id, ok := r.routes[rt.name]
		if !ok {
			id = r.nRoutes
			r.nRoutes++
			r.routes[rt.name] = id
		}
		ids.route[rt.index] = id
	}
	for gi, g := range t.groups {
		ids.server[gi] = make([]int, len(g.Servers))
		for si, srv := range g.Servers {
			k := serverKey{g.Name, srv.Name}
			id, ok := r.servers[k]
			if !ok {
				id = r.nServs
				r.nServs++
				r.servers[k] = id
			}
			ids.server[gi][si] = id
		}
	}
	ids.nRoutes, ids.nServers = r.nRoutes, r.nServs
	r.lastTbl, r.lastIDs = t, ids
	return ids
}

// routeList returns t's routes in configuration order.
func (t *table) routeList() []*routeRT {
	out := make([]*routeRT, len(t.cfg.Routes))
	add := func(rs []*routeRT) {
		for _, r := range rs {
			if r.index < len(out) {
				out[r.index] = r
			}
		}
	}
	add(t.routes.any)
	for _, rs := range t.routes.exact {
		add(rs)
	}
	for _, rs := range t.routes.wild {
		add(rs)
	}
	n := 0
	for _, r := range out {
		if r != nil {
			out[n] = r
			n++
		}
	}
	return out[:n]
}

// bindTable gives lt its registry ids and makes sure the loop's counters have a slot for each. Loop only.
func (ls *loopState) bindTable(lt *loopTable) {
	ids := ls.s.bindStats(lt.tbl)
	lt.ids = ids
	old := ls.ctr
	if old != nil && len(old.routes) >= ids.nRoutes && len(old.servers) >= ids.nServers {
		return
	}
	c := &loopCounters{routes: make([]classCounters, ids.nRoutes), servers: make([]serverCounters, ids.nServers)}
	if old != nil {
		// Only this loop writes old: nothing is added to it between the copy and the swap.
		for i := range old.routes {
			for k := range old.routes[i] {
				c.routes[i][k].Store(old.routes[i][k].Load())
			}
		}
		for i := range old.servers {
			o, n := &old.servers[i], &c.servers[i]
			for k := range o.req {
				n.req[k].Store(o.req[k].Load())
			}
			n.open.Store(o.open.Load())
			n.idle.Store(o.idle.Load())
		}
	}
	ls.ctr = c
	ls.ctrPub.Store(c)
}

// serverCtr is the loop's counters for be's server.
func (ls *loopState) serverCtr(be *backendConn) *serverCounters {
	return &ls.ctr.servers[be.lt.ids.server[be.group][be.srv.Index]]
}

// beginRequest marks cc's request as begun (its head is parsed): it will be recorded exactly once.
func (ls *loopState) beginRequest(cc *clientConn) {
	cc.start = ls.clock()
	cc.status, cc.respHead, cc.bodyLen, cc.bodySent, cc.srv = 0, 0, 0, 0, nil
}

// record counts one finished response to cc and writes its access log line: status, body bytes (for
// the access log), out (every byte written to the client for it, head included), with the route, the
// server of the last attempt and the duration from the exchange. A request whose head was never parsed
// (400, 408, 414, 431 ...) counts under no route, timed from its head's first byte. The one place where
// responses are counted. Loop only; allocates nothing.
func (ls *loopState) record(cc *clientConn, status int, body, out int64) {
	now := ls.clock()
	parsed := cc.exchange != nil && cc.start != 0
	var (
		start int64
		route *routeRT
		srv   *upstream.Server
		lt    *loopTable
	)
	if parsed {
		start, route, srv, lt = cc.start, cc.route, cc.srv, cc.lt
		cc.start = 0
	} else {
		start = ls.headStart(cc, now)
	}
	d := max(now-start, 0)
	st := &ls.st
	i := 0
	for i < len(durationBoundsNs) && d > durationBoundsNs[i] {
		i++
	}
	st.dur[i].Add(1)
	st.durSum.Add(d)
	if out > 0 {
		st.bytesOut.Add(uint64(out))
	}
	class := statusClass(status)
	rid := 0
	if route != nil && lt != nil && lt.ids != nil {
		rid = lt.ids.route[route.index]
		if srv != nil {
			ls.ctr.servers[lt.ids.server[route.group][srv.Index]].req[class].Add(1)
		}
	}
	ls.ctr.routes[rid][class].Add(1)
	if ls.alog != nil {
		ls.logAccess(cc, parsed, status, body, d, route, srv, now)
	}
}

// headStart is when the head of a request refused before it was parsed began: read_header_timeout
// before its deadline (the first byte, or the accept for a connection's first request).
func (ls *loopState) headStart(cc *clientConn, now int64) int64 {
	if cc.state != csHead || !cc.headTimer {
		return now
	}
	rht := int64(ls.lt.tbl.readHeaderTimeout)
	if cc.deadline != 0 {
		return min(cc.deadline-rht, now)
	}
	return now - rht // 408: the deadline passed (clientTimedOut cleared it)
}

// recordPrebuilt records a prebuilt response b for status, about to be written to cc.
func (ls *loopState) recordPrebuilt(cc *clientConn, status int, b []byte, keepAlive bool) {
	ls.logRefusal(cc, status, nil) // at debug only: why
	ls.record(cc, status, int64(len(b)-ls.rs.headLen(status, keepAlive)), int64(len(b)))
}

// recordExchange records cc's request as it ends (endExchange): the status sent, else 499, and the head
// and body bytes known to have been sent, whether the response completed or not (a client or backend
// gone mid-response, a tunnel's end, a request never answered). Nothing if the request was recorded
// already (a prebuilt answer: recordPrebuilt).
func (ls *loopState) recordExchange(cc *clientConn) {
	if cc.exchange == nil || cc.start == 0 {
		return
	}
	if !cc.respStarted || cc.status == 0 {
		ls.record(cc, statusClientClosed, 0, 0)
		return
	}
	out := int64(cc.respHead) + cc.bodySent
	if cc.status == 101 {
		out = 0 // tunnelCopy counted the tunnel's bytes as they went
	}
	ls.record(cc, int(cc.status), cc.bodySent, out)
}

// noteResponse keeps what record needs of a forwarded response head written to cc: its status, the head's
// length and the declared body length. Called as the head is sent.
func (ls *loopState) noteResponse(cc *clientConn, resp *codec.Response, headLen int) {
	cc.status = uint16(resp.Status)
	cc.respHead = int32(headLen)
	cc.bodyLen = resp.ContentLength
}

// noteProgress sets cc.bodySent to the body bytes be has forwarded to cc so far: a Content-Length body's
// bytes, a chunked body's bytes with their framing (as nginx's $body_bytes_sent; a chunked body de-chunked
// for an HTTP/1.0 client counts its framing too). A body that ends with the backend's close is not
// counted. A spliced body counts the bytes gnet has written to the client (Conn.SplicedBytes).
func (ls *loopState) noteProgress(cc *clientConn, be *backendConn) {
	if cc == nil || be == nil || cc.exchange == nil || !cc.respStarted || !be.headDone || cc.status == 101 || cc.headAsGet {
		return
	}
	switch be.body {
	case codec.BodyLength:
		left := be.remaining
		if be.splicing && be.gc != nil {
			left -= be.gc.SplicedBytes() // be.remaining stands still while gnet splices
		}
		cc.bodySent = cc.bodyLen - left
	case codec.BodyChunked:
		cc.bodySent = be.chunked.Consumed() - be.chunked.Dropped() // trailer fields left out were not sent
	}
}

// backendOpenedStat and backendGone count backend connections open per server: from the dial's OnOpen to
// the socket's close. Loop only.
func (ls *loopState) backendOpenedStat(be *backendConn) {
	if !be.statOpen {
		be.statOpen = true
		ls.serverCtr(be).open.Add(1)
	}
}

func (ls *loopState) backendGone(be *backendConn) {
	if be.statOpen {
		be.statOpen = false
		ls.serverCtr(be).open.Add(-1)
	}
}

// publishStats runs from the sweep: the figures that are cheaper to count every 100 ms than to keep
// exact on every change (idle clients, idle pooled connections), and the access log's buffer.
func (ls *loopState) publishStats(idleClients int64) {
	ls.st.clientsIdle.Store(idleClients)
	lt := ls.lt
	if lt.ids != nil {
		for gi, p := range lt.pools {
			for si, id := range lt.ids.server[gi] {
				ls.ctr.servers[id].idle.Store(int64(p.ServerLen(si)))
			}
		}
	}
	if ls.alog != nil {
		ls.alog.flush(&ls.st)
	}
}

// ReopenLogs makes the access log reopen its file (SIGHUP, for logrotate). Safe from any goroutine.
func (s *Server) ReopenLogs() {
	if s.alog != nil {
		s.alog.reopenFile()
	}
}
