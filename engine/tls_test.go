package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchflow/config"
	"switchflow/internal/pki"
	"switchflow/internal/sockettest"
)

// Tests of HTTPS termination (issue 22): tls.go, tlsconn.go. Certificates are made at run time
// (internal/pki): an ECDSA P-256 root, an intermediate, and leaves for a.example (from the root) and
// *.wild.example (from the intermediate, its file holding the chain).

type testPKI struct {
	dir    string
	ca     *pki.Authority
	root   *x509.Certificate
	pool   *x509.CertPool
	serial int64 // the last certificate's serial number
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := pki.New(pki.ECDSA, "test", time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: t.TempDir(), ca: ca, root: ca.Root, pool: x509.NewCertPool()}
	p.pool.AddCert(p.root)
	return p
}

// leaf writes a leaf certificate for names (and its chain when viaInter) and its key, and returns the
// paths.
func (p *testPKI) leaf(t *testing.T, file string, names []string, notAfter time.Time, viaInter bool) (certPath, keyPath string) {
	t.Helper()
	l, err := p.ca.Leaf(names, notAfter, viaInter, p.usage(names[0]))
	if err != nil {
		t.Fatal(err)
	}
	p.serial = p.ca.LastSerial()
	keyPEM, err := l.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(p.dir, file+".crt"), filepath.Join(p.dir, file+".key")
	writeFile(t, certPath, l.ChainPEM())
	writeFile(t, keyPath, keyPEM)
	return certPath, keyPath
}

// usage is a leaf's extended key usage: a client certificate (clientLeaf) is for client authentication,
// every other one for servers.
func (p *testPKI) usage(cn string) x509.ExtKeyUsage {
	if strings.HasPrefix(cn, "client:") {
		return x509.ExtKeyUsageClientAuth
	}
	return x509.ExtKeyUsageServerAuth
}

// clientLeaf writes a client certificate (common name "client:"+name) from the intermediate, its file
// holding the chain, and its key, for mutual TLS.
func (p *testPKI) clientLeaf(t *testing.T, name string) (certPath, keyPath string) {
	return p.leaf(t, "client-"+name, []string{"client:" + name}, time.Now().Add(24*time.Hour), true)
}

// pair is leaf's certificate and key loaded, for a Go TLS server.
func (p *testPKI) pair(t *testing.T, file string, names []string, notAfter time.Time, viaInter bool) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(p.leaf(t, file, names, notAfter, viaInter))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func (p *testPKI) rootPEM(t *testing.T) string {
	path := filepath.Join(p.dir, "root.pem")
	writeFile(t, path, p.ca.RootPEM())
	return path
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // whole, as a deploy replaces a certificate
		t.Fatal(err)
	}
}

// hugeBody is the origin's /huge answer, made when a test first asks for it.
var hugeBody = sync.OnceValue(func() []byte { return bigBody(32 << 20) })

// tlsOrigin is a net/http origin that records the last request's headers and counts requests.
type tlsOrigin struct {
	addr string
	hits atomic.Int64
	mu   sync.Mutex
	last http.Header
	// hold, when set, is what /hold waits for before it answers; holding counts the requests waiting.
	hold    chan struct{}
	holding atomic.Int64
}

func startTLSOrigin(t *testing.T) *tlsOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &tlsOrigin{addr: ln.Addr().String()}
	srv := o.server()
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Close() })
	return o
}

// server is the origin's net/http server, for a plain or a TLS listener.
func (o *tlsOrigin) server() *http.Server {
	return &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.mu.Lock()
		o.last = r.Header.Clone()
		o.mu.Unlock()
		switch r.URL.Path {
		case "/hash": // the upload's length and SHA-256
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		case "/hold":
			o.holding.Add(1)
			<-o.hold
			_, _ = io.WriteString(w, "held")
		case "/huge": // 32 MiB, for a slow reader
			w.Header().Set("Content-Length", strconv.Itoa(len(hugeBody())))
			_, _ = w.Write(hugeBody())
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(oneMiB)))
			_, _ = w.Write(oneMiB)
		default:
			_, _ = io.WriteString(w, "hello "+r.Header.Get("X-Forwarded-Proto"))
		}
	})}
}

func (o *tlsOrigin) header(k string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last.Get(k)
}

// tlsSetup is a running proxy with [tls] and what its tests need.
type tlsSetup struct {
	pki              *testPKI
	srv              *Server
	plain, tlsAddr   string
	aCert, aKey      string // a.example, from the root
	wildCert, wildKy string // *.wild.example and wild.example, via the intermediate
	cfgText          string
	accessLog        string
}

// startTLSProxy runs a proxy with [tls] on a fresh port: certificates a.example (the default, first) and
// *.wild.example. tlsExtra goes into [tls], serverExtra into [server].
func startTLSProxy(t *testing.T, loops int, serverExtra, tlsExtra, upstream string) *tlsSetup {
	t.Helper()
	p := newTestPKI(t)
	ts := &tlsSetup{pki: p}
	ts.aCert, ts.aKey = p.leaf(t, "a", []string{"a.example"}, time.Now().Add(24*time.Hour), false)
	ts.wildCert, ts.wildKy = p.leaf(t, "wild", []string{"*.wild.example", "wild.example"}, time.Now().Add(24*time.Hour), true)
	ts.accessLog = filepath.Join(p.dir, "access.log")
	sk := sockettest.NewSet(t)
	ts.plain = sk.AddListen()
	ts.cfgText = fmt.Sprintf("[server]\nlisten = %q\nloops = %d\n%s\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\naccess = %q\naccess_format = \"json\"\n"+
		"[tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [ { cert = %q, key = %q }, { cert = %q, key = %q } ]\n%s\n",
		ts.plain, loops, serverExtra, ts.accessLog, ts.aCert, ts.aKey, ts.wildCert, ts.wildKy, tlsExtra) + upstream
	cfg, err := config.Parse([]byte(ts.cfgText))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, ts.cfgText)
	}
	srv, _ := serveEngineWith(t, cfg, testLog(), inherit(sk))
	ts.srv = srv
	ts.tlsAddr = srv.TLSAddrs()[0]
	return ts
}

func (ts *tlsSetup) clientConfig(name string) *tls.Config {
	return &tls.Config{RootCAs: ts.pki.pool, ServerName: name}
}

func (ts *tlsSetup) dialTLS(t *testing.T, conf *tls.Config) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", ts.tlsAddr, conf)
	if err != nil {
		t.Fatalf("TLS dial (%s): %v", conf.ServerName, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

// TestTLSForwardsAsHTTPS: clients over TLS 1.2 and 1.3 make 100 requests on one connection; the origin
// sees X-Forwarded-Proto https and the client's own address in X-Forwarded-For; a client offering h2 and
// http/1.1 gets http/1.1; the JSON access log has the TLS version and cipher; /metrics counts the
// handshakes by version.
func TestTLSForwardsAsHTTPS(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 2, "", "", upstreamConfig("", o.addr))
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		conf := ts.clientConfig("a.example")
		conf.MinVersion, conf.MaxVersion = v, v
		conf.NextProtos = []string{"h2", "http/1.1"}
		c, br := ts.dialTLS(t, conf)
		st := c.ConnectionState()
		if st.Version != v || st.NegotiatedProtocol != "http/1.1" {
			t.Fatalf("version %x ALPN %q, want %x http/1.1", st.Version, st.NegotiatedProtocol, v)
		}
		for i := 0; i < 100; i++ {
			resp, body := roundTrip(t, c, br, "GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "hello https" {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		if got := o.header("X-Forwarded-For"); got != "127.0.0.1" {
			t.Fatalf("X-Forwarded-For %q, want the TLS client's address", got)
		}
	}
	// A plain client on the same proxy still says http.
	c, br := dial(t, ts.plain)
	if _, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); string(body) != "hello http" {
		t.Fatalf("plain: %q", body)
	}
	scrapeSettled(t, ts.srv.AdminAddr(), map[string]float64{
		`switchflow_tls_handshakes_total{result="ok",version="1.2"}`: 1,
		`switchflow_tls_handshakes_total{result="ok",version="1.3"}`: 1,
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(ts.accessLog)
		if bytes.Contains(b, []byte(`"tls_version":"1.3","tls_cipher":"TLS_`)) && bytes.Contains(b, []byte(`"tls_version":"1.2","tls_cipher":"TLS_ECDHE_ECDSA_`)) &&
			bytes.Contains(b, []byte(`"route":"/"}`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log without the TLS fields:\n%.2000s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTLSSNIPicksCertificate: an exact name, a wildcard, and no or an unknown name (the first
// certificate); the wildcard one's intermediate goes with it, so a client that trusts only the root
// verifies it.
func TestTLSSNIPicksCertificate(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", o.addr))
	for _, tc := range []struct {
		sni, want string
		chain     int
	}{
		{"a.example", "a.example", 1},
		{"x.wild.example", "*.wild.example", 2},
		{"WILD.example.", "*.wild.example", 2},
		{"", "a.example", 1},
		{"unknown.example", "a.example", 1},
	} {
		conf := ts.clientConfig(tc.sni)
		if tc.sni == "" || tc.sni == "unknown.example" {
			conf.InsecureSkipVerify = true // the name cannot match; the certificate sent is what is tested
		}
		c, br := ts.dialTLS(t, conf)
		certs := c.ConnectionState().PeerCertificates
		if len(certs) != tc.chain || certs[0].Subject.CommonName != tc.want {
			t.Fatalf("SNI %q: %d certificates, leaf %q; want %d, %q", tc.sni, len(certs), certs[0].Subject.CommonName, tc.chain, tc.want)
		}
		if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("SNI %q: status %d", tc.sni, resp.StatusCode)
		}
	}
}

// TestTLSMinVersion13: min_version = "1.3" refuses a client that speaks at most 1.2, and counts it.
func TestTLSMinVersion13(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "min_version = \"1.3\"", upstreamConfig("", o.addr))
	conf := ts.clientConfig("a.example")
	conf.MaxVersion = tls.VersionTLS12
	if c, err := tls.Dial("tcp", ts.tlsAddr, conf); err == nil {
		c.Close()
		t.Fatal("a TLS 1.2 client was served under min_version 1.3")
	}
	c, _ := ts.dialTLS(t, ts.clientConfig("a.example"))
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("version %x", v)
	}
	m := scrapeSettled(t, ts.srv.AdminAddr(), map[string]float64{`switchflow_tls_handshakes_total{result="ok",version="1.3"}`: 1})
	if m[`switchflow_tls_handshakes_total{result="failed",version="unknown"}`]+m[`switchflow_tls_handshakes_total{result="failed",version="1.2"}`] != 1 {
		t.Fatalf("the refused handshake is not counted: %v", m)
	}
	if o.hits.Load() != 0 {
		t.Fatal("the origin saw a request")
	}
}

// TestTLSHandshakeTimeout: a client that sends nothing, and one that sends half a ClientHello, are
// closed within read_header_timeout (1 s here; the sweep and a loaded machine get slack), and counted.
func TestTLSHandshakeTimeout(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "read_header_timeout = \"1s\"", "", upstreamConfig("", o.addr))
	half := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 1, 2, 3, 4, 5, 6, 7, 8}
	for _, send := range [][]byte{nil, half} {
		c, err := net.Dial("tcp", ts.tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if len(send) > 0 {
			_, _ = c.Write(send)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if el := time.Since(start); err != nil || el < 900*time.Millisecond || el > 5*time.Second {
			t.Fatalf("sent %d bytes: closed after %v (%d bytes back, %v); want about 1s", len(send), el, n, err)
		}
	}
	scrapeSettled(t, ts.srv.AdminAddr(), map[string]float64{`switchflow_tls_handshakes_total{result="timeout",version="unknown"}`: 2})
}

// TestTLSPlainHTTPRefused: plain HTTP sent to the TLS port is answered 400 and closed; the origin sees
// nothing.
func TestTLSPlainHTTPRefused(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", o.addr))
	c, br := dial(t, ts.tlsAddr)
	resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("not closed after the 400: %v", err)
	}
	if o.hits.Load() != 0 {
		t.Fatal("plain HTTP on the TLS port reached the origin")
	}
}

// uploadHashed POSTs n bytes to the test origins' /hash on c, writing from a goroutine while the answer
// is read, and checks that the origin got exactly them: it answers their length and SHA-256.
func uploadHashed(t *testing.T, c io.Writer, br *bufio.Reader, n int) {
	t.Helper()
	up := bigBody(n)
	sum := sha256.Sum256(up)
	go func() {
		_, _ = fmt.Fprintf(c, "POST /hash HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", len(up))
		_, _ = c.Write(up)
	}()
	resp, body := readResponse(t, br, false)
	if want := fmt.Sprintf("%d %s", len(up), hex.EncodeToString(sum[:])); resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("upload: %d %q, want %q", resp.StatusCode, body, want)
	}
}

// TestTLSLargeBodies: 10 MiB up and 1 MiB down through TLS, hash-checked, on one connection.
func TestTLSLargeBodies(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 2, "", "", upstreamConfig("", o.addr))
	c, br := ts.dialTLS(t, ts.clientConfig("a.example"))
	uploadHashed(t, c, br, 10<<20)
	resp, body := roundTrip(t, c, br, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(oneMiB) {
		t.Fatalf("download: %d, %d bytes, hash differs", resp.StatusCode, len(body))
	}
}

// TestTLSWebSocket: a wss upgrade is tunnelled through TLS, bytes echoed both ways.
func TestTLSWebSocket(t *testing.T) {
	oaddr, heads := echoUpgradeOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", oaddr))
	c, br := ts.dialTLS(t, ts.clientConfig("a.example"))
	_, _ = io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if head := <-heads; !strings.Contains(head, "X-Forwarded-Proto: https") {
		t.Fatalf("upgrade head at the origin: %q", head)
	}
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("frame %d %s", i, strings.Repeat("x", i*100))
		_, _ = io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %q %v", i, got, err)
		}
	}
}

// TestTLSManyClients: 1,000 TLS clients at once each make a request; every header slab comes back.
func TestTLSManyClients(t *testing.T) {
	o := startTLSOrigin(t)
	// Timeouts far above what 1,000 requests at once take on a loaded 2-core machine under -race: the
	// test is about termination, not the dial queue (at most 32 dials per server and loop, the rest wait
	// within connect_timeout).
	up := strings.NewReplacer(`connect_timeout = "1s"`, `connect_timeout = "20s"`, `response_timeout = "2s"`, `response_timeout = "20s"`).
		Replace(upstreamConfig("", o.addr))
	// read_header_timeout bounds each handshake: 1,000 at once under -race take up to half a minute here.
	ts := startTLSProxy(t, 2, `read_header_timeout = "60s"`, "", up)
	n := 1000
	if raceEnabled {
		// Under the race detector a handshake costs ten times its CPU: 1,000 at once on a loaded 2-core
		// machine outlast any sane bound. make test runs this test again without it, with all 1,000.
		n = 250
	}
	conf := ts.clientConfig("a.example")
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := func() error {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 60 * time.Second}, "tcp", ts.tlsAddr, conf)
				if err != nil {
					return err
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
					return err
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					return err
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil || string(body) != "hello https" {
					return fmt.Errorf("body %q %v", body, err)
				}
				return nil
			}()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error()) // one type: errors of different types would panic
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d TLS clients in %v", n, time.Since(t0))
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d clients failed; first: %v", f, n, firstErr.Load())
	}
	if n := slabsInUseSettled(ts.srv); n != 0 {
		t.Fatalf("%d header slabs still in use", n)
	}
	tlsOpenSettled(t, ts.srv)
}

// tlsOpenSettled waits until no TLS connection is counted open (tlsTerm.open): every close gave its
// place back.
func tlsOpenSettled(t *testing.T, srv *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.tls.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d TLS connections still counted open", srv.tls.open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTLSReloadUnderLoad: certificates are replaced and reloaded (Server.Reload, as SIGHUP does) while
// clients make requests on new and kept-alive connections: no request fails, and new handshakes get the
// new certificate. A reload whose key file is missing is refused and the running certificates stay.
func TestTLSReloadUnderLoad(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 2, "", "", upstreamConfig("", o.addr))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reqs, failed atomic.Int64
	var firstErr atomic.Value
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := func() error {
					c, err := tls.Dial("tcp", ts.tlsAddr, ts.clientConfig("a.example"))
					if err != nil {
						return err
					}
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(30 * time.Second))
					br := bufio.NewReader(c)
					for j := 0; j < 1+i*5; j++ {
						if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
							return err
						}
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							return err
						}
						if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
							return fmt.Errorf("status %d %v", resp.StatusCode, err)
						}
						reqs.Add(1)
					}
					return nil
				}()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error()) // one type: errors differ in theirs
				}
			}
		}(i)
	}
	var lastSerial *big.Int
	for r := 0; r < 5; r++ {
		time.Sleep(200 * time.Millisecond)
		ts.pki.leaf(t, "a", []string{"a.example"}, time.Now().Add(24*time.Hour), false) // rewrites a.crt, a.key
		cfg, err := config.Parse([]byte(ts.cfgText))
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.srv.Reload(cfg); err != nil {
			t.Fatalf("reload %d: %v", r, err)
		}
		lastSerial = big.NewInt(ts.pki.serial)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || reqs.Load() == 0 {
		t.Fatalf("%d requests, %d connections failed; first: %v", reqs.Load(), failed.Load(), firstErr.Load())
	}
	c, _ := ts.dialTLS(t, ts.clientConfig("a.example"))
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(lastSerial) != 0 {
		t.Fatalf("serial %v after the reloads, want %v", got, lastSerial)
	}
	// A reload whose key is missing is refused; the certificate served stays.
	bad := strings.Replace(ts.cfgText, ts.aKey, ts.aKey+".missing", 1)
	cfg, err := config.Parse([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Reload(cfg); err == nil || !strings.Contains(err.Error(), "tls.certificates[0]") {
		t.Fatalf("reload with a missing key: %v", err)
	}
	c, _ = ts.dialTLS(t, ts.clientConfig("a.example"))
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(lastSerial) != 0 {
		t.Fatalf("serial %v after a refused reload, want %v", got, lastSerial)
	}
	t.Logf("%d requests across 5 reloads", reqs.Load())
}

// TestTLSResumption: a second connection resumes the first's session from its ticket, with TLS 1.2 and
// 1.3, on whatever loop it lands (one tls.Config for every connection).
func TestTLSResumption(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 2, "", "", upstreamConfig("", o.addr))
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		conf := ts.clientConfig("a.example")
		conf.MaxVersion = v
		conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		for i := 0; i < 3; i++ {
			c, br := ts.dialTLS(t, conf)
			// A request and its answer: TLS 1.3 sends its ticket after the handshake.
			if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := c.ConnectionState().DidResume; got != (i > 0) {
				t.Fatalf("version %x connection %d: DidResume %v", v, i, got)
			}
			c.Close()
		}
	}
}

// TestTLSCountsTowardMaxConnections: with max_connections = 2, two TLS clients held open take both
// slots; a third gets the prebuilt 503 over TLS.
func TestTLSCountsTowardMaxConnections(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "max_connections = 2", "", upstreamConfig("", o.addr))
	for i := 0; i < 2; i++ {
		c, br := ts.dialTLS(t, ts.clientConfig("a.example"))
		if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("client %d: %d", i, resp.StatusCode)
		}
	}
	c, br := ts.dialTLS(t, ts.clientConfig("a.example"))
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("third client: %v %v", resp, err)
	}
	if n := ts.srv.tls.open.Load(); n < 2 || n > 3 {
		t.Fatalf("%d TLS connections counted open, want the two held (and the refused one until it closes)", n)
	}
}

// TestTLSCheck: Check refuses a key that does not match its certificate and a missing file, naming the
// entry; TLSWarnings names a certificate expired or expiring within 30 days, which Check accepts.
func TestTLSCheck(t *testing.T) {
	p := newTestPKI(t)
	aCert, aKey := p.leaf(t, "a", []string{"a.example"}, time.Now().Add(365*24*time.Hour), false)
	_, bKey := p.leaf(t, "b", []string{"b.example"}, time.Now().Add(365*24*time.Hour), false)
	oldCert, oldKey := p.leaf(t, "old", []string{"old.example"}, time.Now().Add(-time.Hour), false)
	soonCert, soonKey := p.leaf(t, "soon", []string{"soon.example"}, time.Now().Add(10*24*time.Hour), false)
	cfgFor := func(certs ...string) *config.Config {
		var list []string
		for i := 0; i < len(certs); i += 2 {
			list = append(list, fmt.Sprintf("{ cert = %q, key = %q }", certs[i], certs[i+1]))
		}
		cfg, err := config.Parse([]byte("[tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [" + strings.Join(list, ", ") + "]\n" + upstreamConfig("", "127.0.0.1:1")))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if err := Check(cfgFor(aCert, bKey)); err == nil || !strings.Contains(err.Error(), "tls.certificates[0]") || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched key: %v", err)
	}
	if err := Check(cfgFor(aCert, aKey, aCert, aKey+".none")); err == nil || !strings.Contains(err.Error(), "tls.certificates[1]") {
		t.Fatalf("missing key file: %v", err)
	}
	cfg := cfgFor(aCert, aKey, oldCert, oldKey, soonCert, soonKey)
	if err := Check(cfg); err != nil {
		t.Fatalf("expired certificates are warnings, not errors: %v", err)
	}
	w := strings.Join(TLSWarnings(cfg), "\n")
	if !strings.Contains(w, "old.example") || !strings.Contains(w, "expired") || !strings.Contains(w, "soon.example") || strings.Contains(w, "a.example") {
		t.Fatalf("warnings: %s", w)
	}
}

// TestTLSCurlAndOpenSSL: the curl and openssl binaries, where the machine has them, speak to the TLS
// listener: curl verifies against the root and gets the origin's answer; openssl s_client offering h2
// and http/1.1 is given http/1.1 and verifies the chain of the wildcard certificate.
func TestTLSCurlAndOpenSSL(t *testing.T) {
	o := startTLSOrigin(t)
	ts := startTLSProxy(t, 1, "", "", upstreamConfig("", o.addr))
	root := ts.pki.rootPEM(t)
	_, port, _ := net.SplitHostPort(ts.tlsAddr)
	if curl, err := exec.LookPath("curl"); err != nil {
		t.Log("curl not found: its smoke test is skipped")
	} else {
		out, err := exec.Command(curl, "-sS", "--max-time", "20", "--cacert", root, "--resolve", "a.example:"+port+":127.0.0.1",
			"https://a.example:"+port+"/").CombinedOutput()
		if err != nil || string(out) != "hello https" {
			t.Fatalf("curl: %v %q", err, out)
		}
	}
	if ossl, err := exec.LookPath("openssl"); err != nil {
		t.Log("openssl not found: its smoke test is skipped")
	} else {
		cmd := exec.Command(ossl, "s_client", "-connect", ts.tlsAddr, "-servername", "x.wild.example", "-alpn", "h2,http/1.1",
			"-CAfile", root, "-verify_return_error", "-ign_eof")
		cmd.Stdin = strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
		cmd.Stdin = strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		out, _ := cmd.CombinedOutput()
		s := string(out)
		if !strings.Contains(s, "ALPN protocol: http/1.1") || !strings.Contains(s, "Verify return code: 0 (ok)") || !strings.Contains(s, "hello https") {
			t.Fatalf("openssl s_client:\n%s", s)
		}
	}
}

// TestTLSPicksKeyTypeTheClientSupports: an ECDSA and an RSA certificate for the same name, as nginx and
// HAProxy serve them: a client that can use the first (ECDSA) gets it, one limited to RSA cipher suites
// gets the RSA one; listed the other way round, the RSA one is preferred by every client that can use it.
func TestTLSPicksKeyTypeTheClientSupports(t *testing.T) {
	o := startTLSOrigin(t)
	p := newTestPKI(t)
	ecCert, ecKey := p.leaf(t, "ec", []string{"dual.example"}, time.Now().Add(24*time.Hour), true)
	rsaCA, err := pki.New(pki.RSA, "rsa test", time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	l, err := rsaCA.Leaf([]string{"dual.example"}, time.Now().Add(24*time.Hour), true, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := l.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	rsaCert, rsaKey := filepath.Join(p.dir, "rsa.crt"), filepath.Join(p.dir, "rsa.key")
	writeFile(t, rsaCert, l.ChainPEM())
	writeFile(t, rsaKey, keyPEM)
	pool := p.pool.Clone()
	pool.AddCert(rsaCA.Root)

	ecOnly := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	rsaOnly := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	for _, order := range []string{"ecdsa first", "rsa first"} {
		first, second := [2]string{ecCert, ecKey}, [2]string{rsaCert, rsaKey}
		if order == "rsa first" {
			first, second = second, first
		}
		sk := sockettest.NewSet(t)
		cfg, err := config.Parse([]byte(fmt.Sprintf("[server]\nlisten = %q\n[tls]\nlisten = \"127.0.0.1:0\"\n"+
			"certificates = [ { cert = %q, key = %q }, { cert = %q, key = %q } ]\n",
			sk.AddListen(), first[0], first[1], second[0], second[1]) + upstreamConfig("", o.addr)))
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := serveEngineWith(t, cfg, testLog(), inherit(sk))
		ts := &tlsSetup{tlsAddr: srv.TLSAddrs()[0]}
		for _, tc := range []struct {
			name    string
			max     uint16
			suites  []uint16
			wantRSA bool
		}{
			{"TLS 1.3, any key", tls.VersionTLS13, nil, order == "rsa first"},
			{"TLS 1.2, ECDSA suites only", tls.VersionTLS12, ecOnly, false},
			{"TLS 1.2, RSA suites only", tls.VersionTLS12, rsaOnly, true},
		} {
			conf := &tls.Config{RootCAs: pool, ServerName: "dual.example", MaxVersion: tc.max, CipherSuites: tc.suites}
			c, br := ts.dialTLS(t, conf)
			_, isRSA := c.ConnectionState().PeerCertificates[0].PublicKey.(*rsa.PublicKey)
			if isRSA != tc.wantRSA {
				t.Fatalf("%s, %s: RSA certificate %v, want %v", order, tc.name, isRSA, tc.wantRSA)
			}
			if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: dual.example\r\n\r\n"); resp.StatusCode != 200 || string(body) != "hello https" {
				t.Fatalf("%s, %s: %d %q", order, tc.name, resp.StatusCode, body)
			}
		}
	}
}
