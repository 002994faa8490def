package engine

import (
	"fmt"
	"strings"
	"testing"
)

// requestWithHeaders is a GET whose head has n header lines, Host included.
func requestWithHeaders(n int) string {
	var b strings.Builder
	b.WriteString("GET /h HTTP/1.1\r\nHost: x\r\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "X-H%03d: v\r\n", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestMaxHeaders: server.max_headers bounds the header lines of a request head (431 beyond) and of a
// response head (502 beyond), 100 by default.
func TestMaxHeaders(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		many := blameOrigin(t) // /many: a 200 with 150 header lines
		for _, tc := range []struct {
			extra        string
			req101, r150 int // the status of a request with 101 header lines, of a response with 150
		}{
			{"", 431, 502},
			{"max_headers = 200\n", 200, 200},
			{"max_headers = 100\n", 431, 502},
		} {
			addr, _ := startProxy(t, loops, upstreamConfig(tc.extra, o.addr))
			c, br := dial(t, addr)
			resp, body := roundTrip(t, c, br, requestWithHeaders(100))
			if resp.StatusCode != 200 {
				t.Fatalf("%q: 100 request header lines: %d %q", tc.extra, resp.StatusCode, body)
			}
			resp, body = roundTrip(t, c, br, requestWithHeaders(101))
			if resp.StatusCode != tc.req101 {
				t.Fatalf("%q: 101 request header lines: %d %q, want %d", tc.extra, resp.StatusCode, body, tc.req101)
			}
			if tc.req101 == 200 {
				resp, body = roundTrip(t, c, br, requestWithHeaders(200))
				if resp.StatusCode != 200 {
					t.Fatalf("%q: 200 request header lines: %d %q", tc.extra, resp.StatusCode, body)
				}
				resp, body = roundTrip(t, c, br, requestWithHeaders(201))
				if resp.StatusCode != 431 {
					t.Fatalf("%q: 201 request header lines: %d %q, want 431", tc.extra, resp.StatusCode, body)
				}
			}

			addr, _ = startProxy(t, loops, upstreamConfig(tc.extra, many))
			c, br = dial(t, addr)
			resp, body = roundTrip(t, c, br, "GET /many HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != tc.r150 {
				t.Fatalf("%q: a response with 150 header lines: %d %q, want %d", tc.extra, resp.StatusCode, body, tc.r150)
			}
			if tc.r150 == 200 && (string(body) != "ok" || resp.Header.Get("X-H149") != "vvvvvvvv") {
				t.Fatalf("%q: a response with 150 header lines reached the client as %q, X-H149 %q", tc.extra, body, resp.Header.Get("X-H149"))
			}
		}
	})
}

// TestMaxHeadersIsRestartOnly: the loops' header indexes are sized at start, so a reload that changes
// max_headers is named among the settings that wait for a restart.
func TestMaxHeadersIsRestartOnly(t *testing.T) {
	o := startOrigin(t, "a")
	_, srv := startProxy(t, 1, upstreamConfig("", o.addr))
	next := *srv.cfg
	next.Server.MaxHeaders = 200
	if keys := srv.RestartOnly(&next); len(keys) != 1 || keys[0] != "server.max_headers" {
		t.Fatalf("RestartOnly = %v, want [server.max_headers]", keys)
	}
}
