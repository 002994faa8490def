package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

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
