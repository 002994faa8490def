package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// floodResult is how an origin's flood of interim responses ended.
type floodResult struct {
	sent int64 // bytes written
	err  error // nil when it wrote all it meant to: nobody closed the connection
}

// interimFloodOrigin answers each request with "HTTP/1.1 100 Continue" heads back to back, 64 KiB of them
// a write, as fast as it can, until limit bytes are written or a write fails, and reports how it ended.
func interimFloodOrigin(t *testing.T, limit int64) (string, chan floodResult) {
	t.Helper()
	done := make(chan floodResult, 4)
	batch := bytes.Repeat([]byte("HTTP/1.1 100 Continue\r\n\r\n"), (64<<10)/25)
	addr := serveConns(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		var sent int64
		for sent < limit {
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Write(batch)
			sent += int64(n)
			if err != nil {
				done <- floodResult{sent, err}
				return
			}
		}
		done <- floodResult{sent, nil}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c) // hold the connection until the proxy closes it
	})
	return addr, done
}

// TestInterimResponsesBounded guards against a backend's interim (1xx) responses being relayed or queued
// without bound: a backend flooding "100 Continue" heads to a client that reads nothing held GBs of RSS.
// Interim responses count against the same queue bound as the rest of the response, and a backend that
// sends more than 8 of them for one request has failed: its connection is closed and the client gets 502.
// A few interim responses before the final one (100, 102, 103 with a Link header) still pass, and the
// final response arrives intact.
func TestInterimResponsesBounded(t *testing.T) {
	const final = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	interims := []string{
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 102 Processing\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n",
	}
	// readFinal reads responses until a final (non-1xx) one, counting the interim ones; it gives up past
	// limit interim responses.
	readFinal := func(t *testing.T, br *bufio.Reader, limit int) (*http.Response, []byte, int) {
		t.Helper()
		for n := 0; ; n++ {
			resp, body := readResponse(t, br, false)
			if resp.StatusCode >= 200 || resp.StatusCode == 101 {
				return resp, body, n
			}
			if n >= limit {
				return resp, body, n + 1
			}
		}
	}

	t.Run("a: three interim responses, then the final one", func(t *testing.T) {
		for _, split := range []bool{false, true} {
			o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
				if !split {
					return writeOr(c, strings.Join(interims, "")+final)
				}
				for _, h := range append(interims, final) {
					if !writeOr(c, h) {
						return false
					}
					time.Sleep(5 * time.Millisecond)
				}
				return true
			})
			addr, _ := startProxy(t, 1, faultConfig(0, "2s", o.addr))
			c, br := dial(t, addr)
			for i := 0; i < 3; i++ {
				if _, err := io.WriteString(c, "GET /hints HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, body, n := readFinal(t, br, 8)
				if resp.StatusCode != 200 || string(body) != "hello" || n > 3 {
					t.Fatalf("split=%v request %d: %d %q after %d interim responses, want 200 \"hello\" after at most 3",
						split, i, resp.StatusCode, body, n)
				}
			}
		}
	})

	t.Run("a2: relayed with their headers to HTTP/1.1 clients, to no HTTP/1.0 client", func(t *testing.T) {
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			return writeOr(c, strings.Join(interims, "")+final)
		})
		addr, _ := startProxy(t, 1, faultConfig(0, "2s", o.addr))
		for _, minor := range []int{1, 0} {
			c, br := dial(t, addr)
			if _, err := fmt.Fprintf(c, "GET /hints HTTP/1.%d\r\nHost: x\r\n\r\n", minor); err != nil {
				t.Fatal(err)
			}
			var statuses []int
			var link string
			for {
				resp, body := readResponse(t, br, false)
				statuses = append(statuses, resp.StatusCode)
				if resp.StatusCode == 103 {
					link = resp.Header.Get("Link")
				}
				if resp.StatusCode >= 200 {
					if string(body) != "hello" {
						t.Fatalf("HTTP/1.%d: final body %q", minor, body)
					}
					break
				}
			}
			want := []int{100, 102, 103, 200}
			if minor == 0 {
				want = []int{200}
			}
			if fmt.Sprint(statuses) != fmt.Sprint(want) || (minor == 1 && link != "</style.css>; rel=preload; as=style") {
				t.Fatalf("HTTP/1.%d client got %v (103 Link %q), want %v with the Link header", minor, statuses, link, want)
			}
			c.Close()
		}
	})

	t.Run("b: a flood to a client that reads nothing", func(t *testing.T) {
		const limit = 24 << 20
		originAddr, done := interimFloodOrigin(t, limit)
		addr, srv := startProxy(t, 1, upstreamConfig("io_buffer = \"64KiB\"\n", originAddr))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.(*net.TCPConn).SetReadBuffer(64 << 10) // keep the kernel from absorbing the test
		before := settledHeap()
		stop := heapPeak()
		if _, err := io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		var res floodResult
		select {
		case res = <-done:
		case <-time.After(15 * time.Second):
			stop()
			t.Fatalf("the origin's flood neither ended nor was cut off within 15s")
		}
		held := int64(settledHeap().HeapInuse) - int64(before.HeapInuse)
		growth := int64(stop()) - int64(before.HeapInuse)
		t.Logf("origin wrote %.1f MiB of 100 Continue heads (%v); proxy heap peak +%.1f MiB, +%.1f MiB live after",
			float64(res.sent)/(1<<20), res.err, float64(growth)/(1<<20), float64(held)/(1<<20))
		// Bound: about 2 × io_buffer per connection by rule; 8 MiB leaves room for the loop's read buffers
		// and the collector's lag, and is a third of the flood.
		if growth > 8<<20 || held > 8<<20 {
			t.Errorf("proxy heap grew %.1f MiB (peak), %.1f MiB live, while a backend flooded interim responses to a client reading nothing; bound 8 MiB",
				float64(growth)/(1<<20), float64(held)/(1<<20))
		}
		if res.err == nil {
			t.Errorf("the proxy took all %.1f MiB of interim responses and kept the backend connection: it must close it after 8",
				float64(res.sent)/(1<<20))
		}
		c.Close()
		if n := slabsInUseSettled(srv); n != 0 {
			t.Errorf("%d slabs in use", n)
		}
	})

	t.Run("c: a flood to a client that reads", func(t *testing.T) {
		originAddr, done := interimFloodOrigin(t, 24<<20)
		addr, _ := startProxy(t, 1, upstreamConfig("", originAddr))
		c, br := dial(t, addr)
		if _, err := io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, body, n := readFinal(t, br, 8)
		if resp.StatusCode != 502 || n > 8 {
			t.Errorf("a backend flooding interim responses: %d %q after %d interim responses relayed, want 502 after at most 8",
				resp.StatusCode, body[:min(len(body), 80)], n)
		}
		c.Close()
		select {
		case res := <-done:
			if res.err == nil {
				t.Errorf("the backend connection stayed open through %.1f MiB of interim responses", float64(res.sent)/(1<<20))
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the flooding backend's connection was not closed within 10s")
		}
	})
}
