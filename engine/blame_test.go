package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// headerLinesResponse is a 200 "ok" whose head has n extra header lines of valueLen bytes each.
func headerLinesResponse(n, valueLen int) string {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
	v := strings.Repeat("v", valueLen)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "X-H%03d: %s\r\n", i, v)
	}
	b.WriteString("\r\nok")
	return b.String()
}

// blameOrigin answers /many with a 200 whose head has 150 header lines (over max_headers), and anything
// else with 200 "ok".
func blameOrigin(t *testing.T) string {
	t.Helper()
	many := headerLinesResponse(150, 8)
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/many":
				if _, err := io.WriteString(c, many); err != nil {
					return
				}
			default:
				if _, err := io.Copy(io.Discard, req.Body); err != nil {
					return
				}
				if _, err := io.WriteString(c, okResponse); err != nil {
					return
				}
			}
		}
	})
}

// serverStates is the state of every server of upstream "app" in the proxy's snapshot, by address.
func serverStates(srv *Server) map[string]string {
	states := map[string]string{}
	for _, u := range srv.Snapshot().Upstreams {
		if u.Name != "app" {
			continue
		}
		for _, s := range u.Servers {
			states[s.Addr] = s.State
		}
	}
	return states
}

func expectAllUp(t *testing.T, srv *Server, n int, after string) {
	t.Helper()
	states := serverStates(srv)
	if len(states) != n {
		t.Fatalf("snapshot names %d servers of app, want %d: %v", len(states), n, states)
	}
	for addr, st := range states {
		if st != "up" {
			t.Errorf("server %s is %q after %s, want up (the proxy's own refusal is not the server's failure)", addr, st, after)
		}
	}
}

func blameConfig(maxFails int, addrs ...string) string {
	return strings.Replace(upstreamConfig("", addrs...), `response_timeout = "2s"`,
		fmt.Sprintf("response_timeout = \"2s\"\nmax_fails = %d\nfail_timeout = \"30s\"", maxFails), 1)
}

// TestProxyRefusalsNeverMarkServersDown guards against the proxy blaming a healthy server for what it
// refuses itself (SPEC: a response refused for its size or shape, a client that leaves, the proxy's own
// lack of descriptors never mark a server down; and, as in nginx, the only server of an upstream is never
// marked down by passive failures), and against a response head limit that depends on how the head's
// bytes arrived: a head larger than large_header_buffer (default 64KiB) or with more than max_headers
// lines (default 100) is 502, any smaller head passes, in one write or trickled.
func TestProxyRefusalsNeverMarkServersDown(t *testing.T) {
	get := func(t *testing.T, addr, path string) (*http.Response, []byte) {
		t.Helper()
		c, br := dial(t, addr)
		defer c.Close()
		return roundTrip(t, c, br, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	}

	t.Run("a: too many header lines, single server", func(t *testing.T) {
		addr, srv := startProxy(t, 1, blameConfig(3, blameOrigin(t)))
		for i := 0; i < 5; i++ {
			if resp, body := get(t, addr, "/many"); resp.StatusCode != 502 {
				t.Fatalf("response with 150 header lines, try %d: %d %q, want 502", i, resp.StatusCode, body)
			}
		}
		if resp, body := get(t, addr, "/"); resp.StatusCode != 200 || string(body) != "ok" {
			t.Errorf("normal request after five refused responses: %d %q, want 200 \"ok\" (not 503: the server was marked down)", resp.StatusCode, body)
		}
		expectAllUp(t, srv, 1, "five responses refused for their header count")
	})

	t.Run("b: 403 before reading an upload, then a reset, single server", func(t *testing.T) {
		// The origin answers once the upload has stalled (the client has written nothing more for 50 ms:
		// every buffer on the way is full, and the proxy has body bytes queued for the origin), so that
		// the reset always finds the proxy with bytes still to write to it.
		var written atomic.Int64
		stalled := func() {
			last, since := written.Load(), time.Now()
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
				if n := written.Load(); n != last {
					last, since = n, time.Now()
				} else if time.Since(since) > 50*time.Millisecond {
					return
				}
			}
		}
		origin := serveConns(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				if req.URL.Path == "/upload" {
					stalled()
					_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden")
					resetConn(c) // the body is unread: the proxy sees a reset
					return
				}
				if _, err := io.WriteString(c, okResponse); err != nil {
					return
				}
			}
		})
		addr, srv := startProxy(t, 1, blameConfig(3, origin))
		body := []byte(strings.Repeat("u", 64<<20))
		for i := 0; i < 5; i++ {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			written.Store(0)
			go func() {
				if _, err := fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
					return
				}
				for off := 0; off < len(body); off += 16 << 10 {
					if _, err := c.Write(body[off : off+16<<10]); err != nil {
						return
					}
					written.Add(16 << 10)
				}
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			switch {
			case err != nil && (isReset(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
				t.Logf("upload %d: closed before an answer (%v)", i, err)
			case err != nil:
				t.Fatalf("upload %d: %v", i, err)
			case resp.StatusCode != 403 && resp.StatusCode != 502:
				t.Fatalf("upload %d: %d, want 403 (or 502)", i, resp.StatusCode)
			}
			c.Close()
		}
		if resp, body := get(t, addr, "/"); resp.StatusCode != 200 || string(body) != "ok" {
			t.Errorf("normal request after five early 403s: %d %q, want 200 \"ok\" (not 503: the server was marked down)", resp.StatusCode, body)
		}
		expectAllUp(t, srv, 1, "five uploads answered 403 early")
	})

	t.Run("c: too many header lines, two servers, max_fails 1", func(t *testing.T) {
		addr, srv := startProxy(t, 1, blameConfig(1, blameOrigin(t), blameOrigin(t)))
		for i := 0; i < 3; i++ {
			if resp, body := get(t, addr, "/many"); resp.StatusCode != 502 {
				t.Fatalf("response with 150 header lines, try %d: %d %q, want 502", i, resp.StatusCode, body)
			}
		}
		expectAllUp(t, srv, 2, "three responses refused for their header count")
		for i := 0; i < 4; i++ {
			if resp, body := get(t, addr, "/"); resp.StatusCode != 200 || string(body) != "ok" {
				t.Errorf("normal request %d: %d %q, want 200", i, resp.StatusCode, body)
			}
		}
	})

	t.Run("d: response head size, in one write or trickled", func(t *testing.T) {
		small := headerLinesResponse(60, 500)  // about 30 KB in 62 lines
		large := headerLinesResponse(70, 1000) // about 70 KB in 72 lines: over large_header_buffer
		addr0 := serveConns(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				resp := small
				if strings.HasPrefix(req.URL.Path, "/large") {
					resp = large
				}
				if !strings.HasSuffix(req.URL.Path, "/trickle") {
					if _, err := io.WriteString(c, resp); err != nil {
						return
					}
					continue
				}
				for off := 0; off < len(resp); off += 1024 {
					if _, err := io.WriteString(c, resp[off:min(off+1024, len(resp))]); err != nil {
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		})
		addr, _ := startProxy(t, 1, faultConfig(0, "5s", addr0)) // header_buffer, large_header_buffer: defaults
		for _, path := range []string{"/small", "/small/trickle", "/large", "/large/trickle"} {
			okCount, want := 0, 502
			if strings.HasPrefix(path, "/small") {
				want = 200
			}
			var last string
			for i := 0; i < 10; i++ {
				resp, body := get(t, addr, path)
				good := resp.StatusCode == want
				if want == 200 {
					good = good && string(body) == "ok" && len(resp.Header) >= 61 && len(resp.Header.Get("X-H059")) == 500
				}
				if good {
					okCount++
				} else {
					last = fmt.Sprintf("%d, %d headers, body %q", resp.StatusCode, len(resp.Header), body[:min(len(body), 80)])
				}
			}
			if okCount != 10 {
				t.Errorf("%s (head of %d bytes): %d in 10 tries answered %d; the last other answer: %s",
					path, strings.Index(map[bool]string{true: small, false: large}[want == 200], "\r\n\r\n")+4, okCount, want, last)
			}
		}
	})
}
