package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/internal/sockettest"
)

// The timeouts on a clock the test moves: each fires exactly when its wait has lasted the configured
// time, not a nanosecond before, and nothing depends on how fast this machine is. The ticker's sweeps
// still run every 100 ms, but with the clock standing still they fire nothing; sweepNow runs one on
// every loop at the instant the test chose.

// testClock is an engine's elapsed time, moved by the test only.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) elapsed() time.Duration { return time.Duration(c.ns.Load()) }
func (c *testClock) set(d time.Duration)    { c.ns.Store(int64(d)) }

// newTestClock starts at one second; install puts it into an engine before it serves.
func newTestClock() *testClock {
	c := &testClock{}
	c.set(time.Second)
	return c
}

func (c *testClock) install() func(*Server) { return func(s *Server) { s.elapsed = c.elapsed } }

// startProxyOnClock is startProxy with the engine's clock replaced by a testClock.
func startProxyOnClock(t *testing.T, loops int, toml string) (string, *Server, *testClock) {
	t.Helper()
	sk := sockettest.NewSet(t)
	cfg, addr := proxyConfig(t, sk, loops, toml)
	clock := newTestClock()
	install := clock.install()
	srv, _ := serveEngineWith(t, cfg, testLog(), func(s *Server) { inherit(sk)(s); install(s) })
	return addr, srv, clock
}

// sweepNow runs one sweep on every loop of srv and returns once all have run.
func sweepNow(t *testing.T, srv *Server) {
	t.Helper()
	var loops []*loopState
	srv.loops.Range(func(_, v any) bool { loops = append(loops, v.(*loopState)); return true })
	for _, ls := range loops {
		done := make(chan struct{})
		err := ls.loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			ls.sweep()
			ls.settle()
			close(done)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		<-done
	}
}

// pending returns what c has received and not read, without waiting: the sweep that answers writes
// before sweepNow returns, so anything it sent is in the socket by then. eof reports a closed connection.
func pending(t *testing.T, c net.Conn, br *bufio.Reader) (got string, eof bool) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := br.Read(buf)
		sb.Write(buf[:n])
		switch {
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			return sb.String(), false
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), strings.Contains(err.Error(), "reset"):
			return sb.String(), true
		default:
			t.Fatalf("read: %v", err)
		}
	}
}

// expectAt moves the clock to just before at and checks that nothing happened to c, then to at and checks
// that what happens is want (a status line prefix, or "" for a close with nothing sent).
func expectAt(t *testing.T, srv *Server, clock *testClock, start, wait time.Duration, c net.Conn, br *bufio.Reader, want string) {
	t.Helper()
	// A barrier first: a callback that was still running (its write seen by the test before it read the
	// clock) has finished, and armed its deadline on the clock as it stood.
	sweepNow(t, srv)
	clock.set(start + wait - time.Nanosecond)
	sweepNow(t, srv)
	if got, eof := pending(t, c, br); got != "" || eof {
		t.Fatalf("%v after the wait began (1 ns early): got %q, closed %v; want nothing yet", wait-time.Nanosecond, got, eof)
	}
	clock.set(start + wait)
	sweepNow(t, srv)
	got, eof := pending(t, c, br)
	if want == "" {
		if got != "" || !eof {
			t.Fatalf("at %v: got %q, closed %v; want a silent close", wait, got, eof)
		}
		return
	}
	if !strings.HasPrefix(got, want) {
		t.Fatalf("at %v: got %q, want %q", wait, got, want)
	}
}

// TestReadHeaderTimeoutExact: a first request head that is not complete read_header_timeout after the
// accept gets 408, then a close; a nanosecond earlier, nothing.
func TestReadHeaderTimeoutExact(t *testing.T) {
	o := startOrigin(t, "a")
	addr, srv, clock := startProxyOnClock(t, 1, "read_header_timeout = \"10s\"\n"+upstreamConfig("", o.addr))
	start := clock.elapsed()
	c, br := dial(t, addr)
	waitFor(t, "the client to be accepted", func() bool { return srv.clientsOpen() == 1 })
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t.test\r\n"); err != nil { // no blank line
		t.Fatal(err)
	}
	expectAt(t, srv, clock, start, 10*time.Second, c, br, "HTTP/1.1 408 ")
}

// TestIdleTimeoutExact: a kept-alive connection that sends nothing for idle_timeout after its response
// is closed without a word (as nginx does); a nanosecond earlier it is still open.
func TestIdleTimeoutExact(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, srv, clock := startProxyOnClock(t, loops, "idle_timeout = \"60s\"\n"+upstreamConfig("", o.addr))
		c, br := dial(t, addr)
		if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: t.test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if resp, _ := readResponse(t, br, false); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// The response was written on the clock as it stands: the idle wait began then.
		expectAt(t, srv, clock, clock.elapsed(), 60*time.Second, c, br, "")
		waitSlabs(t, srv, 0)
	})
}

// headBytesRead waits until the loops have read n bytes of the request heads of their clients, all
// told: bytes the test wrote at a clock instant have reached the proxy at that instant, before the
// test moves the clock on.
func headBytesRead(t *testing.T, srv *Server, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d bytes of heads read", n), func() bool {
		got := 0
		onLoops(t, srv, func(ls *loopState) {
			for n := ls.clients.head; n != nil; n = n.next {
				cc := n.owner
				if cc.state == csHead {
					got += cc.filled
				}
			}
		})
		return got == n
	})
}

// writeAt moves the clock to at and writes b to c, and returns once the proxy has read it (total: the
// head bytes its clients hold then).
func writeAt(t *testing.T, srv *Server, clock *testClock, at time.Duration, c net.Conn, b string, total int) {
	t.Helper()
	sweepNow(t, srv) // nothing of before is still running on the loop when the clock moves
	clock.set(at)
	if _, err := io.WriteString(c, b); err != nil {
		t.Fatal(err)
	}
	headBytesRead(t, srv, total)
}

// TestReadHeaderTimeoutFromAccept: read_header_timeout runs from the accept for a connection's first
// request, bytes or none (408, close); between kept-alive requests idle_timeout applies (silent close),
// also when empty lines come (they are no request yet), and read_header_timeout again from the first
// byte of the next request.
func TestReadHeaderTimeoutFromAccept(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, nil)
		addr, srv, clock := startProxyOnClock(t, loops, simpleRawConfig("read_header_timeout = \"10s\"\nidle_timeout = \"30s\"\n", o))
		accepted := func(t *testing.T) (net.Conn, *bufio.Reader, time.Duration) {
			t.Helper()
			before := srv.clientsOpen()
			c, br := dial(t, addr)
			waitFor(t, "the accept", func() bool { return srv.clientsOpen() == before+1 })
			return c, br, clock.elapsed()
		}
		served := func(t *testing.T) (net.Conn, *bufio.Reader, time.Duration) {
			t.Helper()
			c, br, _ := accepted(t)
			if resp, _ := roundTrip(t, c, br, reqGET+"\r\n"); resp.StatusCode != 200 {
				t.Fatalf("%d", resp.StatusCode)
			}
			return c, br, clock.elapsed() // the response went out on the clock as it stands
		}

		t.Run("new connection sends nothing", func(t *testing.T) {
			c, br, start := accepted(t)
			expectAt(t, srv, clock, start, 10*time.Second, c, br, "HTTP/1.1 408 ") // not idle_timeout's silent close
			expectClosed(t, c, br)
		})

		t.Run("new connection sends part of a head", func(t *testing.T) {
			c, br, start := accepted(t)
			writeAt(t, srv, clock, start+9*time.Second, c, "GET / HT", 8)
			expectAt(t, srv, clock, start, 10*time.Second, c, br, "HTTP/1.1 408 ") // from the accept, not the first byte
			expectClosed(t, c, br)
		})

		t.Run("idle between requests is idle_timeout", func(t *testing.T) {
			c, br, start := served(t)
			expectAt(t, srv, clock, start, 30*time.Second, c, br, "") // no 408 at read_header_timeout before it
		})

		t.Run("empty lines leave the idle clock running", func(t *testing.T) {
			c, br, start := served(t)
			writeAt(t, srv, clock, start+20*time.Second, c, "\r\n", 2)
			expectAt(t, srv, clock, start, 30*time.Second, c, br, "")
		})

		t.Run("next request's head from its first byte", func(t *testing.T) {
			c, br, start := served(t)
			first := start + 20*time.Second // past read_header_timeout, within idle_timeout
			writeAt(t, srv, clock, first, c, "GET / HT", 8)
			expectAt(t, srv, clock, first, 10*time.Second, c, br, "HTTP/1.1 408 ")
			expectClosed(t, c, br)
		})
		if n := o.reqs.Load(); n != 3 {
			t.Errorf("origin read %d requests, want 3", n)
		}
		waitSlabs(t, srv, 0)
	})
}

// TestSlowlorisHeadGets408: a head dripped a byte a second, each read by the proxy as it comes, is cut
// off with 408 exactly at read_header_timeout from the accept, and none of it reaches the origin.
func TestSlowlorisHeadGets408(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, nil)
		addr, srv, clock := startProxyOnClock(t, loops, simpleRawConfig("read_header_timeout = \"10s\"\n", o))
		c, br := dial(t, addr)
		waitFor(t, "the accept", func() bool { return srv.clientsOpen() == 1 })
		start := clock.elapsed()
		head := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("z", 40) + "\r\n\r\n"
		for i := 0; i < 10; i++ {
			writeAt(t, srv, clock, start+time.Duration(i)*time.Second, c, head[i:i+1], i+1)
		}
		expectAt(t, srv, clock, start, 10*time.Second, c, br, "HTTP/1.1 408 ")
		expectClosed(t, c, br)
		if o.bytesRead() != 0 {
			t.Errorf("origin got %q", o.rawSince(0))
		}
		waitSlabs(t, srv, 0)
	})
}

// silentBackend accepts connections and reads request heads, signalling each whole one, and never
// answers anything.
func silentBackend(t *testing.T) (addr string, heads <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan struct{}, 16)
	go func() {
		for {
			bc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { bc.Close() })
			go func() {
				r := bufio.NewReader(bc)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == "\r\n" {
						got <- struct{}{}
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), got
}

// awaitHead waits for silentBackend to signal a whole request head.
func awaitHead(t *testing.T, heads <-chan struct{}) {
	t.Helper()
	select {
	case <-heads:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the backend")
	}
}

// TestResponseTimeoutExact: a backend that takes a request and never answers: 504 response_timeout
// after the request went out, nothing before.
func TestResponseTimeoutExact(t *testing.T) {
	backend, heads := silentBackend(t)
	addr, srv, clock := startProxyOnClock(t, 1, faultConfig(0, "30s", backend))
	start := clock.elapsed()
	c, br := dial(t, addr)
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: t.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	awaitHead(t, heads)
	expectAt(t, srv, clock, start, 30*time.Second, c, br, "HTTP/1.1 504 ")
}

// TestBodyStallTimeoutExact: a request body that stops coming: 408 idle_timeout after its last bytes were
// forwarded, nothing before (the backend's response_timeout, longer, does not run while the body is sent).
func TestBodyStallTimeoutExact(t *testing.T) {
	backend, heads := silentBackend(t)
	addr, srv, clock := startProxyOnClock(t, 1, "idle_timeout = \"20s\"\n"+faultConfig(0, "30s", backend))
	c, br := dial(t, addr)
	start := clock.elapsed()
	if _, err := io.WriteString(c, "POST /x HTTP/1.1\r\nHost: t.test\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	awaitHead(t, heads)
	expectAt(t, srv, clock, start, 20*time.Second, c, br, "HTTP/1.1 408 ")
}

// Timers may fire late (the sweep runs every tickInterval) but never early: a deadline is counted from
// the moment of the event that sets it, not from the last sweep. Each test runs staggeredClients
// connections started tickInterval/staggeredClients apart, so that together they set their deadlines at
// every phase of the sweep: a clock up to a tick stale made about half of them fire early.

const staggeredClients = 8

// staggered runs fn on staggeredClients goroutines started evenly across one tickInterval and waits for
// them; fn reports a failure as a non-empty string.
func staggered(t *testing.T, fn func(i int) string) {
	t.Helper()
	var wg sync.WaitGroup
	fails := make(chan string, staggeredClients)
	for i := 0; i < staggeredClients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if msg := fn(i); msg != "" {
				fails <- fmt.Sprintf("client %d: %s", i, msg)
			}
		}()
		time.Sleep(tickInterval / staggeredClients)
	}
	wg.Wait()
	close(fails)
	for msg := range fails {
		t.Error(msg)
	}
}

// exchanges sends each of paths, the next after its pause, on one connection, and returns what went
// wrong: an error, or a response other than a whole 200.
func exchanges(addr string, pauses []time.Duration, paths ...string) string {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for n, path := range paths {
		time.Sleep(pauses[n])
		start := time.Now()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t.test\r\n\r\n"); err != nil {
			return fmt.Sprintf("request %d: %v", n, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Sprintf("request %d: %v", n, err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return fmt.Sprintf("request %d: %d after %v (%v)", n, resp.StatusCode, time.Since(start), err)
		}
	}
	return ""
}

// TestResponseTimeoutNeverEarly: a backend that answers 60 ms inside response_timeout is answered 200,
// whatever the phase of the sweep when the request went out (SPEC 3.4: 504 only beyond the timeout).
func TestResponseTimeoutNeverEarly(t *testing.T) {
	o := startOrigin(t, "a")
	addr, _ := startProxy(t, 1, faultConfig(0, "500ms", o.addr))
	staggered(t, func(int) string { return exchanges(addr, []time.Duration{0}, "/slow?ms=440") })
}

// TestIdleTimeoutNeverEarly: a keep-alive client that sends its next request 50 ms inside idle_timeout
// gets it answered on the same connection.
func TestIdleTimeoutNeverEarly(t *testing.T) {
	o := startOrigin(t, "a")
	addr, _ := startProxy(t, 1, "idle_timeout = \"1s\"\n"+upstreamConfig("", o.addr))
	staggered(t, func(int) string { return exchanges(addr, []time.Duration{0, 950 * time.Millisecond}, "/x", "/x") })
}

// sweepsOf returns the sweeps run so far by srv's loops.
func sweepsOf(srv *Server) (n int64) {
	srv.loops.Range(func(_, v any) bool {
		n += v.(*loopState).sweeps.Load()
		return true
	})
	return n
}

// TestQuietLoopSweepsSeldom: a loop with no client and nothing in flight is swept once a second, not
// ten times (an idle proxy should cost next to nothing), and a client arriving on it is timed as on a
// busy loop: its read_header_timeout fires on time and its responses carry a current Date.
func TestQuietLoopSweepsSeldom(t *testing.T) {
	o := startOrigin(t, "a")
	addr, srv := startProxy(t, 1, "read_header_timeout = \"300ms\"\n"+upstreamConfig("", o.addr))
	if msg := exchanges(addr, []time.Duration{0}, "/x"); msg != "" {
		t.Fatal(msg)
	}
	time.Sleep(3 * tickInterval) // the client's close reaches the loop, and a sweep finds it quiet
	before := sweepsOf(srv)
	time.Sleep(2*time.Second + tickInterval/2)
	if n := sweepsOf(srv) - before; n < 1 || n > 3 {
		t.Fatalf("a quiet loop was swept %d times in 2 s, want about 2", n)
	}

	// A client that sends nothing: 408 after read_header_timeout, on time although the loop was quiet.
	c, br := dial(t, addr)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, _ := readResponse(t, br, false)
	if d := time.Since(start); resp.StatusCode != 408 || d < 300*time.Millisecond || d > 600*time.Millisecond {
		t.Fatalf("%d after %v, want 408 after read_header_timeout (300ms)", resp.StatusCode, d)
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil || time.Since(date) > 1500*time.Millisecond {
		t.Fatalf("Date %q (%v) is stale", resp.Header.Get("Date"), err)
	}
	// While the client was open the loop was swept every tick.
	before = sweepsOf(srv)
	c2, _ := dial(t, addr)
	time.Sleep(5 * tickInterval)
	if n := sweepsOf(srv) - before; n < 3 {
		t.Fatalf("a loop with a client was swept %d times in 5 ticks", n)
	}
	c2.Close()
}

// TestShutdownIsPrompt: a stop returns as soon as the drain is over, whether the last request finished
// or shutdown_timeout cut it: gnet's Stop polled every 500 ms, so the process exited up to half a second
// after either.
func TestShutdownIsPrompt(t *testing.T) {
	o := startOrigin(t, "a")
	for _, tc := range []struct {
		name    string
		slowMS  int           // a request in flight for this long, if > 0
		timeout time.Duration // the drain's limit (shutdown_timeout)
		want    time.Duration // when Shutdown should return
	}{
		{"nothing in flight", 0, 3 * time.Second, 0},
		{"the last request ends", 400, 3 * time.Second, 400 * time.Millisecond},
		{"shutdown_timeout cuts a request", 3000, 400 * time.Millisecond, 400 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, srv := startProxy(t, 1, simpleConfig("", o))
			o.hits.Store(0)
			if tc.slowMS > 0 {
				slowRequestInFlight(t, o, addr, tc.slowMS)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			start := time.Now()
			_ = srv.Shutdown(ctx)
			if d := time.Since(start); d > tc.want+250*time.Millisecond {
				t.Fatalf("Shutdown returned after %v, want about %v", d, tc.want)
			}
		})
	}
}
