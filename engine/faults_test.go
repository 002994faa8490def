package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Fault injection against raw origins (SPEC 3.4). Every case ends with a leak check: once the clients
// closed, no header slab is still handed out and the process holds no more file descriptors than
// before the case, but for a few pooled keep-alive backend connections (each is two descriptors here,
// since the origin lives in the test process).

const fdMargin = 4

// leakCheck records the descriptor count now and returns the check to run once every client closed.
func leakCheck(t *testing.T, srv *Server) func() {
	t.Helper()
	fd0 := stableFdCount(t)
	return func() {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			slabs, fds := srv.SlabsInUse(), fdCount(t)
			if slabs == 0 && fds <= fd0+fdMargin {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leak: %d header slabs in use (want 0), %d fds open (was %d before the case, margin %d)",
					slabs, fds, fd0, fdMargin)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// stableFdCount waits for the descriptor count to settle: gnet opens each loop's poller, wake-up fd and
// (with reuse_port) listener asynchronously, after Ready.
func stableFdCount(t *testing.T) int {
	t.Helper()
	last, same := fdCount(t), 0
	for i := 0; i < 40 && same < 4; i++ {
		time.Sleep(25 * time.Millisecond)
		n := fdCount(t)
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
	}
	return last
}

// faultConfig is one upstream over addrs, with passive health off so that every case is deterministic.
func faultConfig(retries int, responseTimeout string, addrs ...string) string {
	var servers []string
	for _, a := range addrs {
		servers = append(servers, fmt.Sprintf("{ addr = %q }", a))
	}
	return fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ %s ]
connect_timeout = "1s"
response_timeout = %q
retries = %d
max_fails = 0
[[route]]
upstream = "app"
`, strings.Join(servers, ", "), responseTimeout, retries)
}

// resetConn closes c with SO_LINGER 0, so the peer sees a reset.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// holdUntilClosed reads and drops everything until the proxy closes c.
func holdUntilClosed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c)
	return false
}

func writeOr(c net.Conn, s string) bool {
	_, err := io.WriteString(c, s)
	return err == nil
}

const postHello = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"

func TestFaultRefusedIs502(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		dead := refusedAddr(t)
		addr, srv := startProxy(t, loops, faultConfig(0, "2s", dead))
		check := leakCheck(t, srv)
		c, br := dial(t, addr)
		resp, body := roundTrip(t, c, br, reqGET+"\r\n")
		if resp.StatusCode != 502 {
			t.Errorf("refused backend: %d %q, want 502", resp.StatusCode, body)
		}
		c.Close()
		check()
	})
}

func TestFaultResetBeforeResponse(t *testing.T) {
	reset := func(c net.Conn, n int64, req *rawReq) bool { resetConn(c); return false }
	forLoops(t, func(t *testing.T, loops int) {
		t.Run("GET retried on the next server", func(t *testing.T) {
			bad, good := startRawOrigin(t, reset), startRawOrigin(t, nil)
			addr, srv := startProxy(t, loops, faultConfig(1, "2s", bad.addr, good.addr))
			check := leakCheck(t, srv)
			c, br := dial(t, addr)
			resp, body := roundTrip(t, c, br, reqGET+"\r\n")
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Errorf("GET after a reset: %d %q, want 200 from the second server", resp.StatusCode, body)
			}
			if bad.reqs.Load() != 1 || good.reqs.Load() != 1 {
				t.Errorf("resetting server saw %d requests, healthy one %d; want 1 and 1", bad.reqs.Load(), good.reqs.Load())
			}
			c.Close()
			check()
		})
		t.Run("POST is not retried", func(t *testing.T) {
			bad, good := startRawOrigin(t, reset), startRawOrigin(t, nil)
			addr, srv := startProxy(t, loops, faultConfig(1, "2s", bad.addr, good.addr))
			check := leakCheck(t, srv)
			c, br := dial(t, addr)
			resp, body := roundTrip(t, c, br, postHello)
			if resp.StatusCode != 502 {
				t.Errorf("POST after a reset: %d %q, want 502", resp.StatusCode, body)
			}
			if bad.reqs.Load() != 1 || good.reqs.Load() != 0 {
				t.Errorf("resetting server saw %d requests, healthy one %d; want 1 and 0 (a POST is never replayed)",
					bad.reqs.Load(), good.reqs.Load())
			}
			c.Close()
			check()
		})
	})
}

func TestFaultCloseMidHead(t *testing.T) {
	midHead := func(c net.Conn, n int64, req *rawReq) bool {
		writeOr(c, "HTTP/1.1 200 OK\r\nContent-Le")
		return false
	}
	forLoops(t, func(t *testing.T, loops int) {
		t.Run("GET", func(t *testing.T) {
			bad, good := startRawOrigin(t, midHead), startRawOrigin(t, nil)
			addr, srv := startProxy(t, loops, faultConfig(1, "2s", bad.addr, good.addr))
			check := leakCheck(t, srv)
			c, br := dial(t, addr)
			resp, body := roundTrip(t, c, br, reqGET+"\r\n")
			switch {
			case resp.StatusCode == 200 && string(body) == "ok" && good.reqs.Load() == 1:
			case resp.StatusCode == 502:
				t.Logf("GET after a half head: 502 (SPEC 3.4 prefers the next server)")
			default:
				t.Errorf("GET after a half head: %d %q, want 200 from the second server (or 502)", resp.StatusCode, body)
			}
			c.Close()
			check()
		})
		t.Run("POST", func(t *testing.T) {
			bad, good := startRawOrigin(t, midHead), startRawOrigin(t, nil)
			addr, srv := startProxy(t, loops, faultConfig(1, "2s", bad.addr, good.addr))
			check := leakCheck(t, srv)
			c, br := dial(t, addr)
			resp, body := roundTrip(t, c, br, postHello)
			if resp.StatusCode != 502 || good.reqs.Load() != 0 {
				t.Errorf("POST after a half head: %d %q with %d replays, want 502 and none", resp.StatusCode, body, good.reqs.Load())
			}
			c.Close()
			check()
		})
	})
}

func TestFaultCloseMidBody(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			writeOr(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("x", 300))
			time.Sleep(50 * time.Millisecond) // the head and first bytes reach the client first
			return false
		})
		addr, srv := startProxy(t, loops, faultConfig(1, "2s", o.addr))
		check := leakCheck(t, srv)
		c, br := dial(t, addr)
		_, _ = io.WriteString(c, reqGET+"\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response head: %v", err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want the backend's 200 (its head was complete)", resp.StatusCode)
		}
		body, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) >= 1000 {
			t.Errorf("truncated backend body reached the client as %d bytes, err %v; want fewer than 1000 and an unexpected EOF", len(body), err)
		}
		if strings.Trim(string(body), "x") != "" {
			t.Errorf("body bytes are not the backend's: %q", body)
		}
		c.Close()
		check()
	})
}

func TestFaultStallIs504(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool { return holdUntilClosed(c) })
		addr, srv := startProxy(t, loops, faultConfig(1, "300ms", o.addr))
		check := leakCheck(t, srv)
		c, br := dial(t, addr)
		start := time.Now()
		resp, body := roundTrip(t, c, br, reqGET+"\r\n")
		if resp.StatusCode != 504 {
			t.Errorf("stalled backend: %d %q, want 504", resp.StatusCode, body)
		}
		if el := time.Since(start); el < 200*time.Millisecond || el > 1500*time.Millisecond {
			t.Errorf("504 after %v, want about 300ms", el)
		}
		if n := o.reqs.Load(); n != 1 {
			t.Errorf("stalled server saw %d requests, want 1", n)
		}
		c.Close()
		check()
	})
}

// TestFaultMalformedResponseHead: what the backend sends is not an HTTP/1.1 response head the proxy may
// pass on: 502 (SPEC 3.4).
func TestFaultMalformedResponseHead(t *testing.T) {
	cases := []struct{ name, resp string }{
		{"garbage status line", "GARBAGE\r\n\r\n"},
		{"HTTP/0.9 style body", "hello world\r\n"},
		{"status code with 4 digits", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"},
		{"bare LF head", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
		{"both Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"differing Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
		{"Transfer-Encoding not ending in chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhi"},
		{"head without end, over large_header_buffer", strings.Repeat("A", 70000)},
	}
	forLoops(t, func(t *testing.T, loops int) {
		// One origin for every case: the request target says which bad response to send.
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			i, err := strconv.Atoi(strings.TrimPrefix(req.target, "/case/"))
			if err != nil || i >= len(cases) {
				return false
			}
			writeOr(c, cases[i].resp)
			return holdUntilClosed(c)
		})
		addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				check := leakCheck(t, srv)
				c, br := dial(t, addr)
				resp, body := roundTrip(t, c, br, fmt.Sprintf("GET /case/%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
				if resp.StatusCode != 502 {
					t.Errorf("%d %q, want 502", resp.StatusCode, body)
				}
				c.Close()
				check()
			})
		}
	})
}

// TestFaultBadChunkInResponse: the head went to the client, then the chunked body turned out broken:
// the client connection is closed, so it sees a truncated body, never a complete one.
func TestFaultBadChunkInResponse(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		t.Run("after the head was sent", func(t *testing.T) {
			o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
				writeOr(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				time.Sleep(100 * time.Millisecond)
				writeOr(c, "zz\r\nworld\r\n0\r\n\r\n")
				return holdUntilClosed(c)
			})
			addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
			check := leakCheck(t, srv)
			c, br := dial(t, addr)
			_, _ = io.WriteString(c, reqGET+"\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response head: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || err == nil {
				t.Errorf("%d, body %q, err %v: want the 200 head, then a truncated body", resp.StatusCode, body, err)
			}
			if string(body) != "hello" && string(body) != "" {
				t.Errorf("client body %q, want the chunk before the bad one at most", body)
			}
			expectClosed(t, c, br)
			c.Close()
			check()
		})
		t.Run("in the same packet as the head", func(t *testing.T) {
			o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
				writeOr(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nworld\r\n0\r\n\r\n")
				return holdUntilClosed(c)
			})
			addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
			check := leakCheck(t, srv)
			c, br := dial(t, addr)
			_, _ = io.WriteString(c, reqGET+"\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response head: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			switch {
			case resp.StatusCode == 502 && err == nil:
			case resp.StatusCode == 200 && err != nil:
				expectClosed(t, c, br)
			default:
				t.Errorf("%d, body %q, err %v: want 502, or a 200 head with a truncated body", resp.StatusCode, body, err)
			}
			c.Close()
			check()
		})
	})
}

// TestFaultBodyAfterHeadResponse: a backend that sends a body after a HEAD response must not have those
// bytes taken as the response to the next request on its pooled connection. The "body" here is itself a
// whole response, the worst case: reused, it would be served as the answer to the next GET.
func TestFaultBodyAfterHeadResponse(t *testing.T) {
	const fake = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
	serve := func(delay time.Duration) func(c net.Conn, n int64, req *rawReq) bool {
		return func(c net.Conn, n int64, req *rawReq) bool {
			if req.method != "HEAD" {
				return writeOr(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
			}
			head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(fake))
			if delay == 0 {
				return writeOr(c, head+fake)
			}
			if !writeOr(c, head) {
				return false
			}
			time.Sleep(delay)
			return writeOr(c, fake)
		}
	}
	forLoops(t, func(t *testing.T, loops int) {
		for _, v := range []struct {
			name         string
			delay, pause time.Duration
		}{
			{"body in the same write", 0, 0},
			{"body 100ms later, next request after 300ms", 100 * time.Millisecond, 300 * time.Millisecond},
		} {
			t.Run(v.name, func(t *testing.T) {
				o := startRawOrigin(t, serve(v.delay))
				addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
				check := leakCheck(t, srv)
				c, br := dial(t, addr)
				resp, body := roundTrip(t, c, br, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
				if resp.StatusCode != 200 || len(body) != 0 {
					t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
				}
				time.Sleep(v.pause)
				expectGood(t, c, br, 3, "after a HEAD answered with a body")
				c.Close()
				check()
			})
		}
	})
}

// TestFaultExtraBytesAfterResponse: bytes after a complete Content-Length response (here a whole second
// response) mean the backend and the proxy disagree on framing: that connection must not be reused.
func TestFaultExtraBytesAfterResponse(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			if n == 0 {
				return writeOr(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"+"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")
			}
			return writeOr(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
		})
		addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
		check := leakCheck(t, srv)
		c, br := dial(t, addr)
		resp, body := roundTrip(t, c, br, reqGET+"\r\n")
		if resp.StatusCode != 200 || string(body) != "first" {
			t.Fatalf("first: %d %q", resp.StatusCode, body)
		}
		expectGood(t, c, br, 3, "after a response with trailing bytes")
		c.Close()
		check()
	})
}

// TestFaultPooledConnectionClosedWhileIdle: SPEC 3.4, a pooled connection that the backend closed while
// idle is never used for a request: the next request gets a correct answer, not a 502.
func TestFaultPooledConnectionClosedWhileIdle(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			if !writeOr(c, okResponse) {
				return false
			}
			time.Sleep(50 * time.Millisecond) // then close the kept-alive connection while it is idle
			return false
		})
		addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
		check := leakCheck(t, srv)
		c, br := dial(t, addr)
		for i := 0; i < 5; i++ {
			resp, body := roundTrip(t, c, br, reqGET+"\r\n")
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("request %d: %d %q, want 200 \"ok\"", i, resp.StatusCode, body)
			}
			time.Sleep(150 * time.Millisecond)
		}
		c.Close()
		check()
	})
}

// TestFaultPooledConnectionClosedRightAfterResponse: the backend closes each connection right after its
// response, so the proxy may pick a pooled connection in the instant it closes: the request is then
// retried on a fresh connection (README), never answered 502.
func TestFaultPooledConnectionClosedRightAfterResponse(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			writeOr(c, okResponse)
			return false
		})
		addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
		check := leakCheck(t, srv)
		c, br := dial(t, addr)
		for i := 0; i < 30; i++ {
			resp, body := roundTrip(t, c, br, reqGET+"\r\n")
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("request %d: %d %q, want 200 \"ok\"", i, resp.StatusCode, body)
			}
		}
		c.Close()
		check()
	})
}

// expectGood sends n GETs on c and requires each to get the origin's 200 "good": the proof that a pooled
// connection left desynchronised by the previous response was not reused.
func expectGood(t *testing.T, c net.Conn, br *bufio.Reader, n int, after string) {
	t.Helper()
	for i := 0; i < n; i++ {
		resp, body := roundTrip(t, c, br, reqGET+"\r\n")
		if resp.StatusCode != 200 || string(body) != "good" {
			t.Fatalf("GET %d %s: %d %q, want 200 \"good\"", i, after, resp.StatusCode, body)
		}
	}
}
