package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The browser check itself needs Chromium (scripts/browser-check.sh); these tests keep its origin honest
// without one: the jar check, the WebSocket framing, the event pacing and the page's configuration.

func newTestOrigin(t *testing.T, interval time.Duration) (*checker, *httptest.Server) {
	t.Helper()
	c, err := newChecker(3, interval, interval/3)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.handler())
	t.Cleanup(srv.Close)
	return c, srv
}

func jarRequest(t *testing.T, url string, full bool) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < cookieCount; i++ {
		v := cookieVal(i)
		if !full && i == cookieCount-1 {
			v = v[:100] // a jar cut short
		}
		req.AddCookie(&http.Cookie{Name: cookieName(i), Value: v})
	}
	req.Header.Set("X-Pad", padString())
	return req
}

func TestAssetsAndJar(t *testing.T) {
	c, srv := newTestOrigin(t, 10*time.Millisecond)
	if len(c.assets) != 60 {
		t.Fatalf("%d assets, want 60", len(c.assets))
	}
	large := 0
	for _, a := range c.assets {
		if a.Size >= largeAsset {
			large++
		}
	}
	if large != 8 {
		t.Errorf("%d assets of 1 MiB or more, want 8", large)
	}
	if n := cookieHeaderLen(); n < 7400 || n > 7800 || cookieValue+len(cookieName(0))+1 >= 4096 {
		t.Errorf("Cookie header %d bytes (want about 7.5 KB, each cookie under 4 KB)", n)
	}

	a := c.assets[0]
	for _, full := range []bool{true, false} {
		resp, err := http.DefaultClient.Do(jarRequest(t, srv.URL+a.URL, full))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(body, a.body) {
			t.Fatalf("GET %s: %d, %d bytes", a.URL, resp.StatusCode, len(body))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.assetsOK[a.URL] || c.checked != 2 || c.maxCookie != cookieHeaderLen() {
		t.Errorf("assetsOK %v, checked %d, maxCookie %d (want %d)", c.assetsOK[a.URL], c.checked, c.maxCookie, cookieHeaderLen())
	}
	if len(c.problems) != 1 || !strings.Contains(c.problems[0], "cookie sfbc2 changed (100 bytes") {
		t.Errorf("problems %q, want one about the cut jar", c.problems)
	}
}

func TestPageConfig(t *testing.T) {
	c, srv := newTestOrigin(t, 10*time.Millisecond)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Cookies()) != cookieCount {
		t.Fatalf("GET /: %d with %d cookies, want 200 with %d (after the redirect to ?pad=)", resp.StatusCode, len(resp.Cookies()), cookieCount)
	}
	if resp.Request.URL.Query().Get("pad") != padString() {
		t.Errorf("the page's URL has no %d-byte pad", padLen)
	}
	if strings.Contains(string(body), "/*CFG*/") || !strings.Contains(string(body), c.assets[59].URL) {
		t.Error("the page's configuration was not filled in")
	}
}

// wsClientFrame is a masked client frame.
func wsClientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	mask := []byte{0x12, 0x34, 0x56, 0x78}
	f = append(f, mask...)
	for i, c := range payload {
		f = append(f, c^mask[i&3])
	}
	return f
}

// wsServerFrame reads an unmasked server frame.
func wsServerFrame(t *testing.T, r *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		t.Fatalf("server frame %x: want FIN and no mask", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0f, p
}

func TestWebSocketEcho(t *testing.T) {
	if got := wsAccept("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455 1.3
		t.Fatalf("wsAccept = %q", got)
	}
	c, srv := newTestOrigin(t, 10*time.Millisecond)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var cookies []string
	for i := 0; i < cookieCount; i++ {
		cookies = append(cookies, cookieName(i)+"="+cookieVal(i))
	}
	fmt.Fprintf(conn, "GET /ws?pad=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: %s\r\n\r\n", padString(), strings.Join(cookies, "; "))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %d, accept %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Accept"))
	}

	msgs := [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 126), bytes.Repeat([]byte("c"), 70000)}
	for _, m := range msgs {
		conn.Write(wsClientFrame(true, opText, m))
	}
	conn.Write(wsClientFrame(true, opPing, []byte("hi")))
	conn.Write(wsClientFrame(false, opBinary, []byte("frag-")))
	conn.Write(wsClientFrame(true, opContinuation, []byte("mented")))
	for _, m := range msgs {
		if op, p := wsServerFrame(t, br); op != opText || !bytes.Equal(p, m) {
			t.Fatalf("echo of %d bytes: op %d, %d bytes", len(m), op, len(p))
		}
	}
	if op, p := wsServerFrame(t, br); op != opPong || string(p) != "hi" {
		t.Fatalf("pong: op %d %q", op, p)
	}
	if op, p := wsServerFrame(t, br); op != opBinary || string(p) != "frag-mented" {
		t.Fatalf("fragmented echo: op %d %q", op, p)
	}
	conn.Write(wsClientFrame(true, opClose, []byte{0x03, 0xe8}))
	if op, p := wsServerFrame(t, br); op != opClose || !bytes.Equal(p, []byte{0x03, 0xe8}) {
		t.Fatalf("close: op %d %x", op, p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.wsHandshake || c.wsEchoed != 4 {
		t.Errorf("handshake with jar %v, echoed %d, want true and 4", c.wsHandshake, c.wsEchoed)
	}
}

func TestSSEPaced(t *testing.T) {
	const interval = 60 * time.Millisecond
	c, srv := newTestOrigin(t, interval)
	resp, err := http.DefaultClient.Do(jarRequest(t, srv.URL+"/sse?pad="+padString(), true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var times []time.Time
	for len(times) < c.sseEvents && sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			if want := fmt.Sprintf("data: %d ", len(times)); !strings.HasPrefix(line, want) {
				t.Fatalf("event %d: %q", len(times), line)
			}
			times = append(times, time.Now())
		}
	}
	if len(times) != c.sseEvents {
		t.Fatalf("%d events, want %d (%v)", len(times), c.sseEvents, sc.Err())
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < interval/3 {
			t.Errorf("gap %d: %v, want about %v: the events were not flushed one by one", i, gap, interval)
		}
	}
}
