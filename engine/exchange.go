// The exchange: what a client connection's request in flight needs until its response ends, taken
// from the loop's free list when a head parses and given back when the callback that ended it returns.

package engine

import (
	"switchflow/cache"
	"switchflow/codec"
	"switchflow/upstream"
)

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
	headKept      bool // head holds this request's head (keepHead)
	reqBody       codec.BodyKind
	reqLength     int64 // the request's Content-Length (-1: none), for a replay
	reqRemaining  int64 // Content-Length bytes still to forward
	reqSeen       int64 // chunked payload bytes forwarded, for max_body_size
	reqDone       bool  // whole request (head and body) forwarded
	bodyFromConn  bool  // some body bytes were read past the slab: the request cannot be replayed
	chunked       codec.ChunkedReader
	head          *codec.HeadIndex // the parsed head as offsets into the slab, while headKept (keepHead)
	tried         uint64           // servers tried for this request, bit per server index
	keyHash       uint64           // balance = "hash": the hash of the request's hash_key (hashkey.go)
	attempts      int
	be            *backendConn
	respStarted   bool // response head sent to the client
	closeAfterRes bool
	freeRetries   int
	cause         failure // how the last backend failed this request (failure.go); 0: none

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
	if ls.reqOwner != nil {
		ls.reqOwner = nil // the parse scratch never outlives the callback that filled it
	}
	if len(ls.idled) != 0 {
		ls.freeIdled()
	}
}

// freeIdled takes the exchanges back from the connections settle found waiting for a next request.
func (ls *loopState) freeIdled() {
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
