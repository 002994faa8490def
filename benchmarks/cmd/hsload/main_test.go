package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
