package engine

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchflow/config"
)

// Tests of HTTPS to backends ([upstream.tls], upstreamtls.go, upstream/tls.go, the dialer's handshake).
// Certificates are made at run time by tls_test.go's testPKI: a root, an intermediate, and leaves.

// httpsOrigin is tls_test.go's origin behind a TLS listener: its certificate can be swapped while it
// runs, and it counts what the proxy's connections did.
type httpsOrigin struct {
	*tlsOrigin
	cert       atomic.Pointer[tls.Certificate]
	handshakes atomic.Int64 // handshakes completed
	resumed    atomic.Int64 // ... of which resumed a session
	conns      atomic.Int64 // TCP connections accepted
	closed     atomic.Int64 // ... and closed
	mu         sync.Mutex
	states     []tls.ConnectionState // every completed handshake's state
}

// startHTTPSOrigin serves HTTPS with cert; conf, when not nil, adds to the server's tls.Config (client
// certificates, versions). idle, when > 0, is how long the origin keeps an idle keep-alive connection.
func startHTTPSOrigin(t *testing.T, cert tls.Certificate, conf func(*tls.Config), idle time.Duration) *httpsOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &httpsOrigin{tlsOrigin: &tlsOrigin{addr: ln.Addr().String()}}
	o.cert.Store(&cert)
	tc := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return o.cert.Load(), nil },
		NextProtos:     []string{"http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			o.handshakes.Add(1)
			if cs.DidResume {
				o.resumed.Add(1)
			}
			o.mu.Lock()
			o.states = append(o.states, cs)
			o.mu.Unlock()
			return nil
		},
	}
	if conf != nil {
		conf(tc)
	}
	srv := o.server()
	srv.IdleTimeout = idle
	srv.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			o.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			o.closed.Add(1)
		}
	}
	srv.ErrorLog = log.New(io.Discard, "", 0) // the refusals the tests provoke
	go srv.Serve(tls.NewListener(ln, tc))     //nolint:errcheck
	t.Cleanup(func() { _ = srv.Close() })
	return o
}

func (o *httpsOrigin) lastState() tls.ConnectionState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.states[len(o.states)-1]
}

// pollUntil polls cond until it holds, for up to 10 s; what says what was awaited, for the failure.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// upstreamTLSConfig is upstreamConfig with an [upstream.tls] of tlsKeys (TOML lines) and upstream keys
// of upExtra.
func upstreamTLSConfig(serverExtra, upExtra, tlsKeys string, addrs ...string) string {
	var servers []string
	for _, a := range addrs {
		servers = append(servers, fmt.Sprintf("{ addr = %q }", a))
	}
	return serverExtra + fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"

[[upstream]]
name = "app"
servers = [ %s ]
connect_timeout = "2s"
response_timeout = "5s"
%s
[upstream.tls]
%s

[[route]]
path_prefix = "/"
upstream = "app"
`, strings.Join(servers, ", "), upExtra, tlsKeys)
}

// startTLSBackendProxy runs a proxy from toml (with listen and loops filled in) with its log in a sink.
func startTLSBackendProxy(t *testing.T, loops int, toml string) (string, *Server, *logSink, *config.Config) {
	t.Helper()
	addr := freeAddr(t)
	full := fmt.Sprintf("[server]\nlisten = %q\nloops = %d\n", addr, loops) + toml
	cfg, err := config.Parse([]byte(full))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, full)
	}
	sink := &logSink{}
	srv, _ := serveEngine(t, cfg, slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelInfo})))
	return addr, srv, sink, cfg
}

// TestUpstreamTLSVerifiedChain: a backend whose certificate comes from the intermediate, its chain sent
// whole, is verified against the root (ca) for server_name; 100 requests on one client connection go
// over few backend connections (keep-alive), with ALPN http/1.1 and TLS 1.3; the origin sees the request
// as over plain HTTP to the proxy. Without server_name the name verified is the host of addr (an IP
// address here, in the certificate's IP SANs).
func TestUpstreamTLSVerifiedChain(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		p := newTestPKI(t)
		o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), true), nil, 0)
		addr, _, _, _ := startTLSBackendProxy(t, loops, upstreamTLSConfig("", "",
			fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), o.addr))
		c, br := dial(t, addr)
		for i := 0; i < 100; i++ {
			resp, body := roundTrip(t, c, br, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "hello http" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		if n := o.conns.Load(); n > 2 {
			t.Fatalf("100 requests took %d backend connections", n)
		}
		st := o.lastState()
		if st.NegotiatedProtocol != "http/1.1" || st.Version != tls.VersionTLS13 || st.ServerName != "backend.example" {
			t.Fatalf("ALPN %q, version %x, SNI %q", st.NegotiatedProtocol, st.Version, st.ServerName)
		}
	})
	t.Run("host of addr", func(t *testing.T) {
		p := newTestPKI(t)
		o := startHTTPSOrigin(t, p.pair(t, "ip", []string{"127.0.0.1"}, time.Now().Add(time.Hour), false), nil, 0)
		addr, _, _, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "", fmt.Sprintf("ca = %q", p.rootPEM(t)), o.addr))
		c, br := dial(t, addr)
		if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 || string(body) != "hello http" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}

// refusedHandshake asks the proxy at addr for / and wants a 502, the origin untouched by any request,
// and a log line naming the reason.
func refusedHandshake(t *testing.T, addr string, o *httpsOrigin, sink *logSink, reason string) {
	t.Helper()
	c, br := dial(t, addr)
	if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if n := o.hits.Load(); n != 0 {
		t.Fatalf("the origin served %d requests over a refused connection", n)
	}
	sink.waitCount(t, 1, "upstream tls handshake failed", fmt.Sprintf("reason=%q", reason))
}

// TestUpstreamTLSWrongNameRefused: a certificate valid for another name is refused: 502, a log line
// saying "wrong name", the access log's termination cause, the server blamed (max_fails = 1 with a
// second server takes it down), and the request not sent.
func TestUpstreamTLSWrongNameRefused(t *testing.T) {
	p := newTestPKI(t)
	o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false), nil, 0)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	addr, srv, sink, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig(fmt.Sprintf("[log]\naccess = %q\naccess_format = \"json\"\n", accessLog),
		"retries = 0\nmax_fails = 1\nfail_timeout = \"1m\"",
		fmt.Sprintf("server_name = \"other.example\"\nca = %q", p.rootPEM(t)), o.addr, refusedAddr(t)))
	refusedHandshake(t, addr, o, sink, "wrong name")
	if st := serverStatus(t, statusOf(t, srv), o.addr); st.State != "down" {
		t.Fatalf("a server whose handshake failed is %q, want down (blamed as nginx does)", st.State)
	}
	pollUntil(t, "the access log line", func() bool {
		b, _ := os.ReadFile(accessLog)
		return strings.Contains(string(b), `"status":502`) && strings.Contains(string(b), `"termination":"upstream-tls-handshake"`)
	})
}

// TestUpstreamTLSUnknownCARefused: a certificate from a CA that ca does not hold is refused, and so is
// one checked against the system's roots (no ca).
func TestUpstreamTLSUnknownCARefused(t *testing.T) {
	p, other := newTestPKI(t), newTestPKI(t)
	o := startHTTPSOrigin(t, other.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false), nil, 0)
	for _, keys := range []string{fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), "server_name = \"backend.example\""} {
		addr, _, sink, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "", keys, o.addr))
		refusedHandshake(t, addr, o, sink, "unknown authority")
	}
}

// TestUpstreamTLSExpiredRefused: an expired certificate is refused, the log saying so.
func TestUpstreamTLSExpiredRefused(t *testing.T) {
	p := newTestPKI(t)
	o := startHTTPSOrigin(t, p.pair(t, "old", []string{"backend.example"}, time.Now().Add(-time.Hour), false), nil, 0)
	addr, _, sink, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "",
		fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), o.addr))
	refusedHandshake(t, addr, o, sink, "expired or not yet valid")
}

// TestUpstreamTLSHandshakeOffTheLoop: a backend that accepts the connection and never answers the
// ClientHello holds no event loop: on a proxy with one loop, requests to another upstream are all served
// before the handshake times out (on the loop, none would be until then), and the stalled request gets
// 502 at connect_timeout, logged as a handshake timeout.
func TestUpstreamTLSHandshakeOffTheLoop(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open and silent until the test ends
		}
	}()
	o := startTLSOrigin(t) // plain
	addr, _, sink, _ := startTLSBackendProxy(t, 1, fmt.Sprintf(`
[[upstream]]
name = "silent"
servers = [ { addr = %q } ]
connect_timeout = "3s"
[upstream.tls]
insecure_skip_verify = true

[[upstream]]
name = "plain"
servers = [ { addr = %q } ]

[[route]]
path_prefix = "/silent/"
upstream = "silent"

[[route]]
path_prefix = "/"
upstream = "plain"
`, silent.Addr().String(), o.addr))
	stalled, sbr := dial(t, addr)
	start := time.Now()
	if _, err := io.WriteString(stalled, "GET /silent/x HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Meanwhile the only loop serves other clients.
	for i := 0; i < 20; i++ {
		c, br := dial(t, addr)
		if resp, body := roundTrip(t, c, br, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 || string(body) != "hello http" {
			t.Fatalf("request %d beside the handshake: %d %q", i, resp.StatusCode, body)
		}
	}
	if el := time.Since(start); el > 2900*time.Millisecond {
		t.Fatalf("20 requests took %v beside a handshake that waits 3 s: the loop waited for it", el)
	}
	resp, _ := readResponse(t, sbr, false)
	if el := time.Since(start); resp.StatusCode != 502 || el < 2900*time.Millisecond || el > 8*time.Second {
		t.Fatalf("the stalled handshake: %d after %v, want 502 at connect_timeout (3 s)", resp.StatusCode, el)
	}
	sink.waitCount(t, 1, "upstream tls handshake failed", `reason="handshake timeout"`)
}

// TestUpstreamTLSInsecureSkipVerify: insecure_skip_verify reaches a backend that nothing verifies (an
// unknown CA, another name).
func TestUpstreamTLSInsecureSkipVerify(t *testing.T) {
	other := newTestPKI(t)
	o := startHTTPSOrigin(t, other.pair(t, "backend", []string{"elsewhere.example"}, time.Now().Add(time.Hour), false), nil, 0)
	addr, _, _, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "", "insecure_skip_verify = true", o.addr))
	c, br := dial(t, addr)
	if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// TestUpstreamTLSMutual: an origin that requires a client certificate from the intermediate refuses the
// proxy without one (TLS 1.2: the handshake fails, and the log says the server refused; TLS 1.3: the
// server's alert comes after the client's handshake, on the first read, and the request gets 502 all the
// same, the log naming the alert) and serves it with one, seeing its name.
func TestUpstreamTLSMutual(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(fmt.Sprintf("version %x", v), func(t *testing.T) {
			p := newTestPKI(t)
			clientCAs := x509.NewCertPool()
			clientCAs.AddCert(p.root)
			o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false), func(c *tls.Config) {
				c.ClientAuth, c.ClientCAs, c.MaxVersion = tls.RequireAndVerifyClientCert, clientCAs, v
			}, 0)
			base := fmt.Sprintf("server_name = \"backend.example\"\nca = %q\n", p.rootPEM(t))
			addr, _, sink, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "", base, o.addr))
			if v == tls.VersionTLS12 {
				refusedHandshake(t, addr, o, sink, "refused by the server (handshake failure)")
			} else {
				c, br := dial(t, addr)
				if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 502 {
					t.Fatalf("without a client certificate: %d", resp.StatusCode)
				}
				sink.waitCount(t, 1, "upstream tls connection refused", `reason="refused by the server (certificate required)"`)
			}
			cert, key := p.clientLeaf(t, "proxy")
			addr, _, _, _ = startTLSBackendProxy(t, 1, upstreamTLSConfig("", "", base+fmt.Sprintf("cert = %q\nkey = %q", cert, key), o.addr))
			c, br := dial(t, addr)
			if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 || string(body) != "hello http" {
				t.Fatalf("with a client certificate: %d %q", resp.StatusCode, body)
			}
			if st := o.lastState(); len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "client:proxy" {
				t.Fatalf("the origin saw no client certificate: %+v", st.PeerCertificates)
			}
		})
	}
}

// TestUpstreamTLSResumption: a new backend connection resumes the session an earlier one got, as the
// origin's handshake states say, with TLS 1.2 and 1.3: once a connection per request (keepalive = 0),
// and once a second pooled connection opened while the first is busy, on a proxy with two loops.
func TestUpstreamTLSResumption(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(fmt.Sprintf("version %x", v), func(t *testing.T) {
			p := newTestPKI(t)
			o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false),
				func(c *tls.Config) { c.MaxVersion = v }, 0)
			addr, _, _, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "keepalive = 0",
				fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), o.addr))
			for i := 0; i < 3; i++ {
				c, br := dial(t, addr)
				if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
					t.Fatalf("request %d: %d", i, resp.StatusCode)
				}
			}
			if h, r := o.handshakes.Load(), o.resumed.Load(); h != 3 || r != 2 {
				t.Fatalf("keepalive = 0: %d handshakes, %d resumed; want 3, 2", h, r)
			}
		})
	}
	t.Run("pooled", func(t *testing.T) {
		p := newTestPKI(t)
		o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false), nil, 0)
		o.hold = make(chan struct{})
		addr, _, _, _ := startTLSBackendProxy(t, 2, upstreamTLSConfig("", "",
			fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), o.addr))
		c1, br1 := dial(t, addr)
		if resp, _ := roundTrip(t, c1, br1, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("first: %d", resp.StatusCode)
		}
		// The first client's pooled connection is busy with /hold while others ask: each loop with no
		// idle connection opens one, which resumes.
		if _, err := fmt.Fprint(c1, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, "the held request at the origin", func() bool { return o.holding.Load() == 1 })
		for i := 0; i < 4; i++ {
			c, br := dial(t, addr)
			if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
		close(o.hold)
		if resp, _ := readResponse(t, br1, false); resp.StatusCode != 200 {
			t.Fatalf("held: %d", resp.StatusCode)
		}
		if h, r := o.handshakes.Load(), o.resumed.Load(); h < 2 || r != h-1 {
			t.Fatalf("%d handshakes, %d resumed; want every one after the first resumed", h, r)
		}
	})
}

// TestUpstreamTLSIdleClosedNotUsed: a pooled TLS connection that the backend closes while idle is
// dropped when its close arrives, and the next request goes on a new one without an error.
func TestUpstreamTLSIdleClosedNotUsed(t *testing.T) {
	p := newTestPKI(t)
	o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false), nil, 200*time.Millisecond)
	addr, srv, _, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "",
		fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), o.addr))
	for i := 0; i < 3; i++ {
		c, br := dial(t, addr)
		if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		pollUntil(t, "the origin to close the idle connection", func() bool { return o.closed.Load() == int64(i+1) })
		scrapeSettled(t, srv.AdminAddr(), map[string]float64{
			fmt.Sprintf("switchflow_upstream_connections_open{upstream=%q,server=%q}", "app", o.addr): 0,
		})
	}
	if n := o.conns.Load(); n != 3 {
		t.Fatalf("%d backend connections for three requests, each after the last was closed", n)
	}
}

// TestUpstreamTLSLargeBodies: 10 MiB up and 1 MiB down through a TLS backend, hash-checked.
func TestUpstreamTLSLargeBodies(t *testing.T) {
	p := newTestPKI(t)
	o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false), nil, 0)
	addr, _, _, _ := startTLSBackendProxy(t, 2, upstreamTLSConfig("", "",
		fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), o.addr))
	c, br := dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	up := bigBody(10 << 20)
	sum := sha256.Sum256(up)
	go func() {
		_, _ = fmt.Fprintf(c, "POST /hash HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", len(up))
		_, _ = c.Write(up)
	}()
	resp, body := readResponse(t, br, false)
	if want := fmt.Sprintf("%d %s", len(up), hex.EncodeToString(sum[:])); resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("upload: %d %q, want %q", resp.StatusCode, body, want)
	}
	for i := 0; i < 3; i++ {
		resp, body = roundTrip(t, c, br, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(oneMiB) {
			t.Fatalf("download %d: %d, %d bytes, hash differs", i, resp.StatusCode, len(body))
		}
	}
}

// TestUpstreamTLSSlowReaderHoldsBackend: a client reading a 32 MiB response from a TLS backend slowly
// does not make the proxy hold the response: the record layer decrypts only what the loop reads, and the
// loop stops reading the backend while the client's queue is full (flow.go), as with a plain backend.
func TestUpstreamTLSSlowReaderHoldsBackend(t *testing.T) {
	p := newTestPKI(t)
	o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false), nil, 0)
	addr, srv, _, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("io_buffer = \"64KiB\"\n", "",
		fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), o.addr))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10) // keep the kernel from absorbing the test
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(c, "GET /huge HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReaderSize(c, 16<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response: %v %v", resp, err)
	}
	huge := hugeBody()
	before := settledHeap()
	got, sum, peak := readSlowly(resp.Body, len(huge))
	if got != len(huge) || string(sum) != string(sha256Sum(huge)) {
		t.Fatalf("got %d bytes (want %d), intact=%v", got, len(huge), got == len(huge))
	}
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("heap growth while a slow client read 32 MiB from a TLS backend: %.1f MiB", float64(growth)/(1<<20))
	// As TestSlowReaderHoldsBackend: the origin, its TLS and the test share the heap; without holding,
	// the proxy would hold most of the 32 MiB.
	if growth > 8<<20 {
		t.Fatalf("heap grew %.1f MiB while a slow client read a 32 MiB response", float64(growth)/(1<<20))
	}
	c.Close()
	if n := slabsInUseSettled(srv); n != 0 {
		t.Fatalf("%d slabs in use", n)
	}
}

// TestUpstreamTLSHealthChecks: active checks run over TLS and verify: a server whose certificate names
// another host fails them and goes down, with the reason; once it serves the right certificate it passes
// them and comes back up, and later checks resume the session.
func TestUpstreamTLSHealthChecks(t *testing.T) {
	p := newTestPKI(t)
	good := p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false)
	wrong := p.pair(t, "wrong", []string{"wrong.example"}, time.Now().Add(time.Hour), false)
	o := startHTTPSOrigin(t, wrong, nil, 0)
	addr, srv, sink, _ := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "[upstream.health_check]\npath = \"/healthz\"\ninterval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 1",
		fmt.Sprintf("server_name = \"backend.example\"\nca = %q", p.rootPEM(t)), o.addr))
	sink.waitCount(t, 1, "upstream server down", "by=active", "tls: wrong name")
	if st := serverStatus(t, statusOf(t, srv), o.addr); st.State != "down" || !strings.Contains(st.DownReason, "tls: wrong name") {
		t.Fatalf("status %+v", st)
	}
	c, br := dial(t, addr)
	if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 503 {
		t.Fatalf("with its only server down: %d", resp.StatusCode)
	}
	o.cert.Store(&good)
	sink.waitCount(t, 1, "upstream server up", "by=active")
	// Each check is a new connection: after the first full handshake they resume the server's session.
	pollUntil(t, "a health check that resumed a session", func() bool { return o.resumed.Load() >= 1 })
	c, br = dial(t, addr)
	if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("after the checks passed: %d", resp.StatusCode)
	}
}

// TestUpstreamTLSReload: a reload rebuilds the TLS configuration: a proxy whose ca does not hold the
// backend's root refuses it; after a reload with the right ca, the next request is served.
func TestUpstreamTLSReload(t *testing.T) {
	p, other := newTestPKI(t), newTestPKI(t)
	o := startHTTPSOrigin(t, p.pair(t, "backend", []string{"backend.example"}, time.Now().Add(time.Hour), false), nil, 0)
	addr, srv, sink, cfg := startTLSBackendProxy(t, 1, upstreamTLSConfig("", "",
		fmt.Sprintf("server_name = \"backend.example\"\nca = %q", other.rootPEM(t)), o.addr))
	refusedHandshake(t, addr, o, sink, "unknown authority")
	text := strings.Replace(cfg.TOML(), other.rootPEM(t), p.rootPEM(t), 1)
	next, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(next); err != nil {
		t.Fatal(err)
	}
	c, br := dial(t, addr)
	if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
		t.Fatalf("after the reload: %d", resp.StatusCode)
	}
}

// TestUpstreamTLSCheck: Check refuses a ca file that is missing or holds no certificate, and a client
// key that does not match its certificate, naming the key.
func TestUpstreamTLSCheck(t *testing.T) {
	p := newTestPKI(t)
	aCert, _ := p.clientLeaf(t, "a")
	_, bKey := p.clientLeaf(t, "b")
	cfgFor := func(keys string) *config.Config {
		cfg, err := config.Parse([]byte(upstreamTLSConfig("", "", keys, "127.0.0.1:1")))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, tc := range []struct{ keys, want string }{
		{fmt.Sprintf("ca = %q", p.dir+"/none.pem"), "upstream[0].tls.ca"},
		{fmt.Sprintf("ca = %q", bKey), "holds no PEM certificate"},
		{fmt.Sprintf("cert = %q\nkey = %q", aCert, bKey), "does not match"},
		{fmt.Sprintf("cert = %q\nkey = %q", aCert, bKey), "upstream[0].tls.cert"},
	} {
		if err := Check(cfgFor(tc.keys)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want %q", tc.keys, err, tc.want)
		}
		if _, err := New(cfgFor(tc.keys), testLog()); err == nil {
			t.Fatalf("%s: New started", tc.keys)
		}
	}
	if err := Check(cfgFor(fmt.Sprintf("ca = %q\ncert = %q\nkey = %q", p.rootPEM(t), aCert, strings.Replace(aCert, ".crt", ".key", 1)))); err != nil {
		t.Fatal(err)
	}
}
