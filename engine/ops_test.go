package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"switchflow/admin"
	"switchflow/config"
	"switchflow/internal/sockettest"
)

// logSink is a log the loops, the checkers and the test share.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count is how many lines hold every one of parts.
func (l *logSink) count(parts ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// waitCount polls until count(parts...) is at least n, for 3 s.
func (l *logSink) waitCount(t *testing.T, n int, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for l.count(parts...) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the log never had %d lines with %q:\n%s", n, parts, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startLoggedProxy is startProxy with the log, at level, going to the returned sink, and the parsed
// configuration returned for a reload.
func startLoggedProxy(t *testing.T, level slog.Level, toml string) (string, *Server, *logSink, string) {
	t.Helper()
	sk := sockettest.NewSet(t)
	addr := sk.AddListen()
	full := fmt.Sprintf("[server]\nlisten = %q\nloops = 1\n", addr) + toml
	cfg, err := config.Parse([]byte(full))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, full)
	}
	sink := &logSink{}
	srv, _ := serveEngineWith(t, cfg, slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: level})), inherit(sk))
	return addr, srv, sink, full
}

func statusOf(t *testing.T, srv *Server) admin.Snapshot {
	t.Helper()
	code, body := adminGet(t, "GET", "http://"+srv.AdminAddr()+"/status")
	if code != 200 {
		t.Fatalf("/status: %d %s", code, body)
	}
	var s admin.Snapshot
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	return s
}

func serverStatus(t *testing.T, s admin.Snapshot, name string) admin.Server {
	t.Helper()
	for _, u := range s.Upstreams {
		for _, sv := range u.Servers {
			if sv.Name == name {
				return sv
			}
		}
	}
	t.Fatalf("/status has no server %s", name)
	return admin.Server{}
}

// TestDownServerVisibleAndKeptOnReload: a server max_fails marks down is logged once (naming its
// upstream and why), /status says why and since when, and a reload that keeps it keeps it down: no
// request is sent to it again (no new connect failure), and /status still has the same since. The
// reload is counted on /metrics.
func TestDownServerVisibleAndKeptOnReload(t *testing.T) {
	a := startOrigin(t, "a")
	dead := refusedAddr(t)
	toml := "[admin]\nlisten = \"127.0.0.1:0\"\n" + fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q }, { addr = %q } ]
retries = 1
max_fails = 1
fail_timeout = "30s"
[[route]]
upstream = "app"
`, dead, a.addr)
	before := time.Now()
	addr, srv, logs, full := startLoggedProxy(t, slog.LevelInfo, toml)
	c, br := dial(t, addr)
	for i := 0; i < 4; i++ {
		if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	if n := logs.count("upstream server down", "upstream=app", "server="+dead, "by=passive", "max_fails"); n != 1 {
		t.Fatalf("%d down lines for %s, want 1:\n%s", n, dead, logs.String())
	}
	st := serverStatus(t, statusOf(t, srv), dead)
	since, err := time.Parse(time.RFC3339Nano, st.DownSince)
	if st.State != "down" || st.DownBy != "passive" || !strings.Contains(st.DownReason, "max_fails") || err != nil ||
		since.Before(before.Add(-time.Second)) || since.After(time.Now()) {
		t.Fatalf("/status of the down server: %+v (%v)", st, err)
	}
	if up := serverStatus(t, statusOf(t, srv), a.addr); up.State != "up" || up.DownReason != "" || up.DownSince != "" {
		t.Fatalf("/status of the up server: %+v", up)
	}
	failures := logs.count("upstream connect failed")

	cfg, err := config.Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("request %d after reload: %d", i, resp.StatusCode)
		}
	}
	if n := logs.count("upstream connect failed"); n != failures {
		t.Fatalf("the down server was dialled after the reload: %d connect failures, %d before\n%s", n, failures, logs.String())
	}
	after := serverStatus(t, statusOf(t, srv), dead)
	if after.State != "down" || after.DownSince != st.DownSince || after.DownReason != st.DownReason {
		t.Fatalf("/status after the reload: %+v, before %+v", after, st)
	}
	m := scrape(t, srv.AdminAddr())
	if m[`switchflow_config_reloads_total{result="ok"}`] != 1 || m[`switchflow_config_reloads_total{result="refused"}`] != 0 ||
		m["switchflow_config_last_reload_successful"] != 1 || m["switchflow_config_last_reload_success_timestamp_seconds"] < float64(before.Unix()) {
		t.Fatalf("reload metrics: %v", m)
	}
	bad := *cfg
	bad.TLS = &config.TLS{}
	if srv.Reload(&bad) == nil {
		t.Fatal("a reload with [tls] was applied")
	}
	m = scrape(t, srv.AdminAddr())
	if m[`switchflow_config_reloads_total{result="refused"}`] != 1 || m["switchflow_config_last_reload_successful"] != 0 {
		t.Fatalf("reload metrics after a refusal: %v", m)
	}
	if s := statusOf(t, srv); s.Reloads.OK != 1 || s.Reloads.Refused != 1 || !s.Reloads.LastFailed || s.Reloads.LastOK.Before(before) {
		t.Fatalf("/status reloads: %+v", s.Reloads)
	}
}

// TestNoServerUpAndRecoveryLogged: requests that find no server up are answered 503 and leave one line a
// second for the upstream; the end of fail_timeout is logged once for each server, with no request.
func TestNoServerUpAndRecoveryLogged(t *testing.T) {
	dead1, dead2 := refusedAddr(t), refusedAddr(t)
	addr, _, logs, _ := startLoggedProxy(t, slog.LevelInfo, fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q }, { addr = %q } ]
retries = 1
max_fails = 1
fail_timeout = "600ms"
[[route]]
upstream = "app"
`, dead1, dead2))
	c, br := dial(t, addr)
	if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 502 {
		t.Fatalf("first request: %d, want 502", resp.StatusCode)
	}
	for i := 0; i < 20; i++ {
		if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 503 {
			t.Fatalf("request %d with both down: %d, want 503", i, resp.StatusCode)
		}
	}
	if n := logs.count("no server up", "upstream=app", dead1+": 1 failed attempts"); n != 1 {
		t.Fatalf("%d 'no server up' lines for 20 503s within a second, want 1:\n%s", n, logs.String())
	}
	for _, d := range []string{dead1, dead2} {
		logs.waitCount(t, 1, "upstream server up", "server="+d, "by=passive", "fail_timeout 600ms passed")
	}
	time.Sleep(300 * time.Millisecond)
	if n := logs.count("upstream server up"); n != 2 {
		t.Fatalf("%d up lines, want one per server:\n%s", n, logs.String())
	}
}

// TestRefusalsSayWhyAtDebug: at debug, each request the proxy answers itself leaves a line with its status
// and the rule that refused it: the parser's own words for a malformed head.
func TestRefusalsSayWhyAtDebug(t *testing.T) {
	a := startOrigin(t, "a")
	// The keys follow startLoggedProxy's [server] listen and loops.
	addr, _, logs, _ := startLoggedProxy(t, slog.LevelDebug, fmt.Sprintf(`header_buffer = "1KiB"
large_header_buffer = "2KiB"
max_body_size = 10
[[upstream]]
name = "app"
servers = [ { addr = %q } ]
[[route]]
path_prefix = "/app/"
upstream = "app"
`, a.addr))
	for _, tc := range []struct {
		raw    string
		status int
		reason string
	}{
		{"GET /app/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "missing or repeated host"},
		{"GET /app/ HTTP/1.1\r\nHost : a\r\n\r\n", 400, "request head: "},
		{"GET /app/ HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported http version"},
		{"GET /app/ HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", 3000) + "\r\n\r\n", 431, "larger than large_header_buffer"},
		{"GET /other HTTP/1.1\r\nHost: a\r\n\r\n", 404, "no route matches"},
		{"POST /app/ HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 413, "max_body_size"},
	} {
		c, br := dial(t, addr)
		resp, _ := roundTrip(t, c, br, tc.raw)
		c.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%q: %d, want %d", tc.raw, resp.StatusCode, tc.status)
		}
		logs.waitCount(t, 1, "request refused", fmt.Sprintf("status=%d", tc.status), tc.reason)
	}
}
