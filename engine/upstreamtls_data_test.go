package engine

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Tests of backend TLS connections once open ([upstream.tls]): sessions resumed, pooled and reused,
// dropped when the backend closes them, bodies both ways, backpressure, health checks. The helpers are
// in upstreamtls_test.go.

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
	uploadHashed(t, c, br, 10<<20)
	for i := 0; i < 3; i++ {
		resp, body := roundTrip(t, c, br, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
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
	huge := hugeBody() // made before the request: under -race on a loaded machine it takes seconds
	slowReaderHeldBack(t, srv, addr, "/huge", huge, " from a TLS backend")
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
