package upstream

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// healthOrigin is a real HTTP server whose /healthz answers 200, 500 or hangs, as the test switches it.
type healthOrigin struct {
	srv     *httptest.Server
	status  atomic.Int32 // 0 = hang until the client goes away
	hits    atomic.Int64
	release chan struct{}
	mu      sync.Mutex
	last    *http.Request
}

func startHealthOrigin(t *testing.T, status int) *healthOrigin {
	t.Helper()
	o := &healthOrigin{release: make(chan struct{})}
	o.status.Store(int32(status))
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.mu.Lock()
		o.last = r
		o.mu.Unlock()
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		st := int(o.status.Load())
		if st == 0 {
			select {
			case <-r.Context().Done():
			case <-o.release:
			}
			return
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(func() {
		close(o.release)
		o.srv.Close()
	})
	return o
}

func (o *healthOrigin) tcpAddr() *net.TCPAddr { return o.srv.Listener.Addr().(*net.TCPAddr) }

func (o *healthOrigin) lastRequest() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// syncBuffer is a log sink the checker goroutines and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var testClockBase = time.Now()

func testClock() int64 { return int64(time.Since(testClockBase)) }

func healthGroup(t *testing.T, name string, hs HealthSettings, maxFails int, addrs ...*net.TCPAddr) *Group {
	t.Helper()
	var specs []ServerSpec
	for i, a := range addrs {
		specs = append(specs, ServerSpec{Name: []string{"app.internal:8080", "b.internal:8080", "c.internal:8080"}[i], Addr: a})
	}
	g, err := NewGroup(name, specs, Settings{Balance: RoundRobin, MaxFails: maxFails, FailTimeout: 10 * time.Second, Health: &hs})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func refusedAddr(t *testing.T) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().(*net.TCPAddr)
	ln.Close()
	return a
}

var testHealth = HealthSettings{Path: "/healthz", Interval: time.Second, Timeout: time.Second, ExpectStatus: 200, Rise: 2, Fall: 3}

// TestHealthFallAndRise drives the checks one at a time over real connections: fall failures in a row
// mark the server down (not one fewer), rise passes in a row bring it back, and each transition is logged.
func TestHealthFallAndRise(t *testing.T) {
	o := startHealthOrigin(t, 200)
	g := healthGroup(t, "app", testHealth, 0, o.tcpAddr())
	s := g.Servers[0]
	var logs syncBuffer
	c := &Checker{now: testClock, log: slog.New(slog.NewTextHandler(&logs, nil))}
	var st serverCheck
	ctx := context.Background()
	step := func(want bool) {
		t.Helper()
		if !c.check(ctx, g, s, &st) {
			t.Fatal("check reported a cancelled context")
		}
		if got := s.Up(testClock()); got != want {
			t.Fatalf("after check (last %q): Up = %v, want %v", s.Health(testClock()).LastCheck, got, want)
		}
	}

	if !s.Up(testClock()) || s.Health(testClock()).Checked {
		t.Fatal("a server must start up and unchecked")
	}
	step(true)
	if h := s.Health(testClock()); !h.Checked || h.LastCheck != "ok" || h.ActiveDown {
		t.Fatalf("after a passing check: %+v", h)
	}
	// The request on the wire.
	r := o.lastRequest()
	if r.Method != "GET" || r.URL.Path != "/healthz" || r.Proto != "HTTP/1.1" || r.Host != "app.internal:8080" ||
		r.UserAgent() != "SwitchFlow-health-check" || !r.Close {
		t.Fatalf("check request: %s %s %s Host=%q UA=%q close=%v", r.Method, r.URL, r.Proto, r.Host, r.UserAgent(), r.Close)
	}

	o.status.Store(500)
	step(true)
	step(true)
	step(false) // fall = 3
	if h := s.Health(testClock()); !h.ActiveDown || h.LastCheck != "status 500" || h.PassiveDown {
		t.Fatalf("after fall failures: %+v", h)
	}
	step(false) // stays down

	o.status.Store(200)
	step(false)
	o.status.Store(500) // a failure in between restarts the count of passes
	step(false)
	o.status.Store(200)
	step(false)
	step(true) // rise = 2 in a row
	if h := s.Health(testClock()); h.ActiveDown || h.LastCheck != "ok" {
		t.Fatalf("after rise passes: %+v", h)
	}

	out := logs.String()
	if n := strings.Count(out, "upstream server down"); n != 1 || !strings.Contains(out, "reason=\"status 500\"") ||
		!strings.Contains(out, "level=WARN") {
		t.Fatalf("want one WARN down transition with reason status 500, log:\n%s", out)
	}
	if n := strings.Count(out, "upstream server up"); n != 1 || !strings.Contains(out, "level=INFO") ||
		!strings.Contains(out, "server=app.internal:8080") || !strings.Contains(out, "upstream=app") {
		t.Fatalf("want one INFO up transition naming upstream and server, log:\n%s", out)
	}
}

// TestHealthHangIsTimeout: a backend that accepts and never answers fails the check within timeout.
func TestHealthHangIsTimeout(t *testing.T) {
	o := startHealthOrigin(t, 0)
	hs := testHealth
	hs.Timeout = 200 * time.Millisecond
	g := healthGroup(t, "app", hs, 0, o.tcpAddr())
	start := time.Now()
	reason := probe(context.Background(), g.Servers[0], g.Health)
	el := time.Since(start)
	if reason != "timeout" {
		t.Fatalf("hanging check: reason %q, want timeout", reason)
	}
	if el < hs.Timeout || el > hs.Timeout+500*time.Millisecond {
		t.Fatalf("hanging check took %v, want about %v", el, hs.Timeout)
	}
	if o.hits.Load() != 1 {
		t.Fatalf("origin saw %d requests, want 1", o.hits.Load())
	}
}

// TestHealthRefusedIsFailure: a refused connection is a failed check; with fall = 1 it marks the server
// down at once.
func TestHealthRefusedIsFailure(t *testing.T) {
	hs := testHealth
	hs.Fall = 1
	g := healthGroup(t, "app", hs, 0, refusedAddr(t))
	s := g.Servers[0]
	var logs syncBuffer
	c := &Checker{now: testClock, log: slog.New(slog.NewTextHandler(&logs, nil))}
	var st serverCheck
	c.check(context.Background(), g, s, &st)
	if s.Up(testClock()) {
		t.Fatal("server still up after a refused check with fall = 1")
	}
	if h := s.Health(testClock()); h.LastCheck != "connect: refused" {
		t.Fatalf("reason %q, want connect: refused", h.LastCheck)
	}
	if !strings.Contains(logs.String(), `reason="connect: refused"`) {
		t.Fatalf("log: %s", logs.String())
	}
}

// TestHealthRiseEndsPassiveDown: a server that max_fails took out comes back after rise passing checks,
// before fail_timeout (SPEC 3.4: either way back).
func TestHealthRiseEndsPassiveDown(t *testing.T) {
	o := startHealthOrigin(t, 200)
	// Two servers: the only server of an upstream is never marked down by failures (group.go).
	g := healthGroup(t, "app", testHealth, 1, o.tcpAddr(), o.tcpAddr())
	s := g.Servers[0]
	c := &Checker{now: testClock, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var st serverCheck
	// Passes while up count for nothing once the server goes down.
	c.check(context.Background(), g, s, &st)
	c.check(context.Background(), g, s, &st)
	s.Fail(testClock()) // max_fails = 1: down for fail_timeout (10s)
	if h := s.Health(testClock()); h.Up || !h.PassiveDown || h.ActiveDown {
		t.Fatalf("after max_fails: %+v", h)
	}
	c.check(context.Background(), g, s, &st)
	if s.Up(testClock()) {
		t.Fatal("one passing check (rise = 2) ended a passive down")
	}
	c.check(context.Background(), g, s, &st)
	if h := s.Health(testClock()); !h.Up || h.PassiveDown {
		t.Fatalf("after rise passing checks: %+v", h)
	}
}

// TestHealthCheckerRuns: the checker's own goroutine marks a failing server down (the picker then skips
// it) and brings it back when it passes again; the other server stays up throughout.
func TestHealthCheckerRuns(t *testing.T) {
	a := startHealthOrigin(t, 200)
	b := startHealthOrigin(t, 200)
	hs := HealthSettings{Path: "/healthz", Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, ExpectStatus: 200, Rise: 2, Fall: 2}
	g := healthGroup(t, "app", hs, 0, a.tcpAddr(), b.tcpAddr())
	c := StartChecker([]*Group{g}, testClock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer c.Stop()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("first checks", func() bool {
		return g.Servers[0].Health(testClock()).Checked && g.Servers[1].Health(testClock()).Checked
	})
	a.status.Store(500)
	waitFor("a down", func() bool { return !g.Servers[0].Up(testClock()) })
	if !g.Servers[1].Up(testClock()) {
		t.Fatal("b went down too")
	}
	p := NewPicker(g)
	for i := 0; i < 10; i++ {
		if s := p.Pick(testClock(), 0, 0); s != g.Servers[1] {
			t.Fatalf("pick %d chose %v while a is down", i, s)
		}
	}
	a.status.Store(200)
	waitFor("a up", func() bool { return g.Servers[0].Up(testClock()) })
	if n := a.hits.Load(); n < 2+2 {
		t.Fatalf("a saw %d checks, want at least fall+rise", n)
	}
}

// TestHealthStopEndsGoroutines: Stop returns promptly even with a check hanging in flight on a long
// timeout, and every checker goroutine has exited.
func TestHealthStopEndsGoroutines(t *testing.T) {
	hang := startHealthOrigin(t, 0)
	ok := startHealthOrigin(t, 200)
	slow := HealthSettings{Path: "/healthz", Interval: 10 * time.Second, Timeout: 10 * time.Second, ExpectStatus: 200, Rise: 1, Fall: 1}
	fast := HealthSettings{Path: "/healthz", Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, ExpectStatus: 200, Rise: 1, Fall: 1}
	groups := []*Group{
		healthGroup(t, "hang", slow, 0, hang.tcpAddr()),
		healthGroup(t, "ok", fast, 0, ok.tcpAddr()),
		healthGroup(t, "refused", fast, 0, refusedAddr(t)),
	}
	// No checks for a group without settings.
	plain, err := NewGroup("plain", []ServerSpec{{Name: "x", Addr: ok.tcpAddr()}}, Settings{Balance: RoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	groups = append(groups, plain)

	runtime.GC()
	base := runtime.NumGoroutine()
	c := StartChecker(groups, testClock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n := runtime.NumGoroutine(); n < base+3 {
		t.Fatalf("goroutines %d after start, base %d: want one per checked group", n, base)
	}
	// Wait until the hanging check is in flight and the fast ones have run a few rounds.
	deadline := time.Now().Add(3 * time.Second)
	for hang.hits.Load() == 0 || ok.hits.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("checks did not run: hang %d ok %d", hang.hits.Load(), ok.hits.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	c.Stop()
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Stop took %v with a check in flight", el)
	}
	c.Stop() // twice is fine
	(*Checker)(nil).Stop()
	hits := ok.hits.Load()

	deadline = time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d after Stop, base %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := ok.hits.Load(); n != hits {
		t.Fatalf("checks went on after Stop: %d then %d", hits, n)
	}
	if groups[0].Servers[0].Health(testClock()).Checked {
		t.Fatal("a check abandoned by Stop was recorded")
	}
}

func TestHealthParseStatusLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		code int
		ok   bool
	}{
		{"HTTP/1.1 200 OK\r\n", 200, true},
		{"HTTP/1.0 500\r\n", 500, true},
		{"HTTP/1.1 204\n", 204, true},
		{"HTTP/1.1 20\n", 0, false},
		{"HTTP/1.1 2000\r\n", 0, false},
		{"HTTP/2.0 200 OK\r\n", 0, false},
		{"HTTP/1.1 0a0 x\r\n", 0, false},
		{"SSH-2.0-OpenSSH\r\n", 0, false},
	} {
		code, ok := parseStatusLine([]byte(tc.line))
		if code != tc.code || ok != tc.ok {
			t.Errorf("%q: %d %v, want %d %v", tc.line, code, ok, tc.code, tc.ok)
		}
	}
}

// TestOnlyServerNeverPassivelyDown: as nginx, failures never take the only server of an upstream out (there
// is nowhere else to send its requests); with a second server they do.
func TestOnlyServerNeverPassivelyDown(t *testing.T) {
	o := startHealthOrigin(t, 200)
	one := healthGroup(t, "one", testHealth, 1, o.tcpAddr())
	two := healthGroup(t, "two", testHealth, 1, o.tcpAddr(), o.tcpAddr())
	for i := 0; i < 5; i++ {
		one.Servers[0].Fail(testClock())
		two.Servers[0].Fail(testClock())
	}
	if !one.Servers[0].Up(testClock()) {
		t.Fatal("the only server of an upstream was marked down by failures")
	}
	if two.Servers[0].Up(testClock()) {
		t.Fatal("max_fails = 1 did not mark down a server that has a peer")
	}
}

// TestHealthNoDescriptorIsNoFailure: SPEC 3.3, a check that cannot open a socket because the proxy is out
// of file descriptors says nothing about the server: with fall = 1 it stays up, and nothing is recorded.
func TestHealthNoDescriptorIsNoFailure(t *testing.T) {
	hs := testHealth
	hs.Fall = 1
	g := healthGroup(t, "app", hs, 0, refusedAddr(t))
	s := g.Servers[0]
	var logs syncBuffer
	c := &Checker{now: testClock, log: slog.New(slog.NewTextHandler(&logs, nil))}
	var st serverCheck

	// Take every descriptor under a lowered soft limit, run the check, give them back.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	var held []*os.File
	low := old
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower the open-file limit: %v", err)
	}
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	c.check(context.Background(), g, s, &st)
	for _, f := range held {
		f.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}

	if !s.Up(testClock()) {
		t.Fatal("a check without a descriptor marked the server down")
	}
	if h := s.Health(testClock()); h.LastCheck != "" || s.hcFails.Load() != 0 {
		t.Fatalf("a check without a descriptor was recorded: %+v, %d failed", h, s.hcFails.Load())
	}
	// The same check with descriptors to spare fails as it should (refused).
	c.check(context.Background(), g, s, &st)
	if s.Up(testClock()) {
		t.Fatal("a refused check with fall = 1 left the server up")
	}
}
