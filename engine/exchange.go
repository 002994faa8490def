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
	reqBody       codec.BodyKind
	reqLength     int64 // the request's Content-Length (-1: none), for a replay
	reqRemaining  int64 // Content-Length bytes still to forward
	reqSeen       int64 // chunked payload bytes forwarded, for max_body_size
	reqDone       bool  // whole request (head and body) forwarded
	bodyFromConn  bool  // some body bytes were read past the slab: the request cannot be replayed
	chunked       codec.ChunkedReader
	head          *codec.HeadIndex // the parsed head as offsets into the slab while it is kept (keepHead); nil otherwise
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

	// The client's address as text (clientIP), kept while the connection keeps its exchange.
	ipText [len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")]byte
	ipLen  uint8

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

// settle ends every callback: the clock is read afresh by the next one, and the parse scratch never
// outlives the callback that filled it. Loop only.
func (ls *loopState) settle() {
	ls.clockOK = false
	ls.reqOwner = nil
}

// freeExchange takes back the exchange of cc, a connection idle between requests, for the next request
// of any connection of the loop. The sweep calls it: a busy keep-alive connection keeps its exchange from
// one request to the next (waitHead resets it), and one that goes idle gives it back within a tick.
// Loop only, never with a caller of cc's on the stack.
func (ls *loopState) freeExchange(cc *clientConn) {
	ex := cc.exchange
	cc.exchange = nil
	if len(ls.freeEx) < freeExchangesKept {
		*ex = exchange{}
		ls.freeEx = append(ls.freeEx, ex)
	}
}
