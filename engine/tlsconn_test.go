package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests of the record layer on the loop (tlsconn.go, tlsrec, gnet patch 0012): how TLS records reach the
// engine and leave it. The tests of what HTTPS termination offers are in tls_test.go.

// recConn is a client's socket that can hold its encrypted records (outer type application data or
// change_cipher_spec) until flush, so that a TLS 1.3 Finished and the first request leave in one write,
// can write one byte per system call, and remembers the last record header it read.
type recConn struct {
	net.Conn
	mu      sync.Mutex
	hold    bool
	held    []byte
	oneByte bool
	// The records read: the type of the last one begun, and where the stream stands in them.
	lastType byte
	recLeft  int
	hdr      []byte
}

func (r *recConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hold && len(p) > 0 && (p[0] == 23 || p[0] == 20) {
		r.held = append(r.held, p...)
		return len(p), nil
	}
	if r.oneByte {
		for i := range p {
			if _, err := r.Conn.Write(p[i : i+1]); err != nil {
				return i, err
			}
		}
		return len(p), nil
	}
	return r.Conn.Write(p)
}

func (r *recConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if r.recLeft > 0 {
			k := min(len(b), r.recLeft)
			r.recLeft -= k
			b = b[k:]
			continue
		}
		k := min(len(b), 5-len(r.hdr))
		r.hdr = append(r.hdr, b[:k]...)
		b = b[k:]
		if len(r.hdr) == 5 {
			r.lastType, r.recLeft, r.hdr = r.hdr[0], int(r.hdr[3])<<8|int(r.hdr[4]), r.hdr[:0]
		}
	}
	return n, err
}

func (r *recConn) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = false
	_, err := r.Conn.Write(r.held)
	r.held = nil
	return err
}

func dialRec(t *testing.T, addr string) *recConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &recConn{Conn: c}
}

// TestTLSRequestWithFinished: a TLS 1.3 client whose request leaves in the same write as its Finished;
// crypto/tls reads the request with the handshake, on the handshake goroutine, and the loop must
// still answer it (gnet runs Inbound(nil) after OnOpen) without waiting for another byte.
func TestTLSRequestWithFinished(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", o.addr))
	rc := dialRec(t, ts.tlsAddr)
	rc.hold = true // the ClientHello (type 22) goes; the Finished waits
	conf := ts.clientConfig("a.example")
	conf.MinVersion = tls.VersionTLS13
	c := tls.Client(rc, conf)
	if err := c.Handshake(); err != nil { // TLS 1.3: the client is done once its Finished is written
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /with-finished HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := rc.flush(); err != nil {
		t.Fatal(err)
	}
	resp, body := readResponse(t, bufio.NewReader(c), false)
	if resp.StatusCode != 200 || string(body) != "hello https" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

// TestTLSOneByteWrites: every byte of the client's records, handshake and requests, in a system call
// of its own (TCP_NODELAY): records reach the loop in pieces down to one byte, over TLS 1.2 and 1.3.
func TestTLSOneByteWrites(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", o.addr))
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		rc := dialRec(t, ts.tlsAddr)
		rc.oneByte = true
		conf := ts.clientConfig("a.example")
		conf.MaxVersion = v
		c := tls.Client(rc, conf)
		br := bufio.NewReader(c)
		up := bigBody(3000)
		for i := 0; i < 3; i++ {
			resp, body := roundTrip(t, c, br, fmt.Sprintf("POST /hash HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(up), up))
			if want := fmt.Sprintf("%d %x", len(up), sha256Sum(up)); resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("version %x request %d: %d %q, want %q", v, i, resp.StatusCode, body, want)
			}
		}
	}
}

// TestTLSCloseNotify: a client's close_notify ends its connection (the proxy answers with its own and
// closes; the header slab comes back), and a connection the proxy ends (Connection: close) ends with
// the proxy's close_notify after the response. TLS 1.2, where an alert record's type is in clear.
func TestTLSCloseNotify(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", o.addr))
	conf := ts.clientConfig("a.example")
	conf.MaxVersion = tls.VersionTLS12

	rc := dialRec(t, ts.tlsAddr)
	c := tls.Client(rc, conf)
	br := bufio.NewReader(c)
	if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after our close_notify: %v, want io.EOF", err)
	}
	if rc.lastType != 21 {
		t.Fatalf("the last record was of type %d; want the proxy's close_notify (an alert, 21)", rc.lastType)
	}
	if n := slabsInUseSettled(ts.srv); n != 0 {
		t.Fatalf("%d header slabs in use after the client's close_notify", n)
	}

	rc = dialRec(t, ts.tlsAddr)
	c = tls.Client(rc, conf)
	br = bufio.NewReader(c)
	resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "hello https" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after Connection: close: %v, want io.EOF", err)
	}
	if rc.lastType != 21 {
		t.Fatalf("the last record was of type %d; want the proxy's close_notify (an alert, 21)", rc.lastType)
	}
}

// TestTLSKeyUpdate: openssl s_client sends a TLS 1.3 KeyUpdate asking for ours ("K") between two
// requests; the record layer answers it with its own on the loop, and the second answer, under the new
// keys both ways, decrypts.
func TestTLSKeyUpdate(t *testing.T) {
	ossl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not found: Go's TLS client cannot send a KeyUpdate")
	}
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", o.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Not -quiet or -ign_eof: command letters work only without them. A line "K" is the command.
	cmd := exec.CommandContext(ctx, ossl, "s_client", "-connect", ts.tlsAddr, "-servername", "a.example", "-tls1_3",
		"-CAfile", ts.pki.rootPEM(t), "-crlf", "-msg")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out strings.Builder
	waitFor := func(want string, n int) {
		t.Helper()
		for seen := strings.Count(out.String(), want); seen < n; {
			line, ok := <-lines
			if !ok {
				t.Fatalf("s_client ended before %q #%d:\n%s", want, n, out.String())
			}
			out.WriteString(line + "\n")
			seen = strings.Count(out.String(), want)
		}
	}
	// The answer's body ends without a newline: a line is waited for by the status line, and the bodies
	// are counted once s_client has ended.
	waitFor("Verify return code", 1)
	_, _ = io.WriteString(stdin, "GET /1 HTTP/1.1\nHost: a\n\n")
	waitFor("HTTP/1.1 200 OK", 1)
	_, _ = io.WriteString(stdin, "K\n")
	// -msg shows the handshake messages each way: ours, then the proxy's answer (a KeyUpdate of its
	// own, which "K" asks for), before the next line goes (s_client drops the rest of a command's read).
	waitFor(">>> TLS 1.3, Handshake [length 0005], KeyUpdate", 1)
	waitFor("<<< TLS 1.3, Handshake [length 0005], KeyUpdate", 1)
	_, _ = io.WriteString(stdin, "GET /2 HTTP/1.1\nHost: a\n\n")
	waitFor("HTTP/1.1 200 OK", 2)
	_ = stdin.Close() // s_client ends at the end of its input
	for line := range lines {
		out.WriteString(line + "\n")
	}
	if n := strings.Count(out.String(), "hello https"); n != 2 || o.hits.Load() != 2 {
		t.Fatalf("%d answers, origin saw %d requests; want 2 and 2:\n%s", n, o.hits.Load(), out.String())
	}
}

// TestTLSOnlyH2Offered: a client offering h2 alone in ALPN completes its handshake with no protocol
// chosen (as nginx answers it) and is served HTTP/1.1.
func TestTLSOnlyH2Offered(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", o.addr))
	conf := ts.clientConfig("a.example")
	conf.NextProtos = []string{"h2"}
	conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := 0; i < 2; i++ {
		c, br := ts.dialTLS(t, conf)
		if p := c.ConnectionState().NegotiatedProtocol; p != "" {
			t.Fatalf("ALPN %q, want none", p)
		}
		if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 || string(body) != "hello https" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if got := c.ConnectionState().DidResume; got != (i > 0) {
			t.Fatalf("connection %d: DidResume %v (tickets of the no-ALPN Config)", i, got)
		}
		c.Close()
	}
}

// TestTLSNoGoroutinePerConnection: 200 kept-alive TLS clients, each after a request, hold no goroutine
// of the proxy: the handshake's goroutine ends when the socket goes to its loop.
func TestTLSNoGoroutinePerConnection(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 2, "", "", upstreamConfig("", o.addr))
	base := runtime.NumGoroutine()
	const n = 200
	for i := 0; i < n; i++ {
		c, br := ts.dialTLS(t, ts.clientConfig("a.example"))
		if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("client %d: %d", i, resp.StatusCode)
		}
	}
	// The origin (net/http) keeps a goroutine per backend connection: at most the pool's, far below n.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := runtime.NumGoroutine() - base
		if g < n/4 {
			t.Logf("%d goroutines more with %d TLS clients open", g, n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines more with %d TLS clients open", g, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
