package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rawOrigin is a plain TCP listener that records every byte it reads and parses what it reads itself
// (leniently, so that it can tell what a request smuggled past the proxy would have looked like). By
// default it answers every complete request with a fixed 200 "ok"; serve overrides that per test.
type rawOrigin struct {
	addr  string
	ln    net.Listener
	conns atomic.Int64 // connections accepted
	reqs  atomic.Int64 // complete requests (head and framed body) read

	mu      sync.Mutex
	raw     []byte
	targets []string
	open    map[net.Conn]struct{}
	wg      sync.WaitGroup

	// serve answers request number n (0-based, over all connections) on c. Returning false closes c.
	serve func(c net.Conn, n int64, req *rawReq) bool
}

// rawReq is one request as rawOrigin read it.
type rawReq struct {
	method, target string
	head           string
	body           []byte
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func startRawOrigin(t *testing.T, serve func(c net.Conn, n int64, req *rawReq) bool) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{addr: ln.Addr().String(), ln: ln, open: map[net.Conn]struct{}{}, serve: serve}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.conns.Add(1)
			o.mu.Lock()
			o.open[c] = struct{}{}
			o.mu.Unlock()
			o.wg.Add(1)
			go o.handle(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		o.mu.Lock()
		for c := range o.open {
			c.Close()
		}
		o.mu.Unlock()
		o.wg.Wait()
	})
	return o
}

type recordingReader struct {
	c net.Conn
	o *rawOrigin
}

func (r recordingReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	if n > 0 {
		r.o.mu.Lock()
		r.o.raw = append(r.o.raw, p[:n]...)
		r.o.mu.Unlock()
	}
	return n, err
}

func (o *rawOrigin) handle(c net.Conn) {
	defer o.wg.Done()
	defer func() {
		c.Close()
		o.mu.Lock()
		delete(o.open, c)
		o.mu.Unlock()
	}()
	br := bufio.NewReader(recordingReader{c, o})
	for {
		req, err := readRawRequest(br)
		if err != nil {
			return
		}
		n := o.reqs.Add(1) - 1
		o.mu.Lock()
		o.targets = append(o.targets, req.target)
		o.mu.Unlock()
		if o.serve == nil {
			if _, err := io.WriteString(c, okResponse); err != nil {
				return
			}
			continue
		}
		if !o.serve(c, n, req) {
			return
		}
	}
}

func (o *rawOrigin) bytesRead() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.raw)
}

func (o *rawOrigin) rawSince(off int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.raw[off:])
}

func (o *rawOrigin) lastTarget() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.targets) == 0 {
		return ""
	}
	return o.targets[len(o.targets)-1]
}

func readCRLFLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") {
		return "", errors.New("line not ended by CRLF")
	}
	return line[:len(line)-2], nil
}

// readRawRequest reads one request head and its body: chunked when the last Transfer-Encoding coding is
// chunked, else Content-Length, else none. It is deliberately simple: it only has to count and show
// what crossed the proxy.
func readRawRequest(br *bufio.Reader) (*rawReq, error) {
	line, err := readCRLFLine(br)
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(line, " ", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("bad request line %q", line)
	}
	req := &rawReq{method: parts[0], target: parts[1]}
	var head strings.Builder
	head.WriteString(line + "\r\n")
	cl, chunked := int64(0), false
	for {
		h, err := readCRLFLine(br)
		if err != nil {
			return nil, err
		}
		head.WriteString(h + "\r\n")
		if h == "" {
			break
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("bad header %q", h)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			cl, err = strconv.ParseInt(value, 10, 64)
			if err != nil {
				return nil, err
			}
		case "transfer-encoding":
			codings := strings.Split(value, ",")
			chunked = strings.EqualFold(strings.TrimSpace(codings[len(codings)-1]), "chunked")
		}
	}
	req.head = head.String()
	switch {
	case chunked:
		for {
			sz, err := readCRLFLine(br)
			if err != nil {
				return nil, err
			}
			sz, _, _ = strings.Cut(sz, ";")
			n, err := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bad chunk size %q", sz)
			}
			if n == 0 {
				for {
					tr, err := readCRLFLine(br)
					if err != nil {
						return nil, err
					}
					if tr == "" {
						return req, nil
					}
				}
			}
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(br, buf); err != nil {
				return nil, err
			}
			req.body = append(req.body, buf[:n]...)
		}
	case cl > 0:
		req.body = make([]byte, cl)
		if _, err := io.ReadFull(br, req.body); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// fdCount is the number of open file descriptors of this process.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// expectClosed reads from br and wants the proxy's close (EOF or a reset) within 2 s, with no further
// byte: anything after the error response would be a second response the client was not owed.
func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	extra, err := io.ReadAll(br)
	if len(extra) > 0 {
		t.Errorf("%d bytes after the response: %q", len(extra), extra[:min(len(extra), 200)])
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("connection not closed by the proxy within 2s: %v", err)
	}
}

// sendRaw writes raw on a fresh connection and reads one response (3 s deadline).
func sendRaw(t *testing.T, addr, raw string) (net.Conn, *bufio.Reader, *http.Response, []byte) {
	t.Helper()
	c, br := dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Logf("write: %v (the proxy may have closed early)", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("response body: %v", err)
	}
	return c, br, resp, body
}

type hostileCase struct {
	name   string // the technique the row stops
	raw    string
	status int
	// accept: the request is legitimate and must reach the origin exactly once (status 200), with
	// target as the request target the origin saw.
	accept bool
	target string
}

const (
	reqPOST = "POST / HTTP/1.1\r\nHost: x\r\n"
	reqGET  = "GET / HTTP/1.1\r\nHost: x\r\n"
)

func hostileCases() []hostileCase {
	big := strings.Repeat("a", 9000)
	ext := strings.Repeat("x", 9000)
	var many strings.Builder
	for i := 0; i < 101; i++ {
		fmt.Fprintf(&many, "X-H%d: v\r\n", i)
	}
	return []hostileCase{
		// Framing conflicts (RFC 9112 6.1: a proxy must reject, or at least never forward, both).
		{name: "CL.TE", raw: reqPOST + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", status: 400},
		{name: "TE.CL", raw: reqPOST + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE mixed case ChUnKeD with CL", raw: reqPOST + "Transfer-Encoding: ChUnKeD\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE leading spaces with CL", raw: reqPOST + "Content-Length: 4\r\nTransfer-Encoding:    chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE leading tab with CL", raw: reqPOST + "Content-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE trailing space with CL", raw: reqPOST + "Content-Length: 4\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE trailing tab with CL", raw: reqPOST + "Content-Length: 4\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE space before colon", raw: reqPOST + "Content-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE space before name (obs-fold)", raw: reqPOST + "Content-Length: 4\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE duplicate TE chunked then identity", raw: reqPOST + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", status: 501},
		{name: "TE.TE duplicate TE headers both chunked", raw: reqPOST + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE chunked twice in one list", raw: reqPOST + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE chunked, identity", raw: reqPOST + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", status: 501},
		{name: "TE.TE xchunked", raw: reqPOST + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", status: 501},
		{name: "TE.TE chunked with trailing empty element", raw: reqPOST + "Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE chunked with junk parameter-less suffix", raw: reqPOST + "Transfer-Encoding: chunked x\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE.TE quoted chunked", raw: reqPOST + "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE in HTTP/1.0", raw: "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		// Content-Length abuse.
		{name: "CL.CL differing duplicates", raw: reqPOST + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", status: 400},
		{name: "CL.CL differing list", raw: reqPOST + "Content-Length: 5, 6\r\n\r\nhello!", status: 400},
		{name: "CL plus sign", raw: reqPOST + "Content-Length: +5\r\n\r\nhello", status: 400},
		{name: "CL negative", raw: reqPOST + "Content-Length: -1\r\n\r\n", status: 400},
		{name: "CL hex", raw: reqPOST + "Content-Length: 0x5\r\n\r\nhello", status: 400},
		{name: "CL inner space", raw: reqPOST + "Content-Length: 1 0\r\n\r\nhellohello", status: 400},
		{name: "CL empty", raw: reqPOST + "Content-Length: \r\n\r\n", status: 400},
		{name: "CL int64 overflow", raw: reqPOST + "Content-Length: 99999999999999999999999\r\n\r\n", status: 400},
		{name: "CL 2^63 overflow", raw: reqPOST + "Content-Length: 9223372036854775808\r\n\r\n", status: 400},
		// Chunked body abuse: the head must not reach the backend either when the bad bytes are already
		// in hand (the whole request arrives in one write).
		{name: "chunk-size overflow", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk-size junk after size", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk-size negative", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk-size 0x prefix", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk data longer than size", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk-size bare LF", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk extension over 8KiB", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n5;" + ext + "\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk extension with NUL", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n5;a=\x00\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk extension with bare LF", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunked trailer obs-fold", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", status: 400},
		// Line endings and bytes.
		{name: "bare LF line endings", raw: "GET / HTTP/1.1\nHost: x\n\n", status: 400},
		{name: "bare LF ending one header", raw: "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", status: 400},
		{name: "bare CR in header value", raw: "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", status: 400},
		{name: "bare CR in request line", raw: "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "obs-fold", raw: reqGET + "X-A: a\r\n b\r\n\r\n", status: 400},
		{name: "obs-fold with tab", raw: reqGET + "X-A: a\r\n\tb\r\n\r\n", status: 400},
		{name: "NUL in header value", raw: reqGET + "X-A: a\x00b\r\n\r\n", status: 400},
		{name: "SOH in header value", raw: reqGET + "X-A: a\x01b\r\n\r\n", status: 400},
		{name: "VT in header value", raw: reqGET + "X-A: a\x0bb\r\n\r\n", status: 400},
		{name: "DEL in header value", raw: reqGET + "X-A: a\x7fb\r\n\r\n", status: 400},
		{name: "NUL in request target", raw: "GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "space before colon", raw: reqGET + "X-A : b\r\n\r\n", status: 400},
		{name: "tab before colon", raw: reqGET + "X-A\t: b\r\n\r\n", status: 400},
		{name: "Host space before colon", raw: "GET / HTTP/1.1\r\nHost : x\r\n\r\n", status: 400},
		{name: "header name not a token", raw: reqGET + "X[A]: b\r\n\r\n", status: 400},
		{name: "header without colon", raw: reqGET + "X-A b\r\n\r\n", status: 400},
		// Request line.
		// RFC 9112 3.2.2: routed by its authority, which becomes the Host; the backend gets the origin form.
		{name: "absolute-form accepted and routed", raw: "GET http://x/abs?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, accept: true, target: "/abs?q=1"},
		{name: "absolute-form without a path", raw: "GET http://x?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, accept: true, target: "/?q=1"},
		{name: "absolute-form with userinfo", raw: "GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "asterisk-form with GET", raw: "GET * HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "HTTP/0.9 request line", raw: "GET /\r\n", status: 400},
		{name: "HTTP/2.0 version", raw: "GET / HTTP/2.0\r\nHost: x\r\n\r\n", status: 505},
		{name: "HTTP/1.2 version", raw: "GET / HTTP/1.2\r\nHost: x\r\n\r\n", status: 505},
		{name: "lowercase http/1.1", raw: "GET / http/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "two spaces after method", raw: "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "two spaces before version", raw: "GET /  HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "tab as separator", raw: "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		// RFC 9112 2.2: empty lines before a request line are skipped, as nginx and HAProxy do.
		{name: "leading empty line skipped", raw: "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, accept: true, target: "/"},
		{name: "bare CR before the request line", raw: "\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		// Host.
		{name: "missing Host on HTTP/1.1", raw: "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", status: 400},
		{name: "two Host headers", raw: "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", status: 400},
		{name: "Host with a slash", raw: "GET / HTTP/1.1\r\nHost: x/y\r\n\r\n", status: 400},
		{name: "Host with a space", raw: "GET / HTTP/1.1\r\nHost: x y\r\n\r\n", status: 400},
		// Sizes (header_buffer 8KiB, max_body_size 1KiB).
		{name: "101 headers", raw: reqGET + many.String() + "\r\n", status: 431},
		{name: "head larger than header_buffer", raw: reqGET + "X-Big: " + big + "\r\n\r\n", status: 431},
		{name: "target longer than the slab", raw: "GET /" + big + " HTTP/1.1\r\nHost: x\r\n\r\n", status: 414},
		{name: "CL over max_body_size", raw: reqPOST + "Content-Length: 2000\r\n\r\n" + strings.Repeat("b", 2000), status: 413},
		{name: "chunked body over max_body_size", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("b", 2048) + "\r\n0\r\n\r\n", status: 413},
		{name: "chunked body over max_body_size in small chunks", raw: reqPOST + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("100\r\n"+strings.Repeat("c", 256)+"\r\n", 5) + "0\r\n\r\n", status: 413},
	}
}

// TestSmugglingAndMalformedRequests sends each hostile request on a fresh connection and checks the
// proxy's own answer (SPEC 3.2), the close that follows, and that not one byte reached the origin.
func TestSmugglingAndMalformedRequests(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, nil)
		// large_header_buffer = header_buffer: one tier, so a head past 8 KiB is refused (the large slabs:
		// slabs_test.go).
		addr, srv := startProxy(t, loops, fmt.Sprintf(`max_body_size = "1KiB"
large_header_buffer = "8KiB"
[[upstream]]
name = "app"
servers = [ { addr = %q } ]
connect_timeout = "1s"
response_timeout = "2s"
[[route]]
upstream = "app"
`, o.addr))
		for _, tc := range hostileCases() {
			t.Run(tc.name, func(t *testing.T) {
				before, reqsBefore := o.bytesRead(), o.reqs.Load()
				c, br, resp, body := sendRaw(t, addr, tc.raw)
				if resp.StatusCode != tc.status {
					t.Errorf("status %d %q, want %d", resp.StatusCode, body, tc.status)
				}
				if tc.accept {
					c.Close()
					if n := o.reqs.Load() - reqsBefore; n != 1 {
						t.Errorf("origin got %d requests, want 1", n)
					}
					if got := o.lastTarget(); got != tc.target {
						t.Errorf("origin saw target %q, want %q", got, tc.target)
					}
					return
				}
				if !resp.Close {
					t.Errorf("error response does not say Connection: close")
				}
				expectClosed(t, c, br)
				c.Close()
				time.Sleep(30 * time.Millisecond) // let anything the proxy wrote upstream be read
				if n := o.reqs.Load() - reqsBefore; n != 0 {
					t.Errorf("SMUGGLED: the origin read %d complete request(s)", n)
				}
				if got := o.rawSince(before); got != "" {
					t.Errorf("the origin received %d bytes of a rejected request (SPEC 3.2: the backend never sees it):\n%q",
						len(got), got[:min(len(got), 300)])
				}
			})
		}
		expectSlabsFreed(t, srv)
	})
}

// TestTransferEncodingIdentityChunked: "identity, chunked" ends in chunked, so SPEC 3.2 accepts it (it
// is not "other than chunked last"). Whatever the proxy does, the framing it and the origin see must
// agree: exactly one request with the right body, and a pipelined request after it is a separate one.
func TestTransferEncodingIdentityChunked(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			_, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.target)+len(req.body), req.target+string(req.body))
			return err == nil
		})
		addr, _ := startProxy(t, loops, simpleRawConfig("", o))
		c, br := dial(t, addr)
		_, _ = io.WriteString(c, reqPOST+"Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+
			"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := readResponse(t, br, false)
		switch resp.StatusCode {
		case 400, 501:
			expectClosed(t, c, br)
			if o.bytesRead() != 0 {
				t.Fatalf("refused with %d but the origin got %q", resp.StatusCode, o.rawSince(0))
			}
			return
		case 200:
		default:
			t.Fatalf("status %d %q", resp.StatusCode, body)
		}
		if string(body) != "/hello" {
			t.Fatalf("first response %q, want %q", body, "/hello")
		}
		resp, body = readResponse(t, br, false)
		if resp.StatusCode != 200 || string(body) != "/second" {
			t.Fatalf("pipelined request after it: %d %q", resp.StatusCode, body)
		}
		if n := o.reqs.Load(); n != 2 {
			t.Fatalf("origin read %d requests, want 2", n)
		}
	})
}

func simpleRawConfig(extraServer string, origins ...*rawOrigin) string {
	addrs := make([]string, len(origins))
	for i, o := range origins {
		addrs[i] = o.addr
	}
	return upstreamConfig(extraServer, addrs...)
}

func waitSlabs(t *testing.T, srv *Server, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for srv.SlabsInUse() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.SlabsInUse(); n != want {
		t.Errorf("%d header slabs in use, want %d", n, want)
	}
}

// TestChunkedMaxBodySizeCountsPayload: max_body_size bounds the body (payload) bytes, not the chunked
// framing: 1000 payload bytes in 100 chunks (about 1.6 KB on the wire) fit in max_body_size = 1KiB.
func TestChunkedMaxBodySizeCountsPayload(t *testing.T) {
	o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
		_, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.body), req.body)
		return err == nil
	})
	addr, _ := startProxy(t, 1, simpleRawConfig("max_body_size = \"1KiB\"\n", o))
	payload := strings.Repeat("0123456789", 100)
	var b strings.Builder
	for i := 0; i < len(payload); i += 10 {
		fmt.Fprintf(&b, "a\r\n%s\r\n", payload[i:i+10])
	}
	b.WriteString("0\r\n\r\n")
	c, br := dial(t, addr)
	resp, body := roundTrip(t, c, br, reqPOST+"Transfer-Encoding: chunked\r\n\r\n"+b.String())
	if resp.StatusCode != 200 || string(body) != payload {
		t.Fatalf("1000-byte chunked body (%d bytes on the wire) with max_body_size 1KiB: %d %q, want 200 and the body echoed",
			b.Len(), resp.StatusCode, body[:min(len(body), 60)])
	}
}

// TestBadChunkStreamedAfterHead: when the bad chunk arrives after the head was forwarded, the proxy
// can no longer keep the head from the backend, but it must still answer 400, close both sides, and
// forward nothing from the bad chunk on: the request smuggled behind it never reaches the origin.
func TestBadChunkStreamedAfterHead(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startRawOrigin(t, nil)
		addr, srv := startProxy(t, loops, simpleRawConfig("", o))
		c, br := dial(t, addr)
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(c, reqPOST+"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		time.Sleep(100 * time.Millisecond)
		_, _ = io.WriteString(c, "3\r\nabcdef\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		_, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != 400 {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
		expectClosed(t, c, br)
		c.Close()
		time.Sleep(50 * time.Millisecond)
		if n := o.reqs.Load(); n != 0 {
			t.Errorf("the origin read %d complete requests, want 0", n)
		}
		if got := o.rawSince(0); strings.Contains(got, "abc") || strings.Contains(got, "smuggled") {
			t.Errorf("bytes from the bad chunk on reached the origin:\n%q", got)
		}
		waitSlabs(t, srv, 0)
	})
}
