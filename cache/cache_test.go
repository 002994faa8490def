package cache

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchflow/codec"
)

func parseResp(t *testing.T, raw string) *codec.Response {
	t.Helper()
	var r codec.Response
	if _, err := codec.ParseResponse([]byte(raw), &r); err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return &r
}

func parseReq(t *testing.T, raw string) *codec.Request {
	t.Helper()
	var r codec.Request
	if _, err := codec.ParseRequest([]byte(raw), &r); err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return &r
}

func TestRequestCacheable(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nauthorization: Basic x\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"POST / HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", false},
	} {
		if got := RequestCacheable(parseReq(t, tc.raw)); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestResponseTTL(t *testing.T) {
	const ttl = 10 * time.Second
	for _, tc := range []struct {
		head string
		keep time.Duration
		age  int64
	}{
		{"HTTP/1.1 200 OK\r\n", ttl, 0},
		{"HTTP/1.1 301 Moved\r\n", ttl, 0},
		{"HTTP/1.1 404 Not Found\r\n", ttl, 0},
		{"HTTP/1.1 302 Found\r\n", 0, 0},
		{"HTTP/1.1 500 Oops\r\n", 0, 0},
		{"HTTP/1.1 206 Partial\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: max-age=3\r\n", 3 * time.Second, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\n", ttl, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: max-age=30, s-maxage=2\r\n", 2 * time.Second, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: s-maxage=2\r\nCache-Control: max-age=30\r\n", 2 * time.Second, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nAge: 3\r\n", 2 * time.Second, 3},
		{"HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nAge: 9\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nAge: 4\r\n", ttl, 4},
		{"HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: public, max-age=\"4\"\r\n", 4 * time.Second, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: max-age=abc\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: PRIVATE\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: private=\"Set-Cookie\"\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: public,no-cache\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: no-cache=\"a, b\", max-age=5\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nCache-Control: ext=\"no-store, x\", max-age=5\r\n", 5 * time.Second, 0},
		{"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\n", 0, 0},
		{"HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\n", 0, 0},
	} {
		keep, age := ResponseTTL(parseResp(t, tc.head+"Content-Length: 0\r\n\r\n"), ttl)
		if keep != tc.keep || age != tc.age {
			t.Errorf("%q: keep %v age %d, want %v %d", tc.head, keep, age, tc.keep, tc.age)
		}
	}
}

// build makes an entry from a raw response (head and whole body) as the engine would.
func build(t *testing.T, key, raw string, now int64, limit int) *Entry {
	t.Helper()
	var r codec.Response
	n, err := codec.ParseResponse([]byte(raw), &r)
	if err != nil {
		t.Fatal(err)
	}
	keep, age := ResponseTTL(&r, time.Minute)
	b := NewBuilder(key, &r, int64(keep), age, limit)
	body := []byte(raw[n:])
	for i := 0; i < len(body); i += 7 { // in pieces, as reads arrive
		b.Write(body[i:min(i+7, len(body))])
	}
	return b.Finish(now)
}

func TestBuilderAndServe(t *testing.T) {
	date := []byte("Mon, 23 Nov 2026 10:00:00 GMT")
	for _, raw := range []string{
		"HTTP/1.1 200 OK\r\nDate: old\r\nAge: 2\r\nX-Cache: HIT\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Keep: yes\r\nContent-Length: 11\r\n\r\nhello world",
		"HTTP/1.1 200 OK\r\nAge: 2\r\nX-Keep: yes\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
	} {
		e := build(t, "k", raw, 0, 1<<20)
		if e == nil {
			t.Fatalf("no entry for %q", raw)
		}
		for _, keep := range []bool{true, false} {
			head := e.AppendServeHeaders(append([]byte(nil), e.Head...), date, 3e9+5e8, 1, keep)
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(head)+string(e.Body))), nil)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			n, _ := resp.Body.Read(buf)
			h := resp.Header
			if string(buf[:n]) != "hello world" || resp.ContentLength != 11 || h.Get("Age") != "5" ||
				h.Get("Date") != string(date) || h.Get("X-Cache") != "HIT" || len(h.Values("X-Cache")) != 1 ||
				h.Get("X-Keep") != "yes" || h.Get("X-Hop") != "" || len(resp.TransferEncoding) != 0 || resp.Close == keep {
				t.Fatalf("served %q:\n%s", raw, head)
			}
		}
	}
	// Spoiled builders give nothing: over the limit, bad chunking, a chunked body cut short.
	for _, raw := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
	} {
		limit := 1 << 20
		if strings.Contains(raw, "Content-Length") {
			limit = 10
		}
		if e := build(t, "k", raw, 0, limit); e != nil {
			t.Errorf("entry from %q", raw)
		}
	}
}

type recorder struct {
	got []*Entry
	n   int
}

func (r *recorder) FlightDone(_ string, e *Entry) { r.got = append(r.got, e); r.n++ }

func TestStoreFlightsAndExpiry(t *testing.T) {
	st := NewStore(1 << 20)
	sh := NewShard(st)
	key := []byte("h /a")
	if e, leader, _ := sh.Lookup(key, 0, nil, true); e != nil || !leader {
		t.Fatal("first lookup does not lead")
	}
	w1, w2 := &recorder{}, &recorder{}
	for _, w := range []*recorder{w1, w2, w1} {
		if e, leader, joined := st.Lookup(key, 0, w, true); e != nil || leader || !joined {
			t.Fatal("second lookup does not join")
		}
	}
	if _, leader, joined := st.Lookup([]byte("h /head"), 0, w1, false); leader || joined {
		t.Fatal("a lookup that may not lead led or joined")
	}
	e := build(t, "h /a", "HTTP/1.1 200 OK\r\nCache-Control: max-age=2\r\nContent-Length: 2\r\n\r\nhi", 0, 1<<20)
	if st.Finish("h /a", e, 0) != e {
		t.Fatal("not stored")
	}
	if w1.n != 1 || w2.n != 1 || w1.got[0] != e {
		t.Fatalf("waiters told %d and %d times", w1.n, w2.n)
	}
	if got, _, _ := sh.Lookup(key, 1e9, nil, true); got != e {
		t.Fatal("no hit after the fetch")
	}
	if got := sh.Get(key, 1e9); got != e {
		t.Fatal("no local hit")
	}
	// Expired: a miss that leads again; the shard lets go of it.
	if got := sh.Get(key, 2e9); got != nil {
		t.Fatal("hit after max-age")
	}
	if _, leader, _ := sh.Lookup(key, 2e9, nil, true); !leader {
		t.Fatal("expired entry does not lead a new fetch")
	}
	st.Finish("h /a", nil, 2e9)
	if st.Len() != 0 || st.Bytes() != 0 {
		t.Fatalf("store holds %d entries, %d bytes", st.Len(), st.Bytes())
	}
	// Expire drops stale entries at most once a second.
	e2 := build(t, "h /b", "HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nContent-Length: 0\r\n\r\n", 3e9, 1<<20)
	st.Finish("h /b", e2, 3e9)
	st.Expire(5e9)
	if st.Len() != 0 || !e2.evicted.Load() {
		t.Fatal("Expire kept a stale entry")
	}
}

// fill stores n entries of the response raw under the keys k00, k01 ..., oldest first.
func fill(t *testing.T, st *Store, raw string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%02d", i)
		st.Finish(k, build(t, k, raw, 0, 1<<20), 0)
	}
}

func TestStoreEvictsLeastRecentlyUsed(t *testing.T) {
	body := strings.Repeat("x", 1000)
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + body
	one := build(t, "k00", raw, 0, 1<<20).Size()
	st := NewStore(10 * one)
	sh := NewShard(st)
	fill(t, st, raw, 10)
	if st.Len() != 10 {
		t.Fatalf("%d entries fit, want 10", st.Len())
	}
	if e, _, _ := sh.Lookup([]byte("k00"), 0, nil, false); e == nil { // k0, the oldest, is used: k1 goes first
		t.Fatal("k0 not found")
	}
	for i := 10; i < 13; i++ {
		k := fmt.Sprintf("k%02d", i)
		st.Finish(k, build(t, k, raw, 0, 1<<20), 0)
	}
	for _, k := range []string{"k01", "k02", "k03"} {
		if e, _, _ := st.Lookup([]byte(k), 0, nil, false); e != nil {
			t.Fatalf("%s still stored", k)
		}
	}
	if e, _, _ := st.Lookup([]byte("k00"), 0, nil, false); e == nil {
		t.Fatal("the used entry was evicted")
	}
	if st.Bytes() > 10*one || st.Evictions.Load() != 3 {
		t.Fatalf("%d bytes for max %d, %d evictions", st.Bytes(), 10*one, st.Evictions.Load())
	}
	// An entry over an eighth of max_size is not kept.
	big := "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("y", 2000)
	st2 := NewStore(8000)
	if e := build(t, "big", big, 0, st2.MaxEntry()); e != nil {
		t.Fatal("a builder over MaxEntry gave an entry")
	}
}

// TestStoreResize: a reload's smaller max_size evicts from the cold end down to the new bound, and drops
// entries over the new per-entry bound; 0 keeps nothing, and shards let go of what was dropped.
func TestStoreResize(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 1000)
	one := build(t, "k00", raw, 0, 1<<20).Size()
	st := NewStore(20 * one)
	sh := NewShard(st)
	fill(t, st, raw, 10)
	if e, _, _ := sh.Lookup([]byte("k09"), 0, nil, false); e == nil {
		t.Fatal("k09 not found")
	}
	st.Resize(8 * one)
	if st.Len() != 8 || st.Bytes() > 8*one || st.Evictions.Load() != 2 {
		t.Fatalf("after shrinking to 8 entries: %d entries, %d bytes, %d evictions", st.Len(), st.Bytes(), st.Evictions.Load())
	}
	for i := 0; i < 10; i++ {
		e, _, _ := st.Lookup([]byte(fmt.Sprintf("k%02d", i)), 0, nil, false)
		if (e != nil) != (i >= 2) {
			t.Fatalf("k%02d stored %v: the newest eight should stay", i, e != nil)
		}
	}
	if st.MaxEntry() != int(one) {
		t.Fatalf("MaxEntry %d, want %d", st.MaxEntry(), one)
	}
	// Entries larger than an eighth of the new bound go even where the total would fit.
	st.Resize(4 * one)
	if st.Len() != 0 || st.Bytes() != 0 {
		t.Fatalf("%d entries (%d bytes) of 1000-byte bodies kept under a per-entry bound of %d", st.Len(), st.Bytes(), st.MaxEntry())
	}
	st.Resize(0)
	if st.Finish("k", build(t, "k", raw, 0, 1<<20), 0) != nil || st.Len() != 0 {
		t.Fatal("max_size 0 stored an entry")
	}
	if e, _, _ := sh.Lookup([]byte("k09"), 0, nil, false); e != nil {
		t.Fatal("a shard still serves an entry the resize dropped")
	}
	st.Resize(10 * one)
	if st.Finish("k", build(t, "k", raw, 0, st.MaxEntry()), 0) == nil {
		t.Fatal("growing the store again did not let entries in")
	}
}

func TestHitAllocatesNothing(t *testing.T) {
	st := NewStore(1 << 20)
	sh := NewShard(st)
	e := build(t, "h /a", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 0, 1<<20)
	st.Finish("h /a", e, 0)
	sh.Put(e)
	key := []byte("h /a")
	date := []byte("Mon, 23 Nov 2026 10:00:00 GMT")
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(1000, func() {
		hit := sh.Get(key, 5e9)
		if hit == nil {
			t.Fatal("miss")
		}
		buf = hit.AppendServeHeaders(buf[:0], date, 5e9, 1, true)
	})
	if allocs != 0 {
		t.Fatalf("hit path allocates %.1f times", allocs)
	}
}
