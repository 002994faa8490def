package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// scenario is one kind of load. Every scenario but idle10k and slowread is
// a wrk run.
type scenario struct {
	name     string
	desc     string
	path     string
	conns    int      // wrk -c
	headers  []string // wrk -H
	postSize int      // > 0: POST a body this large (wrk lua script)
	idle     int      // > 0: no wrk; hold this many idle connections and measure memory
	// slow > 0: no wrk; this many clients each GET s.path (a body of
	// slowBodyMiB) and read it at slowRate for the run's duration, and the
	// proxy's RSS growth is measured (slowread.go).
	slow int
	// cache: the proxy runs with its response cache on for cachePrefix
	// (1 s TTL); proxies without a cache are skipped, and the harness
	// reports how many requests reached the origin on s.path.
	cache bool
	// tls names the certificate of an HTTPS scenario ("ecdsa": P-256, "rsa": 2048 bits): the proxy
	// also listens for TLS with it, and the load goes there. Empty in the plain scenarios.
	tls string
	// hsload: the load is benchmarks/cmd/hsload, not wrk: a new TLS connection per request, resuming
	// sessions when resume is set. tlsMax is the highest version the client offers ("1.2"; empty: 1.3):
	// hsload's -max-version, or for wrk an OPENSSL_CONF that caps its OpenSSL (wrkEnv).
	hsload bool
	resume bool
	tlsMax string
}

// cachePrefix is the path prefix that the cache scenarios' proxy configs
// cache (and only it); the origin serves the 4 KiB JSON with
// "Cache-Control: max-age=1" there and counts the requests per path.
const cachePrefix = "/cached/"

// cacheTTL is the TTL every proxy is configured with in the cache scenarios.
const cacheTTL = time.Second

// allScenarios are the plain scenarios, then the HTTPS ones.
var allScenarios = append(plainScenarios, httpsScenarios()...)

// plainScenarios are plain HTTP between the client and the proxy: what -scenarios runs by default.
var plainScenarios = []scenario{
	{name: "hello", desc: "GET /, 13-byte body, keep-alive, 64 connections", path: "/", conns: 64},
	{name: "json4k", desc: "GET /json, 4 KiB body, keep-alive, 64 connections", path: "/json", conns: 64},
	{name: "big1m", desc: "GET /big, 1 MiB body, keep-alive, 16 connections", path: "/big", conns: 16},
	{name: "chunked", desc: "GET /chunked, 64 KiB chunked in 4 KiB chunks, keep-alive, 64 connections", path: "/chunked", conns: 64},
	{name: "post64k", desc: "POST /echo with a 64 KiB body, 64 KiB echoed back, keep-alive, 64 connections", path: "/echo", conns: 64, postSize: 64 << 10},
	{name: "close", desc: "GET / with Connection: close, a new client connection per request, 64 connections", path: "/", conns: 64, headers: []string{"Connection: close"}},
	{name: "c256", desc: "hello at 256 connections", path: "/", conns: 256},
	{name: "c1024", desc: "hello at 1024 connections", path: "/", conns: 1024},
	{name: "cachehit", desc: "GET /cached/json, the 4 KiB JSON from the proxy's cache (1 s TTL, one key), keep-alive, 64 connections", path: "/cached/json", conns: 64, cache: true},
	{name: "cachehit1k", desc: "cachehit at 1000 connections: the origin should see about one request per TTL", path: "/cached/json", conns: 1000, cache: true},
	{name: "idle10k", desc: "RSS growth while holding 10,000 idle keep-alive connections (one GET each)", path: "/", idle: 10000},
	{name: "slowread", desc: fmt.Sprintf("peak RSS growth while %d clients each GET a %d MiB body (/huge) and read it at %g MiB/s with a %d KiB SO_RCVBUF for the run's duration",
		slowClients, slowBodyMiB, float64(slowRate)/(1<<20), slowRcvBuf>>10), path: fmt.Sprintf("/huge?mb=%d", slowBodyMiB), slow: slowClients},
}

// httpsScenarios are the HTTPS scenarios: TLS between the client and the proxy, plain HTTP from the
// proxy to the origin, for each certificate kind; the 13-byte keep-alive scenario and the two handshake
// scenarios once more over TLS 1.2 with the ECDSA certificate. They run when named (the group "https" names them all).
func httpsScenarios() []scenario {
	var out []scenario
	for _, k := range certKinds {
		cert := map[string]string{"ecdsa": "ECDSA P-256", "rsa": "RSA 2048"}[k]
		out = append(out,
			scenario{name: "https-keepalive-13b-" + k, desc: "HTTPS GET /, 13-byte body, keep-alive, 64 connections, " + cert + " certificate (wrk)",
				path: "/", conns: 64, tls: k},
			scenario{name: "https-keepalive-4k-" + k, desc: "HTTPS GET /json, 4 KiB body, keep-alive, 64 connections, " + cert + " certificate (wrk)",
				path: "/json", conns: 64, tls: k},
			scenario{name: "https-full-" + k, desc: "HTTPS GET /, a new TLS 1.3 connection with a full handshake per request, 64 at once, " + cert + " certificate (hsload)",
				path: "/", conns: 64, tls: k, hsload: true},
			scenario{name: "https-resumed-" + k, desc: "HTTPS GET /, a new TLS 1.3 connection resuming the client's session (PSK with ECDHE) per request, 64 at once, " + cert + " certificate (hsload)",
				path: "/", conns: 64, tls: k, hsload: true, resume: true},
		)
	}
	out = append(out,
		scenario{name: "https-keepalive-13b-ecdsa-tls12", desc: "https-keepalive-13b-ecdsa over TLS 1.2 (wrk's OpenSSL capped at 1.2 by OPENSSL_CONF)",
			path: "/", conns: 64, tls: "ecdsa", tlsMax: "1.2"},
		scenario{name: "https-full-ecdsa-tls12", desc: "https-full-ecdsa over TLS 1.2 (the client offers at most 1.2)",
			path: "/", conns: 64, tls: "ecdsa", hsload: true, tlsMax: "1.2"},
		scenario{name: "https-resumed-ecdsa-tls12", desc: "https-resumed-ecdsa over TLS 1.2, resuming with session tickets",
			path: "/", conns: 64, tls: "ecdsa", hsload: true, resume: true, tlsMax: "1.2"},
	)
	return out
}

// scenarioGroups are the names -scenarios takes for several scenarios at once, besides patterns
// ("https-*-rsa", path.Match).
var scenarioGroups = map[string]func() []scenario{
	"plain": func() []scenario { return plainScenarios },
	"https": httpsScenarios,
	"all":   func() []scenario { return allScenarios },
}

// selectScenarios turns -scenarios' names, groups and patterns into scenarios, each once, in the
// order named.
func selectScenarios(list []string) ([]scenario, error) {
	var out []scenario
	add := func(s scenario) {
		for _, o := range out {
			if o.name == s.name {
				return
			}
		}
		out = append(out, s)
	}
	for _, n := range list {
		if g, ok := scenarioGroups[n]; ok {
			for _, s := range g() {
				add(s)
			}
			continue
		}
		if strings.ContainsAny(n, "*?[") {
			matched := false
			for _, s := range allScenarios {
				if ok, err := path.Match(n, s.name); err != nil {
					return nil, fmt.Errorf("scenario pattern %q: %w", n, err)
				} else if ok {
					add(s)
					matched = true
				}
			}
			if !matched {
				return nil, fmt.Errorf("scenario pattern %q matches none of %s", n, names(allScenarios))
			}
			continue
		}
		s, ok := findScenario(n)
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (have %s, and the groups plain, https, all)", n, names(allScenarios))
		}
		add(s)
	}
	return out, nil
}

// The slowread scenario: how many slow clients, the body each asks for,
// the rate each reads at (bytes/s) and the receive buffer each sets before
// connecting, small so that the kernel does not absorb the body on the
// client's side and the proxy has to hold or pause it.
const (
	slowClients = 20
	slowBodyMiB = 64
	slowRate    = 1 << 20
	slowRcvBuf  = 64 << 10
	// slowCheckPath is what the response check fetches through the proxy
	// before slowread: the same /huge path, small enough to compare whole.
	slowCheckPath = "/huge?mb=2"
	slowCheckSize = 2 << 20
)

func findScenario(name string) (scenario, bool) {
	for _, s := range allScenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// pattern is the origin's body pattern: byte i is byte(i*7+3).
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// luaScript writes the wrk script for a POST scenario into dir and returns
// its path.
func (s scenario) luaScript(dir string) (string, error) {
	if s.postSize == 0 {
		return "", nil
	}
	p := filepath.Join(dir, fmt.Sprintf("post%d.lua", s.postSize))
	script := fmt.Sprintf(`-- written by benchmarks/cmd/bench: POST a %d-byte body to every request
wrk.method = "POST"
wrk.body = string.rep("abcdefghijklmnop", %d)
wrk.headers["Content-Type"] = "application/octet-stream"
`, s.postSize, s.postSize/16)
	return p, os.WriteFile(p, []byte(script), 0o644)
}

// check sends the scenario's request once through addr and verifies the
// answer is the origin's, byte for byte, so that a proxy that answers
// quickly but wrongly is not measured.
func (s scenario) check(addr string) error { return s.checkVia("http://"+addr, nil) }

// checkVia is check against base ("http://ADDR" or "https://ADDR"), with tc as
// the client's TLS configuration for https.
func (s scenario) checkVia(base string, tc *tls.Config) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true, TLSClientConfig: tc}}
	defer client.CloseIdleConnections()
	url := base + s.path
	if s.slow > 0 {
		url = base + slowCheckPath
	}
	var want []byte
	var resp *http.Response
	var err error
	switch {
	case s.postSize > 0:
		want = bytes.Repeat([]byte("abcdefghijklmnop"), s.postSize/16)
		resp, err = client.Post(url, "application/octet-stream", bytes.NewReader(want))
	default:
		resp, err = client.Get(url)
		switch {
		case s.slow > 0:
			want = pattern(slowCheckSize)
		case s.path == "/big":
			want = pattern(1 << 20)
		case s.path == "/chunked":
			want = pattern(64 << 10)
		case s.path == "/json" || s.path == "/cached/json":
			want = nil // length checked below
		default:
			want = []byte("Hello, World!")
		}
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d, want 200", resp.StatusCode)
	}
	if s.path == "/json" || s.path == "/cached/json" {
		if len(body) != 4096 || !strings.HasPrefix(string(body), `{"items":[`) {
			return fmt.Errorf("%s body of %d bytes, want the origin's 4096", s.path, len(body))
		}
		return nil
	}
	if !bytes.Equal(body, want) {
		return fmt.Errorf("body of %d bytes differs from the origin's %d", len(body), len(want))
	}
	return nil
}

// cacheProbe sends two GETs of s.path through addr back to back and returns
// the X-Cache header of the second ("" when there is none): with a working
// cache it is HIT.
func (s scenario) cacheProbe(addr string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	var xc string
	for i := 0; i < 2; i++ {
		resp, err := client.Get("http://" + addr + s.path)
		if err != nil {
			return "", err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		xc = resp.Header.Get("X-Cache")
	}
	return xc, nil
}

// originCount returns how many requests the origin at addr has received
// for path since it started (its /stats endpoint, read directly, never
// through a proxy).
func originCount(addr, path string) (int64, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + addr + "/stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Cached map[string]int64 `json:"cached"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("origin /stats: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, fmt.Errorf("origin /stats: %w", err)
	}
	return st.Cached[path], nil
}
