package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Wire-level details of RFC 9110/9112 that a client relies on to frame the next response: no body on
// an answer to HEAD, empty lines before a request line, read_header_timeout from the accept, Date.

// wireConfig: host ok.test reaches a raw origin, dead.test two refused addresses (one failure marks
// each down: 502, then 503), stall.test an origin that never answers (504); any other host gets 404.
func wireConfig(t *testing.T, extraServer string) string {
	t.Helper()
	ok := startRawOrigin(t, nil)
	stall := startRawOrigin(t, func(c net.Conn, _ int64, _ *rawReq) bool { return holdUntilClosed(c) })
	return extraServer + fmt.Sprintf(`
[[upstream]]
name = "ok"
servers = [ { addr = %q } ]

[[upstream]]
name = "dead"
servers = [ { addr = %q }, { addr = %q } ]
retries = 1
max_fails = 1
fail_timeout = "30s"

[[upstream]]
name = "stall"
servers = [ { addr = %q } ]
response_timeout = "300ms"

[[route]]
host = "ok.test"
upstream = "ok"

[[route]]
host = "dead.test"
upstream = "dead"

[[route]]
host = "stall.test"
upstream = "stall"
`, ok.addr, refusedAddr(t), refusedAddr(t), stall.addr)
}

// expectHeadAnswer reads the answer to a HEAD on a kept-alive connection: status want, a Content-Length
// (as for GET, RFC 9110 9.3.2) and no body, which the 404 to a GET sent right after proves: its status
// line must come next on the wire.
func expectHeadAnswer(t *testing.T, c net.Conn, br *bufio.Reader, want int) {
	t.Helper()
	resp, _ := readResponse(t, br, true)
	if resp.StatusCode != want {
		t.Fatalf("HEAD: status %d, want %d", resp.StatusCode, want)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Content-Length")); err != nil || n <= 0 {
		t.Errorf("HEAD answer has Content-Length %q, want the GET body's length", resp.Header.Get("Content-Length"))
	}
	if resp.Close {
		t.Fatalf("HEAD answer %d closes the connection; want keep-alive", want)
	}
	if _, err := io.WriteString(c, "GET /next HTTP/1.1\r\nHost: unrouted.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 404 ") {
		t.Fatalf("after the HEAD answer the next bytes are %q (%v), want the next response's status line: the HEAD answer had a body", line, err)
	}
	resp, body := readResponse(t, bufio.NewReader(io.MultiReader(strings.NewReader(line), br)), false)
	if resp.StatusCode != 404 || string(body) != "404 Not Found\n" {
		t.Fatalf("next response: %d %q", resp.StatusCode, body)
	}
}

// expectHeadClose reads everything until the proxy closes and checks it is one head with status want,
// a Content-Length, and not one byte after the blank line.
func expectHeadClose(t *testing.T, c net.Conn, want int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("not closed within 3s: %v (read %q)", err, got)
	}
	end := bytes.Index(got, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatalf("no complete head: %q", got)
	}
	head, rest := got[:end+4], got[end+4:]
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 "+strconv.Itoa(want)+" ")) {
		t.Fatalf("answer %q, want status %d", head, want)
	}
	if !bytes.Contains(head, []byte("\r\nContent-Length: ")) || !bytes.Contains(head, []byte("\r\nConnection: close\r\n")) {
		t.Errorf("head lacks Content-Length or Connection: close: %q", head)
	}
	if len(rest) > 0 {
		t.Errorf("answer to HEAD has a body: %q", rest)
	}
}

// TestHeadBuiltResponsesHaveNoBody: the responses the proxy builds itself, sent for a HEAD, are the same
// heads (Content-Length included) with no body (RFC 9110 9.3.2), so a keep-alive client frames the next
// response right.
func TestHeadBuiltResponsesHaveNoBody(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		addr, _ := startProxy(t, loops, wireConfig(t, "read_header_timeout = \"500ms\"\nmax_body_size = \"10\"\nlarge_header_buffer = \"8KiB\"\n"))

		t.Run("kept alive", func(t *testing.T) {
			c, br := dial(t, addr)
			for _, tc := range []struct {
				host string
				want int
			}{
				{"unrouted.test", 404},
				{"dead.test", 502},
				{"dead.test", 503}, // marked down by the 502
				{"stall.test", 504},
			} {
				if _, err := io.WriteString(c, "HEAD /x HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				expectHeadAnswer(t, c, br, tc.want)
			}
			// The GET answer's length, for comparison.
			resp, body := roundTrip(t, c, br, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 404 || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Fatalf("GET: %d, Content-Length %q, body %q", resp.StatusCode, resp.Header.Get("Content-Length"), body)
			}
			if _, err := io.WriteString(c, "HEAD /nothing HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			head, _ := readResponse(t, br, true)
			if head.Header.Get("Content-Length") != resp.Header.Get("Content-Length") {
				t.Errorf("HEAD Content-Length %q, GET %q", head.Header.Get("Content-Length"), resp.Header.Get("Content-Length"))
			}
		})

		big := strings.Repeat("a", 9000)
		for _, tc := range []struct {
			name string
			raw  string
			want int
		}{
			{"400 bad header", "HEAD / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400},
			{"400 after empty lines", "\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400},
			{"408 head not complete", "HEAD / HTTP/1.1\r\nHost: x\r\n", 408},
			{"413 body over max_body_size", "HEAD / HTTP/1.1\r\nHost: ok.test\r\nContent-Length: 100\r\n\r\n", 413},
			{"414 target beyond the slab", "HEAD /" + big + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
			{"431 head beyond the slab", "HEAD / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", 431},
			{"501 transfer coding", "HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, _ := dial(t, addr)
				if _, err := io.WriteString(c, tc.raw); err != nil {
					t.Logf("write: %v (the proxy may have closed early)", err)
				}
				expectHeadClose(t, c, tc.want)
			})
		}

		t.Run("GET still gets the body", func(t *testing.T) {
			c, _ := dial(t, addr)
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			got, _ := io.ReadAll(c)
			if !bytes.HasSuffix(got, []byte("\r\n\r\n400 Bad Request\n")) {
				t.Errorf("400 to a GET: %q", got)
			}
		})
	})
}

// TestCacheHeadHitHasNoBody: a HEAD answered from the micro-cache carries the stored head and no body.
func TestCacheHeadHitHasNoBody(t *testing.T) {
	o := startCacheOrigin(t)
	addr, _ := startProxy(t, 1, cacheConfig(o, "30s", "16MiB"))
	c, br := dial(t, addr)
	resp, body := get(t, c, br, "GET", "/h?size=100", "")
	if resp.StatusCode != 200 || len(body) != 100 {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	if _, err := io.WriteString(c, "HEAD /h?size=100 HTTP/1.1\r\nHost: cache.test\r\n\r\nGET /h?size=100 HTTP/1.1\r\nHost: cache.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, _ = readResponse(t, br, true)
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("Content-Length") != "100" {
		t.Fatalf("HEAD: %d, X-Cache %q, Content-Length %q", resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("Content-Length"))
	}
	resp, b := readResponse(t, br, false)
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "HIT" || len(b) != 100 || !strings.HasPrefix(string(b), "n=1;") {
		t.Fatalf("GET after the HEAD hit: %d, X-Cache %q, body %q", resp.StatusCode, resp.Header.Get("X-Cache"), b[:min(len(b), 20)])
	}
	if n := o.count("cache.test", "/h?size=100"); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// TestEmptyLinesBeforeRequest: CRLFs and bare LFs before a request line are skipped (RFC 9112 2.2), on a
// new connection and between kept-alive requests; the origin never sees them; a flood of them fills the
// slab and ends in 431, never a hang. (Empty lines alone leave the idle clock running:
// TestReadHeaderTimeoutFromAccept.)
func TestEmptyLinesBeforeRequest(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, nil)
		addr, srv := startProxy(t, loops, simpleRawConfig("header_buffer = \"1KiB\"\nlarge_header_buffer = \"1KiB\"\nidle_timeout = \"600ms\"\nread_header_timeout = \"200ms\"\n", o))

		t.Run("new connection", func(t *testing.T) {
			for _, pre := range []string{"\r\n", "\n", "\r\n\n\r\n"} {
				c, br := dial(t, addr)
				resp, body := roundTrip(t, c, br, pre+"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
				if resp.StatusCode != 200 || string(body) != "ok" {
					t.Fatalf("%q before the request line: %d %q", pre, resp.StatusCode, body)
				}
				c.Close()
			}
		})

		t.Run("kept alive after a body", func(t *testing.T) {
			before := o.bytesRead()
			reqs := o.reqs.Load()
			c, br := dial(t, addr)
			// A CRLF after a POST body, as some clients send.
			if _, err := io.WriteString(c, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				resp, body := readResponse(t, br, false)
				if resp.StatusCode != 200 || string(body) != "ok" {
					t.Fatalf("response %d: %d %q", i, resp.StatusCode, body)
				}
			}
			if n := o.reqs.Load() - reqs; n != 2 {
				t.Errorf("origin read %d requests, want 2", n)
			}
			if got := o.rawSince(before); strings.Contains(got, "hello\r\n") || !strings.Contains(got, "GET /second HTTP/1.1\r\n") {
				t.Errorf("origin received %q", got)
			}
		})

		t.Run("flood ends in 431", func(t *testing.T) {
			c, br := dial(t, addr)
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.WriteString(c, strings.Repeat("\r\n", 1000)); err != nil {
				t.Logf("write: %v", err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer to 2000 bytes of empty lines: %v", err)
			}
			_, _ = io.ReadAll(resp.Body)
			if resp.StatusCode != 431 {
				t.Errorf("status %d, want 431", resp.StatusCode)
			}
			expectClosed(t, c, br)
		})

		waitSlabs(t, srv, 0)
	})
}

// TestDateAddedWhenMissing: a forwarded response without Date gets the proxy's (RFC 9110 6.6.1); one
// with Date keeps the backend's, once.
func TestDateAddedWhenMissing(t *testing.T) {
	const backendDate = "Mon, 02 Jan 2006 15:04:05 GMT"
	o := startRawOrigin(t, func(c net.Conn, _ int64, req *rawReq) bool {
		head, body := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "ok"
		switch req.target {
		case "/dated":
			head = "HTTP/1.1 200 OK\r\ndate: " + backendDate + "\r\nContent-Length: 2\r\n\r\n"
		case "/chunked":
			head, body = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "2\r\nok\r\n0\r\n\r\n"
		}
		if req.method == "HEAD" {
			body = ""
		}
		_, err := io.WriteString(c, head+body)
		return err == nil
	})
	addr, _ := startProxy(t, 1, simpleRawConfig("", o))
	c, br := dial(t, addr)
	for _, target := range []string{"/plain", "/chunked"} {
		for _, method := range []string{"GET", "HEAD"} {
			resp, body := roundTrip(t, c, br, method+" "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || (method == "GET" && string(body) != "ok") {
				t.Fatalf("%s %s: %d %q", method, target, resp.StatusCode, body)
			}
			dates := resp.Header.Values("Date")
			if len(dates) != 1 {
				t.Fatalf("%s %s: Date headers %q, want one", method, target, dates)
			}
			d, err := http.ParseTime(dates[0])
			if err != nil || time.Since(d).Abs() > 5*time.Second {
				t.Errorf("%s %s: Date %q is not now (%v)", method, target, dates[0], err)
			}
		}
	}
	resp, _ := roundTrip(t, c, br, "GET /dated HTTP/1.1\r\nHost: x\r\n\r\n")
	if dates := resp.Header.Values("Date"); len(dates) != 1 || dates[0] != backendDate {
		t.Errorf("backend's Date: got %q, want [%q]", dates, backendDate)
	}
}

// TestBuiltHeadAndAddedDateAllocateNothing: the answer to a HEAD is a subslice of the prebuilt bytes, and
// the Date added to a forwarded response is appended in the loop's head buffer: neither allocates. As in
// TestCacheHitAllocatesNothing the whole process is counted, client and origin included, so the origin
// here answers from fixed buffers.
func TestBuiltHeadAndAddedDateAllocateNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	oaddr := fixedOrigin(t, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	addr, _ := startProxy(t, 1, fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q } ]

[[route]]
host = "routed.test"
upstream = "app"
`, oaddr))
	c, br := dial(t, addr)
	buf := make([]byte, 4096)
	exchange := func(req []byte, tail string) func() {
		end := []byte(tail)
		done := func(b []byte) bool { return bytes.HasSuffix(b, end) }
		return func() { writeReadUntil(t, c, br, buf, req, done) }
	}
	for _, tc := range []struct {
		name string
		req  string
		tail string
	}{
		{"HEAD answered 404 by the proxy", "HEAD /x HTTP/1.1\r\nHost: unrouted.test\r\n\r\n", "\r\n\r\n"},
		{"forwarded response given a Date", "GET / HTTP/1.1\r\nHost: routed.test\r\n\r\n", "\r\n\r\nok"},
	} {
		f := exchange([]byte(tc.req), tc.tail)
		f()
		if allocs := testing.AllocsPerRun(1000, f); allocs != 0 {
			t.Errorf("%s: %.2f allocations per request", tc.name, allocs)
		}
	}
}

// TestResponseHeadAsIs: a response head with nothing to drop, merge or add reaches a keep-alive HTTP/1.1
// client byte for byte, whitespace included, body and all; one with a hop-by-hop header, a repeated
// Content-Length, an HTTP/1.0 status line, or going to an HTTP/1.0 client is rebuilt.
func TestResponseHeadAsIs(t *testing.T) {
	const date = "Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n"
	big := strings.Repeat("0123456789abcdef", 1<<20/16) // spans many reads; the rest is spliced
	heads := map[string]string{
		"/clean": "HTTP/1.1 200 OK\r\n" + date + "x-odd:value\r\nX-Pad:  spaced  \r\nContent-Length: 2\r\n\r\n",
		"/big":   "HTTP/1.1 200 Fine\r\n" + date + "x-odd:value\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n",
		"/hop":   "HTTP/1.1 200 OK\r\n" + date + "Keep-Alive: timeout=5\r\nx-odd:value\r\nContent-Length: 2\r\n\r\n",
		"/te":    "HTTP/1.1 200 OK\r\n" + date + "TE: trailers\r\nx-odd:value\r\nContent-Length: 2\r\n\r\n",
		"/twice": "HTTP/1.1 200 OK\r\n" + date + "x-odd:value\r\nContent-Length: 2, 2\r\n\r\n",
		"/v10":   "HTTP/1.0 200 OK\r\n" + date + "x-odd:value\r\nContent-Length: 2\r\n\r\n",
	}
	o := startRawOrigin(t, func(c net.Conn, _ int64, req *rawReq) bool {
		body := "ok"
		if req.target == "/big" {
			body = big
		}
		_, err := io.WriteString(c, heads[req.target]+body)
		return err == nil
	})
	addr, srv := startProxy(t, 1, simpleRawConfig("", o))
	rebuilt := "HTTP/1.1 200 OK\r\n" + date + "x-odd: value\r\nContent-Length: 2\r\n\r\nok"
	c, br := dial(t, addr)
	for _, tc := range []struct{ target, want string }{
		{"/clean", heads["/clean"] + "ok"},
		{"/big", heads["/big"] + big},
		{"/hop", rebuilt},
		{"/te", rebuilt},
		{"/twice", rebuilt},
		{"/v10", rebuilt},
		{"/clean", heads["/clean"] + "ok"}, // the connection is still in step
	} {
		if _, err := io.WriteString(c, "GET "+tc.target+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(tc.want))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("%s: %v after %q", tc.target, err, got)
		}
		if string(got) != tc.want {
			t.Fatalf("%s: got\n%q\nwant\n%q", tc.target, trimTo(string(got), 300), trimTo(tc.want, 300))
		}
	}
	if splices(t, srv) != 1 {
		t.Errorf("the 1 MiB body behind a head sent as it came was not spliced")
	}
	// An HTTP/1.0 client is told the connection closes, so the head cannot go as it came.
	c10, br10 := dial(t, addr)
	if _, err := io.WriteString(c10, "GET /clean HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c10.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(br10)
	want := "HTTP/1.1 200 OK\r\n" + date + "x-odd: value\r\nX-Pad: spaced\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
	if err != nil || string(got) != want {
		t.Fatalf("HTTP/1.0 client: %v, got\n%q\nwant\n%q", err, got, want)
	}
}

func trimTo(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
