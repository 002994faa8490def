package engine

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak drives a mix of traffic through the proxy for -soak (or $SWITCHFLOW_SOAK) of wall time,
// default 30s, the CI version (5s with -short), against two origins, one of which is killed and
// restarted on the same port every couple of seconds. scripts/soak.sh runs it for longer.
//
// The clients: keep-alive, a connection per request, pipelined, malformed (400), heads sent in two
// pieces 1 ms apart, and pipeliners that read nothing for a while (half of them leave without reading).
// Every request carries a secret of its client that the origin echoes with the target, so an answer
// to another request, or another client's, is an error; keepalive = 2 makes most requests dial.
//
// The well-formed set is idempotent GETs only: SPEC 3.4 retries a request on another server only when
// it is idempotent, so a POST on a pooled connection that the dying origin closes before answering is
// a legitimate 502, and zero errors is only a meaningful claim for GETs.
var soakFlag = flag.Duration("soak", 0, "TestSoak duration (default 30s, 5s with -short; env SWITCHFLOW_SOAK)")

func soakDuration(t *testing.T) time.Duration {
	if *soakFlag > 0 {
		return *soakFlag
	}
	if v := os.Getenv("SWITCHFLOW_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SWITCHFLOW_SOAK: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return 30 * time.Second
}

// flipOrigin is a minimal HTTP/1.1 origin on a fixed loopback address that can be killed (listener
// and every connection closed, half of them with a reset) and started again on the same port. Each
// response is written under the connection's lock in one write, and kill takes that lock, so the
// origin dies between responses or before one, never in the middle of one: SPEC 3.4 only promises a
// retry for failures before the response head.
type flipOrigin struct {
	t    *testing.T
	addr string
	name string
	hits atomic.Int64

	mu    sync.Mutex
	ln    net.Listener
	conns map[*flipConn]struct{}
	wg    sync.WaitGroup
}

type flipConn struct {
	mu sync.Mutex
	c  net.Conn
}

func newFlipOrigin(t *testing.T, name string) *flipOrigin {
	o := &flipOrigin{t: t, name: name, conns: map[*flipConn]struct{}{}}
	o.start()
	t.Cleanup(o.kill)
	return o
}

func (o *flipOrigin) start() {
	var ln net.Listener
	var err error
	if o.addr == "" {
		// The first start takes a port of the kernel's choosing. A restart must have that very port
		// back, closed by kill: the one place a test needs a port it let go of, since a server that
		// stops and starts again at the same address is what the proxy is tested against.
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			o.t.Errorf("origin %s: %v", o.name, err)
			return
		}
		o.addr = ln.Addr().String()
	}
	for i := 0; ln == nil && i < 50; i++ { // the port may linger briefly after kill
		if ln, err = net.Listen("tcp", o.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		o.t.Errorf("origin %s restart on %s: %v", o.name, o.addr, err)
		return
	}
	o.mu.Lock()
	o.ln = ln
	o.mu.Unlock()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fc := &flipConn{c: c}
			o.mu.Lock()
			if o.ln != ln { // killed meanwhile
				o.mu.Unlock()
				c.Close()
				return
			}
			o.conns[fc] = struct{}{}
			o.mu.Unlock()
			o.wg.Add(1)
			go o.serve(fc)
		}
	}()
}

func (o *flipOrigin) serve(fc *flipConn) {
	defer o.wg.Done()
	defer func() {
		fc.c.Close()
		o.mu.Lock()
		delete(o.conns, fc)
		o.mu.Unlock()
	}()
	br := bufio.NewReader(fc.c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		// The body echoes the request's target and secret, so that a client can tell its own answer.
		body := "ok:" + o.name + ":" + req.URL.RequestURI() + ":" + req.Header.Get("X-Secret")
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Origin: %s\r\n\r\n%s", len(body), o.name, body)
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		fc.mu.Lock()
		o.hits.Add(1)
		_, err = io.WriteString(fc.c, resp)
		fc.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// kill closes the listener and every connection, and waits for the goroutines.
func (o *flipOrigin) kill() {
	o.mu.Lock()
	if o.ln != nil {
		o.ln.Close()
		o.ln = nil
	}
	conns := make([]*flipConn, 0, len(o.conns))
	for fc := range o.conns {
		conns = append(conns, fc)
	}
	o.mu.Unlock()
	for i, fc := range conns {
		fc.mu.Lock()
		if i%2 == 0 {
			resetConn(fc.c)
		} else {
			fc.c.Close()
		}
		fc.mu.Unlock()
	}
	o.wg.Wait()
}

type soakStats struct {
	ok, bad400, errs atomic.Int64
	byMode           [6]atomic.Int64
	mu               sync.Mutex
	firstErrs        []string
}

func (s *soakStats) fail(format string, args ...any) {
	s.errs.Add(1)
	s.mu.Lock()
	if len(s.firstErrs) < 10 {
		s.firstErrs = append(s.firstErrs, fmt.Sprintf(format, args...))
	}
	s.mu.Unlock()
}

var soakMalformed = []string{
	"GET / HTTP/1.1\nHost: x\n\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
}

func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	a := newFlipOrigin(t, "a")
	b := newFlipOrigin(t, "b")
	addr, srv := startProxy(t, 2, fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q }, { addr = %q } ]
keepalive = 2
connect_timeout = "1s"
response_timeout = "2s"
retries = 2
max_fails = 1
fail_timeout = "500ms"
[[route]]
upstream = "app"
`, a.addr, b.addr))
	fd0 := stableFdCount(t)
	slabs0 := srv.SlabsInUse()

	deadline := time.Now().Add(dur)
	var st soakStats
	var wg sync.WaitGroup

	// The flapping origin: down for 300 ms every 1.5 s, bounded by the deadline.
	restarts := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Add(2 * time.Second).Before(deadline) {
			time.Sleep(1200 * time.Millisecond)
			b.kill()
			time.Sleep(300 * time.Millisecond)
			b.start()
			restarts++
		}
	}()

	// Heap sampler: HeapInuse after a GC, every dur/20.
	var heapMu sync.Mutex
	type sample struct {
		at   time.Duration
		heap uint64
	}
	var samples []sample
	start := time.Now()
	stopSampler := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tk := time.NewTicker(dur / 20)
		defer tk.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-tk.C:
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heapMu.Lock()
			samples = append(samples, sample{time.Since(start), ms.HeapInuse})
			heapMu.Unlock()
		}
	}()

	const workers = 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := 0; i < 1_000_000 && time.Now().Before(deadline); i++ {
				secret := fmt.Sprintf("w%d-%d", w, i)
				switch p := rng.IntN(100); {
				case p < 5:
					st.byMode[3].Add(1)
					soakMalformedOnce(addr, soakMalformed[rng.IntN(len(soakMalformed))], &st)
				case p < 30:
					st.byMode[0].Add(1)
					soakKeepAlive(addr, 1+rng.IntN(20), secret, false, &st)
				case p < 60:
					st.byMode[1].Add(1)
					soakKeepAlive(addr, 1, secret, false, &st)
				case p < 75:
					st.byMode[4].Add(1)
					soakKeepAlive(addr, 1+rng.IntN(3), secret, true, &st)
				case p < 78:
					st.byMode[5].Add(1)
					soakPipelined(addr, 200+rng.IntN(300), secret, true, &st)
				default:
					st.byMode[2].Add(1)
					soakPipelined(addr, 2+rng.IntN(8), secret, false, &st)
				}
			}
		}(w)
	}
	wg.Wait()
	close(stopSampler)
	<-samplerDone

	t.Logf("soak %v: %d ok, %d malformed answered 400, %d errors; sessions keep-alive %d, new-conn %d, pipelined %d, malformed %d, heads in pieces %d, pipelined unread %d; origin b restarted %d times; hits a=%d b=%d",
		dur, st.ok.Load(), st.bad400.Load(), st.errs.Load(), st.byMode[0].Load(), st.byMode[1].Load(),
		st.byMode[2].Load(), st.byMode[3].Load(), st.byMode[4].Load(), st.byMode[5].Load(), restarts, a.hits.Load(), b.hits.Load())
	for _, e := range st.firstErrs {
		t.Errorf("error: %s", e)
	}
	if st.ok.Load() == 0 || st.bad400.Load() == 0 {
		t.Errorf("no traffic: %d ok, %d 400", st.ok.Load(), st.bad400.Load())
	}
	if restarts == 0 && dur >= 5*time.Second {
		t.Errorf("origin b was never restarted")
	}

	// Heap: the last quarter's peak may not exceed the first quarter's by more than 8 MiB.
	heapMu.Lock()
	var q1, q4 uint64
	for _, s := range samples {
		switch {
		case s.at <= dur/4:
			q1 = max(q1, s.heap)
		case s.at >= dur*3/4:
			q4 = max(q4, s.heap)
		}
	}
	heapMu.Unlock()
	t.Logf("heap in use: first-quarter peak %.1f MiB, last-quarter peak %.1f MiB (%d samples)",
		float64(q1)/(1<<20), float64(q4)/(1<<20), len(samples))
	if q1 > 0 && q4 > q1+8<<20 {
		t.Errorf("heap grew from %d to %d bytes", q1, q4)
	}

	// Kill both origins: the proxy closes its pooled backend connections when they hit EOF, so every
	// descriptor opened since the baseline must be gone (the two listeners are gone too).
	a.kill()
	b.kill()
	end := time.Now().Add(3 * time.Second)
	for {
		fds, slabs := fdCount(t), srv.SlabsInUse()
		if fds <= fd0 && slabs == slabs0 {
			t.Logf("fds %d (baseline %d), slabs %d", fds, fd0, slabs)
			break
		}
		if time.Now().After(end) {
			t.Errorf("leak after soak: %d fds (baseline %d), %d slabs in use (baseline %d)", fds, fd0, slabs, slabs0)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func soakDial(addr string, st *soakStats) (net.Conn, *bufio.Reader, bool) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		st.fail("dial: %v", err)
		return nil, nil, false
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c), true
}

// soakRead reads one response, which must be a 200 from an origin answering target with secret: a
// response meant for another request (or another client) is an error.
func soakRead(br *bufio.Reader, st *soakStats, what, target, secret string) bool {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		st.fail("%s: read: %v", what, err)
		return false
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		st.fail("%s: body: %v", what, err)
		return false
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "ok:") || !strings.HasSuffix(string(body), ":"+target+":"+secret) {
		st.fail("%s: %d %q, want the answer to %s with secret %s", what, resp.StatusCode, body, target, secret)
		return false
	}
	st.ok.Add(1)
	return true
}

// soakKeepAlive sends n GETs one after another on one connection (n = 1: a connection per request),
// each head in two pieces 1 ms apart when split.
func soakKeepAlive(addr string, n int, secret string, split bool, st *soakStats) {
	c, br, ok := soakDial(addr, st)
	if !ok {
		return
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		target := fmt.Sprintf("/ka/%d?s=%s", i, secret)
		head := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: x\r\nCookie: session=%s\r\nX-Secret: %s\r\n\r\n", target, secret, secret)
		if split {
			cut := len(head) / 2
			if _, err := io.WriteString(c, head[:cut]); err != nil {
				st.fail("split write %d: %v", i, err)
				return
			}
			time.Sleep(time.Millisecond)
			head = head[cut:]
		}
		if _, err := io.WriteString(c, head); err != nil {
			st.fail("keep-alive write %d: %v", i, err)
			return
		}
		if !soakRead(br, st, fmt.Sprintf("keep-alive %d/%d", i, n), target, secret) {
			return
		}
	}
}

// soakPipelined writes n GETs in one write and reads n responses; unread: it first reads nothing for
// 100 ms, and half of such clients then leave without reading.
func soakPipelined(addr string, n int, secret string, unread bool, st *soakStats) {
	c, br, ok := soakDial(addr, st)
	if !ok {
		return
	}
	defer c.Close()
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "GET /pipe/%d HTTP/1.1\r\nHost: x\r\nX-Secret: %s\r\n\r\n", i, secret)
	}
	wrote := make(chan error, 1)
	go func() { _, err := io.WriteString(c, sb.String()); wrote <- err }()
	if unread {
		time.Sleep(100 * time.Millisecond)
		if n%2 == 0 {
			return // leaves with its responses unread
		}
	}
	for i := 0; i < n; i++ {
		if !soakRead(br, st, fmt.Sprintf("pipelined %d/%d", i, n), fmt.Sprintf("/pipe/%d", i), secret) {
			return
		}
	}
	if err := <-wrote; err != nil {
		st.fail("pipelined write: %v", err)
	}
}

// soakMalformedOnce sends one malformed request and wants 400 and the close.
func soakMalformedOnce(addr, raw string, st *soakStats) {
	c, br, ok := soakDial(addr, st)
	if !ok {
		return
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		st.fail("malformed write: %v", err)
		return
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		st.fail("malformed %q: %v", raw, err)
		return
	}
	_, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 400 {
		st.fail("malformed %q: status %d, want 400", raw, resp.StatusCode)
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if extra, err := io.ReadAll(br); len(extra) > 0 || (err != nil && !isReset(err)) {
		st.fail("malformed %q: not closed after 400 (%d extra bytes, %v)", raw, len(extra), err)
		return
	}
	st.bad400.Add(1)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
