package engine

import (
	"crypto/tls"
	"crypto/x509"
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
	"switchflow/internal/sockettest"
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
	sk := sockettest.NewSet(t)
	cfg, addr := proxyConfig(t, sk, loops, toml)
	sink := &logSink{}
	srv, _ := serveEngineWith(t, cfg, slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelInfo})), inherit(sk))
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
