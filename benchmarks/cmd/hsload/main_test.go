package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchflow/benchmarks/hsreport"
)

// A worker opens a connection per request; with a session cache every connection after its first
// resumes, without one none does, and the server agrees (it sees the same handshakes as resumed).
func TestWorkerResumes(t *testing.T) {
	var serverResumed, serverFull atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS.DidResume {
			serverResumed.Add(1)
		} else {
			serverFull.Add(1)
		}
		if r.Header.Get("X-Probe") != "1" || !r.Close {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "Hello, World!")
	}))
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")

	for _, tc := range []struct {
		resume  bool
		max     uint16
		resumed int64
	}{{false, tls.VersionTLS13, 0}, {true, tls.VersionTLS13, 4}, {true, tls.VersionTLS12, 4}, {false, tls.VersionTLS12, 0}} {
		serverResumed.Store(0)
		serverFull.Store(0)
		conf := &tls.Config{InsecureSkipVerify: true, MaxVersion: tc.max, CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256}}
		if tc.resume {
			conf.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		}
		w := &worker{addr: addr, conf: conf, req: []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Probe: 1\r\nConnection: close\r\n\r\n")}
		for i := 0; i < 5; i++ {
			w.one()
		}
		if w.ok != 5 || w.errs != 0 {
			t.Fatalf("resume %v, version %x: %d ok, %d errors (last %v)", tc.resume, tc.max, w.ok, w.errs, w.lastErr)
		}
		if w.resumed != tc.resumed || w.full != 5-tc.resumed {
			t.Errorf("resume %v, version %x: client counted %d resumed, %d full; want %d resumed", tc.resume, tc.max, w.resumed, w.full, tc.resumed)
		}
		if serverResumed.Load() != w.resumed || serverFull.Load() != w.full {
			t.Errorf("resume %v, version %x: the server saw %d resumed, %d full; the client %d, %d",
				tc.resume, tc.max, serverResumed.Load(), serverFull.Load(), w.resumed, w.full)
		}
		if w.state.Version != tc.max || len(w.lat) != 5 {
			t.Errorf("version %x, want %x; %d latencies", w.state.Version, tc.max, len(w.lat))
		}
	}
}

// With perConn > 1 a connection carries that many requests, only the last asking to close, and the
// server is the one that closes: one handshake for them all.
func TestWorkerKeepAlive(t *testing.T) {
	var conns, closing, requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Close {
			closing.Add(1)
		}
		_, _ = io.WriteString(w, "Hello, World!")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\n"
	w := &worker{addr: strings.TrimPrefix(srv.URL, "https://"), conf: &tls.Config{InsecureSkipVerify: true},
		req: []byte(req + "Connection: close\r\n\r\n"), keep: []byte(req + "\r\n"), perConn: 3, deadline: time.Now().Add(time.Hour)}
	w.one()
	w.one()
	if w.ok != 6 || w.errs != 0 || w.full != 2 || len(w.lat) != 6 {
		t.Fatalf("%d ok, %d errors (%v), %d full handshakes, %d latencies; want 6, 0, 2, 6", w.ok, w.errs, w.lastErr, w.full, len(w.lat))
	}
	if conns.Load() != 2 || requests.Load() != 6 || closing.Load() != 2 {
		t.Errorf("the server saw %d connections, %d requests, %d asking to close; want 2, 6, 2", conns.Load(), requests.Load(), closing.Load())
	}
	// Past the deadline the next request is the last.
	w.deadline = time.Now()
	w.one()
	if w.ok != 7 || closing.Load() != 3 {
		t.Errorf("past the deadline: %d ok, %d closing; want 7, 3", w.ok, closing.Load())
	}
}

// An answer other than 200 and a server that is not there are errors, not requests.
func TestWorkerErrors(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	addr := strings.TrimPrefix(srv.URL, "https://")
	w := &worker{addr: addr, conf: &tls.Config{InsecureSkipVerify: true}, req: []byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")}
	w.one()
	if w.ok != 0 || w.errs != 1 || w.lastErr == nil || !strings.Contains(w.lastErr.Error(), "status 503") {
		t.Errorf("503: %d ok, %d errors, %v", w.ok, w.errs, w.lastErr)
	}
	srv.Close()
	w.one()
	if w.ok != 0 || w.errs != 2 {
		t.Errorf("closed server: %d ok, %d errors, %v", w.ok, w.errs, w.lastErr)
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99); p50 != 51 || p99 != 100 {
		t.Errorf("p50 %v, p99 %v", p50, p99)
	}
	if percentile(nil, 0.99) != 0 {
		t.Error("no latencies: not 0")
	}
}

// With no TLS configuration (-plain) a worker speaks HTTP over TCP and counts no handshakes.
func TestWorkerPlain(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "Hello, World!")
	}))
	defer srv.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\n"
	w := &worker{addr: strings.TrimPrefix(srv.URL, "http://"), req: []byte(req + "Connection: close\r\n\r\n"),
		keep: []byte(req + "\r\n"), perConn: 2, deadline: time.Now().Add(time.Hour)}
	w.one()
	if w.ok != 2 || w.errs != 0 || w.full != 0 || w.resumed != 0 {
		t.Fatalf("%d ok, %d errors (%v), %d full, %d resumed; want 2, 0, 0, 0", w.ok, w.errs, w.lastErr, w.full, w.resumed)
	}
}

// clientConfig verifies against the root it is given: with another root the server is refused; a version other than 1.2 or 1.3 is an error.
func TestClientConfigVerifies(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	conf, err := clientConfig("example.com", ca, "1.3")
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(strings.TrimPrefix(srv.URL, "https://"), conf)
	if err != nil {
		t.Fatalf("the right root: %v", err)
	}
	_ = c.Close()
	// A root that did not sign the server's certificate.
	wrong := filepath.Join(dir, "wrong.pem")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wrong"}, NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	conf, err = clientConfig("example.com", wrong, "1.2")
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := dial(strings.TrimPrefix(srv.URL, "https://"), conf); !errors.As(err, &unknown) {
		t.Errorf("a wrong root: %v, want an unknown authority", err)
	}
	if _, err := clientConfig("x", "", "1.1"); err == nil {
		t.Error("-max-version 1.1 accepted")
	}
}

// -window over plain HTTP and over TLS: "ready" once warm, the window's requests counted between the
// two stdin lines and none after; -pid adds the proxy's CPU per request to the default mode's report.
func TestWindowAndPid(t *testing.T) {
	var served atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = io.WriteString(w, "Hello, World!")
	})
	plain, secure := httptest.NewServer(h), httptest.NewTLSServer(h)
	defer plain.Close()
	defer secure.Close()
	bin := filepath.Join(t.TempDir(), "hsload")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, tc := range []struct{ url, flag string }{{plain.URL, "-plain"}, {secure.URL, "-max-version=1.3"}} {
		addr := tc.url[strings.Index(tc.url, "//")+2:]
		cmd := exec.Command(bin, "-window", tc.flag, "-addr", addr, "-conns", "2", "-duration", "200ms")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(stdout)
		if l, _ := br.ReadString('\n'); l != "ready\n" {
			t.Fatalf("%s: %q, want ready", tc.flag, l)
		}
		before := served.Load()
		if before != 40 {
			t.Errorf("%s: %d requests before the window, want 2 × 20", tc.flag, before)
		}
		_, _ = io.WriteString(stdin, "\n")
		l, _ := br.ReadString('\n')
		var n int64
		if _, err := fmt.Sscanf(l, "requests %d", &n); err != nil || n == 0 || n != served.Load()-before {
			t.Errorf("%s: %q (%v); the server answered %d in the window", tc.flag, l, err, served.Load()-before)
		}
		_, _ = io.WriteString(stdin, "\n")
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s: %v", tc.flag, err)
		}
		served.Store(0)
	}
	out, err := exec.Command(bin, "-plain", "-addr", strings.TrimPrefix(plain.URL, "http://"), "-conns", "2", "-duration", "300ms",
		"-pid", strconv.Itoa(os.Getpid())).Output()
	if err != nil {
		t.Fatal(err)
	}
	var r hsreport.Result
	if err := json.Unmarshal(out, &r); err != nil || r.Requests == 0 || r.ProxyCPUusPerReq <= 0 || r.Full != 0 {
		t.Errorf("-pid: %s (%v)", out, err)
	}
}
