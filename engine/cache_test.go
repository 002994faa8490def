package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"switchflow/config"
)

// cacheOrigin is a loopback origin whose answer the query string dictates, and which counts the requests
// for each target, so that a test sees exactly what reached the backend.
//
//	status=N  cc=Cache-Control  age=N  cookie=1 (Set-Cookie)  vary=1  chunked=1  size=N (body bytes)
//	delay=ms (before answering)
//
// The body starts with "n=<count for this target>;" so that a cached answer is told from a fresh one.
type cacheOrigin struct {
	addr   string
	mu     sync.Mutex
	counts map[string]int
	total  atomic.Int64
	seen   map[string]bool // request methods
}

func startCacheOrigin(t *testing.T) *cacheOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &cacheOrigin{addr: ln.Addr().String(), counts: map[string]int{}, seen: map[string]bool{}}
	srv := &fasthttp.Server{Handler: o.handle, DisableHeaderNamesNormalizing: true, Concurrency: 4096}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return o
}

func (o *cacheOrigin) handle(ctx *fasthttp.RequestCtx) {
	target := string(ctx.Host()) + " " + string(ctx.RequestURI())
	o.mu.Lock()
	o.counts[target]++
	n := o.counts[target]
	o.seen[string(ctx.Method())] = true
	o.mu.Unlock()
	o.total.Add(1)
	q := ctx.QueryArgs()
	if ms, _ := strconv.Atoi(string(q.Peek("delay"))); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if st, _ := strconv.Atoi(string(q.Peek("status"))); st > 0 {
		ctx.SetStatusCode(st)
		if st == 301 {
			ctx.Response.Header.Set("Location", "/elsewhere")
		}
	}
	if v := q.Peek("cc"); len(v) > 0 {
		ctx.Response.Header.Set("Cache-Control", string(v))
	}
	if v := q.Peek("age"); len(v) > 0 {
		ctx.Response.Header.Set("Age", string(v))
	}
	if len(q.Peek("cookie")) > 0 {
		ctx.Response.Header.Set("Set-Cookie", "session=1")
	}
	if len(q.Peek("vary")) > 0 {
		ctx.Response.Header.Set("Vary", "Accept-Encoding")
	}
	ctx.Response.Header.Set("X-Origin-Date", "kept")
	body := []byte(fmt.Sprintf("n=%d;", n))
	if size, _ := strconv.Atoi(string(q.Peek("size"))); size > len(body) {
		body = append(body, bigBody(size-len(body))...)
	}
	if len(q.Peek("chunked")) > 0 {
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for i := 0; i < len(body); i += 1000 {
				_, _ = w.Write(body[i:min(i+1000, len(body))])
				_ = w.Flush()
			}
		})
		return
	}
	ctx.SetBody(body)
}

// methods lists the request methods the origin has seen, sorted, comma-separated.
func (o *cacheOrigin) methods() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ms []string
	for m := range o.seen {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return strings.Join(ms, ",")
}

func (o *cacheOrigin) count(host, target string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[host+" "+target]
}

func cacheConfig(o *cacheOrigin, ttl, maxSize string) string {
	return fmt.Sprintf(`
[cache]
max_size = %q

[[upstream]]
name = "app"
servers = [ { addr = %q } ]
response_timeout = "3s"

[[route]]
path_prefix = "/"
upstream = "app"
cache_ttl = %q

[[route]]
path_prefix = "/nocache/"
upstream = "app"
`, maxSize, o.addr, ttl)
}

// get sends one request on c and returns the response and body.
func get(t *testing.T, c net.Conn, br *bufio.Reader, method, target, extra string) (*http.Response, string) {
	t.Helper()
	resp, body := roundTrip(t, c, br, method+" "+target+" HTTP/1.1\r\nHost: cache.test\r\n"+extra+"\r\n")
	return resp, string(body)
}

func TestCacheHitAndMiss(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startCacheOrigin(t)
		addr, _ := startProxy(t, loops, cacheConfig(o, "30s", "16MiB"))
		c, br := dial(t, addr)

		resp, body := get(t, c, br, "GET", "/a", "")
		if resp.StatusCode != 200 || body != "n=1;" || resp.Header.Get("X-Cache") != "MISS" {
			t.Fatalf("first: %d %q X-Cache=%q", resp.StatusCode, body, resp.Header.Get("X-Cache"))
		}
		for i := 0; i < 3; i++ {
			resp, body = get(t, c, br, "GET", "/a", "")
			if resp.StatusCode != 200 || body != "n=1;" || resp.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("repeat %d: %d %q X-Cache=%q", i, resp.StatusCode, body, resp.Header.Get("X-Cache"))
			}
			if resp.Header.Get("Age") != "0" || resp.Header.Get("Date") == "" || resp.Header.Get("X-Origin-Date") != "kept" {
				t.Fatalf("hit headers: %v", resp.Header)
			}
			if len(resp.Header.Values("Date")) != 1 || len(resp.Header.Values("Content-Length")) != 1 {
				t.Fatalf("hit repeats Date or Content-Length: %v", resp.Header)
			}
		}
		// Other connections (other loops with loops=4) find it in the shared store.
		for i := 0; i < 8; i++ {
			c2, br2 := dial(t, addr)
			if resp, body := get(t, c2, br2, "GET", "/a", ""); body != "n=1;" || resp.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("conn %d: %q %q", i, body, resp.Header.Get("X-Cache"))
			}
			c2.Close()
		}
		// HEAD is served from the cached GET: same head, no body.
		resp, body = get(t, c, br, "HEAD", "/a", "")
		if resp.Header.Get("X-Cache") != "HIT" || body != "" || resp.ContentLength != 4 {
			t.Fatalf("HEAD: X-Cache=%q body=%q CL=%d", resp.Header.Get("X-Cache"), body, resp.ContentLength)
		}
		if n := o.count("cache.test", "/a"); n != 1 {
			t.Fatalf("origin saw /a %d times, want 1", n)
		}
		// The key is host and target: another query or host is another entry.
		if _, body := get(t, c, br, "GET", "/a?x=1", ""); body != "n=1;" {
			t.Fatalf("other target: %q", body)
		}
		resp, _ = roundTrip(t, c, br, "GET /a HTTP/1.1\r\nHost: other.test\r\n\r\n")
		if resp.Header.Get("X-Cache") != "MISS" {
			t.Fatalf("other host: %q", resp.Header.Get("X-Cache"))
		}
		// Requests that must bypass: they reach the origin and say so.
		for _, tc := range []struct{ method, extra string }{
			{"GET", "Cookie: a=1\r\n"},
			{"GET", "Authorization: Bearer x\r\n"},
			{"POST", "Content-Length: 0\r\n"},
			{"DELETE", ""},
		} {
			before := o.count("cache.test", "/a")
			resp, _ := get(t, c, br, tc.method, "/a", tc.extra)
			if resp.Header.Get("X-Cache") != "BYPASS" || o.count("cache.test", "/a") != before+1 {
				t.Fatalf("%s %q: X-Cache=%q, origin %d -> %d", tc.method, tc.extra, resp.Header.Get("X-Cache"), before, o.count("cache.test", "/a"))
			}
		}
		// A route without cache_ttl says nothing about the cache.
		if resp, _ := get(t, c, br, "GET", "/nocache/x", ""); resp.Header.Get("X-Cache") != "" {
			t.Fatalf("uncached route has X-Cache %q", resp.Header.Get("X-Cache"))
		}
		// HTTP/1.0 clients get keep-alive spelled out, or a close.
		resp, _ = roundTrip(t, c, br, "GET /a HTTP/1.0\r\nHost: cache.test\r\nConnection: keep-alive\r\n\r\n")
		if resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("1.0 keep-alive hit: %v", resp.Header)
		}
		resp, _ = roundTrip(t, c, br, "GET /a HTTP/1.1\r\nHost: cache.test\r\nConnection: close\r\n\r\n")
		if resp.Header.Get("X-Cache") != "HIT" || !resp.Close {
			t.Fatalf("close hit: %v", resp.Header)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("connection not closed after Connection: close hit: %v", err)
		}
	})
}

func TestCachePipelinedHits(t *testing.T) {
	o := startCacheOrigin(t)
	addr, _ := startProxy(t, 1, cacheConfig(o, "30s", "16MiB"))
	c, br := dial(t, addr)
	get(t, c, br, "GET", "/p", "")
	req := "GET /p HTTP/1.1\r\nHost: cache.test\r\n\r\n"
	if _, err := io.WriteString(c, strings.Repeat(req, 20)+"GET /q HTTP/1.1\r\nHost: cache.test\r\n\r\n"+req); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 22; i++ {
		resp, body := readResponse(t, br, false)
		want := "HIT"
		if i == 20 {
			want = "MISS"
		}
		if resp.Header.Get("X-Cache") != want || body == nil {
			t.Fatalf("response %d: X-Cache=%q", i, resp.Header.Get("X-Cache"))
		}
	}
	if o.total.Load() != 2 {
		t.Fatalf("origin saw %d requests, want 2", o.total.Load())
	}
}

func TestCacheExpiryAndMaxAge(t *testing.T) {
	o := startCacheOrigin(t)
	addr, _ := startProxy(t, 2, cacheConfig(o, "3s", "16MiB"))
	c, br := dial(t, addr)

	// cache_ttl: a hit until it runs out, with Age counting up.
	get(t, c, br, "GET", "/ttl", "")
	time.Sleep(1100 * time.Millisecond)
	resp, body := get(t, c, br, "GET", "/ttl", "")
	if body != "n=1;" || resp.Header.Get("Age") != "1" {
		t.Fatalf("after 1.1 s: %q Age=%q", body, resp.Header.Get("Age"))
	}
	time.Sleep(2 * time.Second)
	if resp, body := get(t, c, br, "GET", "/ttl", ""); body != "n=2;" || resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("after the TTL: %q %q", body, resp.Header.Get("X-Cache"))
	}

	// max-age shorter than the TTL wins; s-maxage wins over max-age; the origin's Age counts.
	for _, target := range []string{"/ma?cc=max-age=1", "/sm?cc=max-age=30,%20s-maxage=1", "/age?cc=max-age=6&age=5"} {
		get(t, c, br, "GET", target, "")
		resp, body := get(t, c, br, "GET", target, "")
		if body != "n=1;" || resp.Header.Get("X-Cache") != "HIT" {
			t.Fatalf("%s at once: %q %q", target, body, resp.Header.Get("X-Cache"))
		}
		if strings.HasPrefix(target, "/age") && resp.Header.Get("Age") != "5" {
			t.Fatalf("%s: Age=%q, want the origin's 5", target, resp.Header.Get("Age"))
		}
	}
	time.Sleep(1200 * time.Millisecond)
	for _, target := range []string{"/ma?cc=max-age=1", "/sm?cc=max-age=30,%20s-maxage=1", "/age?cc=max-age=6&age=5"} {
		if resp, body := get(t, c, br, "GET", target, ""); body != "n=2;" || resp.Header.Get("X-Cache") != "MISS" {
			t.Fatalf("%s after 1.2 s: %q %q", target, body, resp.Header.Get("X-Cache"))
		}
	}
}

func TestCacheNeverStores(t *testing.T) {
	o := startCacheOrigin(t)
	addr, _ := startProxy(t, 1, cacheConfig(o, "30s", "16MiB"))
	c, br := dial(t, addr)
	never := []string{
		"/ns?cc=no-store", "/pr?cc=private", "/nc?cc=no-cache", "/nc2?cc=public,%20No-Cache",
		"/ma0?cc=max-age=0", "/ck?cookie=1", "/vy?vary=1", "/s500?status=500", "/s302?status=302",
		"/s204?status=204", "/old?cc=max-age=5&age=9",
	}
	for _, target := range never {
		for i := 1; i <= 2; i++ {
			resp, body := get(t, c, br, "GET", target, "")
			if !strings.HasPrefix(body, fmt.Sprintf("n=%d;", i)) && resp.StatusCode != 204 {
				t.Fatalf("%s request %d: %q", target, i, body)
			}
			if resp.Header.Get("X-Cache") != "MISS" {
				t.Fatalf("%s request %d: X-Cache=%q", target, i, resp.Header.Get("X-Cache"))
			}
		}
		if n := o.count("cache.test", target); n != 2 {
			t.Fatalf("%s reached the origin %d times, want 2", target, n)
		}
	}
	// 301, 404 and a chunked 200 are kept (the chunked one de-chunked, with a length).
	for _, target := range []string{"/s301?status=301", "/s404?status=404", "/ch?chunked=1&size=10000"} {
		first, b1 := get(t, c, br, "GET", target, "")
		resp, b2 := get(t, c, br, "GET", target, "")
		if resp.Header.Get("X-Cache") != "HIT" || b1 != b2 || resp.StatusCode != first.StatusCode {
			t.Fatalf("%s: X-Cache=%q status %d/%d, bodies equal %v", target, resp.Header.Get("X-Cache"), first.StatusCode, resp.StatusCode, b1 == b2)
		}
		if strings.Contains(target, "chunked") && (resp.ContentLength != 10000 || len(resp.TransferEncoding) != 0) {
			t.Fatalf("cached chunked response: CL %d TE %v", resp.ContentLength, resp.TransferEncoding)
		}
	}
}

func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startCacheOrigin(t)
		addr, srv := startProxy(t, loops, cacheConfig(o, "30s", "16MiB"))
		const n = 200
		type result struct {
			status int
			body   string
			xcache string
			err    error
		}
		run := func(target string) []result {
			conns := make([]net.Conn, n)
			for i := range conns {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns[i] = c
			}
			res := make([]result, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, c := range conns {
				wg.Add(1)
				go func(i int, c net.Conn) {
					defer wg.Done()
					<-start
					_ = c.SetDeadline(time.Now().Add(15 * time.Second))
					if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: cache.test\r\n\r\n"); err != nil {
						res[i].err = err
						return
					}
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						res[i].err = err
						return
					}
					b, err := io.ReadAll(resp.Body)
					res[i] = result{resp.StatusCode, string(b), resp.Header.Get("X-Cache"), err}
				}(i, c)
			}
			close(start)
			wg.Wait()
			return res
		}

		res := run("/slow?delay=200")
		misses := 0
		for i, r := range res {
			if r.err != nil || r.status != 200 || r.body != "n=1;" {
				t.Fatalf("client %d: %+v", i, r)
			}
			if r.xcache == "MISS" {
				misses++
			}
		}
		if got := o.count("cache.test", "/slow?delay=200"); got != 1 {
			t.Fatalf("origin saw %d requests for one key under %d concurrent clients, want 1", got, n)
		}
		if misses != 1 {
			t.Fatalf("%d MISS answers, want 1 (the rest HIT)", misses)
		}

		// A response that may not be kept releases the waiters to the backend: all are answered.
		res = run("/slowns?delay=200&cc=no-store")
		for i, r := range res {
			if r.err != nil || r.status != 200 || r.xcache != "MISS" {
				t.Fatalf("no-store client %d: %+v", i, r)
			}
		}
		// The waiters' heads went out from the offsets kept when they began to wait, not parsed again.
		if got := o.count("cache.test", "/slowns?delay=200&cc=no-store"); got != n {
			t.Fatalf("origin saw %d no-store requests, want %d", got, n)
		}
		if r := reparses(t, srv); r != 0 {
			t.Fatalf("%d request heads parsed a second time, want none", r)
		}
	})
}

func TestCacheEvictionBoundsMemory(t *testing.T) {
	o := startCacheOrigin(t)
	const maxSize = 2 << 20
	addr, srv := startProxy(t, 2, cacheConfig(o, "60s", strconv.Itoa(maxSize)))
	c, br := dial(t, addr)
	get(t, c, br, "GET", "/hot?size=16384", "")

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const keys = 1000 // 16 MiB of distinct responses through a 2 MiB cache
	for i := 0; i < keys; i++ {
		if _, body := get(t, c, br, "GET", fmt.Sprintf("/k%d?size=16384", i), ""); len(body) != 16384 {
			t.Fatalf("key %d: %d bytes", i, len(body))
		}
		if i%10 == 0 { // a key in use is kept: it is the least recently used that goes
			if resp, _ := get(t, c, br, "GET", "/hot?size=16384", ""); resp.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("the hot key was evicted after %d keys", i)
			}
		}
	}
	time.Sleep(1200 * time.Millisecond) // one shard sweep: evicted entries are let go
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := srv.cache.Bytes()
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("store holds %d bytes in %d entries (max_size %d), %d evictions; heap growth %.2f MiB",
		held, srv.cache.Len(), maxSize, srv.cache.Evictions.Load(), float64(growth)/(1<<20))
	if held > maxSize || held < maxSize/2 {
		t.Fatalf("store holds %d bytes, want at most max_size %d and not much less", held, maxSize)
	}
	if srv.cache.Evictions.Load() == 0 {
		t.Fatal("no evictions")
	}
	if growth > 2*maxSize {
		t.Fatalf("heap grew %d bytes with a %d-byte cache", growth, maxSize)
	}
	// The first keys were evicted: asking again reaches the origin.
	if resp, body := get(t, c, br, "GET", "/k0?size=16384", ""); resp.Header.Get("X-Cache") != "MISS" || !strings.HasPrefix(body, "n=2;") {
		t.Fatalf("evicted key: %q %q", resp.Header.Get("X-Cache"), body[:8])
	}
}

func TestCacheLargeHitToSlowReader(t *testing.T) {
	o := startCacheOrigin(t)
	addr, _ := startProxy(t, 1, `io_buffer = "64KiB"
`+cacheConfig(o, "60s", "64MiB"))
	c, br := dial(t, addr)
	const size = 4 << 20
	target := "/big?size=" + strconv.Itoa(size)
	_, want := get(t, c, br, "GET", target, "")
	// A second client reads the 4 MiB hit slowly; a third, fast, is not held up by it.
	slow, slowBr := dial(t, addr)
	_ = slow.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(slow, "GET "+target+" HTTP/1.1\r\nHost: cache.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(slowBr, nil)
	if err != nil || resp.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("slow hit: %v %v", err, resp)
	}
	got := make([]byte, 0, size)
	buf := make([]byte, 256<<10)
	for len(got) < size {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // ~12 MiB/s at most
	}
	if string(got) != want {
		t.Fatalf("slow reader got %d bytes, not the entry's %d", len(got), len(want))
	}
	if _, body := get(t, slow, slowBr, "GET", target, ""); body != want {
		t.Fatal("the connection is not usable after a large hit")
	}
}

func TestCacheHitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	o := startCacheOrigin(t)
	addr, _ := startProxy(t, 1, cacheConfig(o, "60s", "16MiB"))
	c, br := dial(t, addr)
	get(t, c, br, "GET", "/json?size=4096", "")
	resp, _ := get(t, c, br, "GET", "/json?size=4096", "")
	if resp.Header.Get("X-Cache") != "HIT" {
		t.Fatal("not a hit")
	}
	req := []byte("GET /json?size=4096 HTTP/1.1\r\nHost: cache.test\r\n\r\n")
	// The response's exact length: one more hit read through net/http.
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	var sized strings.Builder
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Write(&sized)
	buf := make([]byte, 64<<10)
	// Read until the blank line, then the 4096-byte body.
	whole := func(b []byte) bool { i := indexHeadEnd(b); return i >= 0 && len(b)-i >= 4096 }
	readOne := func() { writeReadUntil(t, c, br, buf, req, whole) }
	readOne()
	allocs := testing.AllocsPerRun(2000, readOne)
	t.Logf("allocations per cache hit, whole process (client included): %.3f", allocs)
	if allocs != 0 {
		t.Fatalf("a cache hit allocates: %.2f allocations per request", allocs)
	}
}

func indexHeadEnd(b []byte) int {
	for i := 0; i+3 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '\r' && b[i+3] == '\n' {
			return i + 4
		}
	}
	return -1
}

// TestCacheHeadMissFills: SPEC 3.6 keeps HEAD responses. A HEAD that misses fetches the GET (as nginx's
// proxy_cache_convert_head does), answers with the head alone, and keeps the response: the next HEAD and
// GET are hits, and the origin saw one GET.
func TestCacheHeadMissFills(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startCacheOrigin(t)
		addr, _ := startProxy(t, loops, cacheConfig(o, "10s", "1MiB"))
		c, br := dial(t, addr)
		for _, target := range []string{"/h", "/hc?chunked=1&size=3000"} {
			resp, body := get(t, c, br, "HEAD", target, "")
			if resp.StatusCode != 200 || body != "" || resp.Header.Get("X-Cache") != "MISS" {
				t.Fatalf("%s first HEAD: %d %q X-Cache=%q", target, resp.StatusCode, body, resp.Header.Get("X-Cache"))
			}
			resp, body = get(t, c, br, "HEAD", target, "")
			if resp.StatusCode != 200 || body != "" || resp.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("%s second HEAD: %d %q X-Cache=%q", target, resp.StatusCode, body, resp.Header.Get("X-Cache"))
			}
			resp, body = get(t, c, br, "GET", target, "")
			if resp.StatusCode != 200 || !strings.HasPrefix(body, "n=1;") || resp.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("%s GET after HEAD: %d %.20q X-Cache=%q", target, resp.StatusCode, body, resp.Header.Get("X-Cache"))
			}
			if n := o.count("cache.test", target); n != 1 {
				t.Fatalf("%s: origin saw %d requests, want 1", target, n)
			}
		}
		if got := o.methods(); got != "GET" {
			t.Fatalf("origin saw methods %q, want GET only", got)
		}
	})
}

// writeReadUntil writes req on c and reads into buf until done reports the answer complete. It
// allocates nothing itself, for the tests that count the whole process's allocations per request.
func writeReadUntil(t *testing.T, c net.Conn, br *bufio.Reader, buf, req []byte, done func([]byte) bool) {
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		m, err := br.Read(buf[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += m
		if done(buf[:n]) {
			return
		}
	}
}

// TestCacheReloadMaxSize: SPEC 1 has a reload apply cache settings. A reload that sets [cache] max_size
// to 0 empties the cache and keeps nothing more; a reload back to a size caches again. A reload adding
// [tls] whose certificate files are missing is refused, and the cache stays as it was.
func TestCacheReloadMaxSize(t *testing.T) {
	o := startCacheOrigin(t)
	addr, srv := startProxy(t, 2, cacheConfig(o, "30s", "16MiB"))
	reload := func(maxSize, extra string) error {
		t.Helper()
		cfg, err := config.Parse([]byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 2\n", addr) + cacheConfig(o, "30s", maxSize) + extra))
		if err != nil {
			t.Fatal(err)
		}
		return srv.Reload(cfg)
	}
	c, br := dial(t, addr)
	want := func(target, xcache string) {
		t.Helper()
		if resp, body := get(t, c, br, "GET", target, ""); resp.Header.Get("X-Cache") != xcache {
			t.Fatalf("GET %s: X-Cache=%q (%q), want %s", target, resp.Header.Get("X-Cache"), body, xcache)
		}
	}
	want("/a", "MISS")
	want("/a", "HIT")
	if err := reload("16MiB", "[tls]\ncertificates = [ { cert = \"a.crt\", key = \"a.key\" } ]\n"); err == nil {
		t.Fatalf("reload with [tls]: %v", err)
	}
	want("/a", "HIT")
	if err := reload("0", ""); err != nil {
		t.Fatal(err)
	}
	want("/a", "MISS")
	want("/a", "MISS")
	if n := srv.cache.Len(); n != 0 {
		t.Fatalf("%d entries under max_size 0", n)
	}
	if err := reload("1MiB", ""); err != nil {
		t.Fatal(err)
	}
	want("/a", "MISS")
	want("/a", "HIT")
}
