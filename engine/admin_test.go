package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"switchflow/admin"
	"switchflow/config"
	"switchflow/internal/sockettest"
)

// fixedOrigin answers every request head it reads with resp, from fixed buffers (it allocates nothing per
// request, for the tests that count the whole process's allocations).
func fixedOrigin(t *testing.T, resp []byte) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		buf := make([]byte, 16<<10)
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			for {
				i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				n = copy(buf, buf[i+4:n])
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}
	})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// scrape GETs /metrics and returns every sample by its name and labels as written.
func scrape(t *testing.T, adminAddr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != admin.ContentType {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	m := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample value in %q", line)
		}
		if _, dup := m[line[:i]]; dup {
			t.Fatalf("sample %s twice", line[:i])
		}
		m[line[:i]] = v
	}
	return m
}

// scrapeSettled scrapes until every sample in want has its value, and fails naming those that do not
// within 3 s. A response is counted on its loop just after its last byte is written, so a client that
// has read the whole response can scrape a moment before the count moves; it never moves past want.
func scrapeSettled(t *testing.T, adminAddr string, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		m := scrape(t, adminAddr)
		var off []string
		for k, v := range want {
			if m[k] != v {
				off = append(off, fmt.Sprintf("%s = %v, want %v", k, m[k], v))
			}
		}
		if len(off) == 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never settled:\n%s", strings.Join(off, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

func adminGet(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminMetricsCountExactly drives a real proxy through a forwarded 200, a 404 (no route), a 502 (a
// dead backend), a cache miss and hit, and a 503 at max_connections, then scrapes /metrics over HTTP:
// every counter moved by exactly what was sent, bytes included.
func TestAdminMetricsCountExactly(t *testing.T) {
	oaddr := fixedOrigin(t, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	dead := refusedAddr(t)
	sk := sockettest.NewSet(t)
	adminAddr := sk.AddAdmin()
	addr, srv := startProxyWith(t, 2, sk, fmt.Sprintf(`max_connections = 3

[admin]
listen = %q

[[upstream]]
name = "app"
servers = [ { addr = %q } ]

[[upstream]]
name = "dead"
servers = [ { addr = %q } ]
connect_timeout = "1s"

[[route]]
path_prefix = "/app/"
upstream = "app"

[[route]]
path_prefix = "/dead/"
upstream = "dead"

[[route]]
path_prefix = "/cached/"
upstream = "app"
cache_ttl = "60s"
`, adminAddr, oaddr, dead))
	if got := srv.AdminAddr(); got != adminAddr {
		t.Fatalf("AdminAddr %q, want %q", got, adminAddr)
	}

	c, _ := dial(t, addr)
	cr := &countingReader{r: c}
	br := bufio.NewReader(cr)
	var sent int64
	for _, step := range []struct {
		target string
		status int
		xcache string
	}{
		{"/app/x", 200, ""},
		{"/nope", 404, ""},
		{"/dead/x", 502, ""},
		{"/cached/a", 200, "MISS"},
		{"/cached/a", 200, "HIT"},
	} {
		raw := "GET " + step.target + " HTTP/1.1\r\nHost: m.test\r\n\r\n"
		sent += int64(len(raw))
		resp, _ := roundTrip(t, c, br, raw)
		if resp.StatusCode != step.status || resp.Header.Get("X-Cache") != step.xcache {
			t.Fatalf("%s: %d X-Cache=%q", step.target, resp.StatusCode, resp.Header.Get("X-Cache"))
		}
	}
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes more than the responses", br.Buffered())
	}

	// max_connections = 3: two more connections fill it, the fourth gets the prebuilt 503.
	dial(t, addr)
	dial(t, addr)
	deadline := time.Now().Add(2 * time.Second)
	for srv.SlabsInUse() != 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c4, _ := dial(t, addr)
	refused, err := io.ReadAll(c4)
	if err != nil || !strings.HasPrefix(string(refused), "HTTP/1.1 503 ") {
		t.Fatalf("connection over max_connections: %q %v", refused, err)
	}

	// Idle clients and idle pooled connections are counted by the 100 ms sweep.
	var m map[string]float64
	for deadline = time.Now().Add(3 * time.Second); ; {
		m = scrape(t, adminAddr)
		if m[`switchflow_client_connections{state="idle"}`] == 3 &&
			m[fmt.Sprintf(`switchflow_upstream_connections_idle{upstream="app",server=%q}`, oaddr)] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sweep figures never settled: idle clients %v, idle app connections %v",
				m[`switchflow_client_connections{state="idle"}`],
				m[fmt.Sprintf(`switchflow_upstream_connections_idle{upstream="app",server=%q}`, oaddr)])
		}
		time.Sleep(20 * time.Millisecond)
	}

	want := map[string]float64{
		`switchflow_requests_total{route="/app/",code="2xx"}`:                                         1,
		`switchflow_requests_total{route="/dead/",code="5xx"}`:                                        1,
		`switchflow_requests_total{route="/cached/",code="2xx"}`:                                      2,
		`switchflow_requests_total{route="none",code="4xx"}`:                                          1,
		fmt.Sprintf(`switchflow_upstream_requests_total{upstream="app",server=%q,code="2xx"}`, oaddr): 2,
		fmt.Sprintf(`switchflow_upstream_requests_total{upstream="dead",server=%q,code="5xx"}`, dead): 1,
		`switchflow_request_duration_seconds_count`:                                                   5,
		`switchflow_request_duration_seconds_bucket{le="+Inf"}`:                                       5,
		`switchflow_connections_refused_total`:                                                        1,
		`switchflow_received_bytes_total`:                                                             float64(sent),
		`switchflow_sent_bytes_total`:                                                                 float64(cr.n + int64(len(refused))),
		`switchflow_cache_hits_total`:                                                                 1,
		`switchflow_cache_misses_total`:                                                               1,
		`switchflow_cache_bypasses_total`:                                                             0,
		`switchflow_cache_entries`:                                                                    1,
		`switchflow_client_connections{state="active"}`:                                               0,
		`switchflow_client_connections{state="idle"}`:                                                 3,
		fmt.Sprintf(`switchflow_upstream_server_up{upstream="app",server=%q}`, oaddr):                 1,
		fmt.Sprintf(`switchflow_upstream_server_up{upstream="dead",server=%q}`, dead):                 1,
		fmt.Sprintf(`switchflow_upstream_connections_open{upstream="app",server=%q}`, oaddr):          1,
		fmt.Sprintf(`switchflow_upstream_connections_idle{upstream="app",server=%q}`, oaddr):          1,
		fmt.Sprintf(`switchflow_upstream_connections_open{upstream="dead",server=%q}`, dead):          0,
		fmt.Sprintf(`switchflow_upstream_requests_in_flight{upstream="app",server=%q}`, oaddr):        0,
		`switchflow_access_log_dropped_total`:                                                         0,
		`switchflow_draining`:                                                                         0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("no sample %s", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if n := sumPrefix(m, "switchflow_requests_total{"); n != 5 {
		t.Errorf("switchflow_requests_total sums to %v, want 5", n)
	}
	if n := sumPrefix(m, "switchflow_upstream_requests_total{"); n != 3 {
		t.Errorf("switchflow_upstream_requests_total sums to %v, want 3", n)
	}
	var prev float64
	for _, le := range []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"} {
		v, ok := m[`switchflow_request_duration_seconds_bucket{le="`+le+`"}`]
		if !ok || v < prev {
			t.Errorf("bucket le=%s: %v (present %v), previous %v", le, v, ok, prev)
		}
		prev = v
	}
	if s := m["switchflow_request_duration_seconds_sum"]; s <= 0 || s > 5 {
		t.Errorf("duration sum %v", s)
	}
	if m["switchflow_cache_bytes"] <= 0 {
		t.Errorf("cache bytes %v", m["switchflow_cache_bytes"])
	}

	// /status: the same figures as JSON, with each server's state.
	code, body := adminGet(t, "GET", "http://"+adminAddr+"/status")
	var st admin.Snapshot
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status: %d %v\n%s", code, err, body)
	}
	servers := map[string]admin.Server{}
	for _, u := range st.Upstreams {
		for _, s := range u.Servers {
			servers[u.Name+" "+s.Name] = s
		}
	}
	if s := servers["app "+oaddr]; s.State != "up" || !s.Up || s.Addr != oaddr || s.Weight != 1 || s.Backup || s.ConnsOpen != 1 {
		t.Errorf("/status app server: %+v", s)
	}
	if s := servers["dead "+dead]; s.State != "up" || s.Addr != dead || s.Requests[5] != 1 {
		t.Errorf("/status dead server: %+v", s)
	}
	if len(servers) != 2 {
		t.Errorf("/status names %d servers, want 2:\n%s", len(servers), body)
	}
	routes := map[string]uint64{}
	for _, r := range st.Routes {
		routes[r.Name] = r.Requests.Total()
	}
	if routes["/app/"] != 1 || routes["/dead/"] != 1 || routes["/cached/"] != 2 || routes["none"] != 1 {
		t.Errorf("/status routes: %v", routes)
	}
	if st.Cache.Hits != 1 || st.Clients.Refused != 1 || st.Duration.Count != 5 || st.Draining {
		t.Errorf("/status figures: cache %+v clients %+v duration count %d", st.Cache, st.Clients, st.Duration.Count)
	}
	for _, key := range []string{`"state": "up"`, `"in_flight": 0`, `"backup": false`, `"2xx": 2`} {
		if !strings.Contains(body, key) {
			t.Errorf("/status lacks %s:\n%s", key, body)
		}
	}

	if code, body := adminGet(t, "GET", "http://"+adminAddr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := adminGet(t, "GET", "http://"+adminAddr+"/nothing"); code != 404 {
		t.Errorf("/nothing: %d", code)
	}
	if code, _ := adminGet(t, "POST", "http://"+adminAddr+"/metrics"); code != 405 {
		t.Errorf("POST /metrics: %d", code)
	}
}

// TestAdminHealthzDraining: /healthz answers 503 once SIGTERM's drain has begun, while a request in flight
// still finishes.
func TestAdminHealthzDraining(t *testing.T) {
	o := startOrigin(t, "a")
	sk := sockettest.NewSet(t)
	adminAddr := sk.AddAdmin()
	addr, srv := startProxyWith(t, 1, sk, fmt.Sprintf("[admin]\nlisten = %q\n", adminAddr)+simpleConfig("", o))
	_, br := slowRequestInFlight(t, o, addr, 1000)
	deadline := time.Now().Add(2 * time.Second)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	for {
		code, body := adminGet(t, "GET", "http://"+adminAddr+"/healthz")
		if code == 503 && body == "draining\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz while draining: %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, body := readResponse(t, br, false)
	if resp.StatusCode != 200 || string(body) != "slow" {
		t.Fatalf("request in flight: %d %q", resp.StatusCode, body)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// slowRequestInFlight sends GET /slow?ms=ms on a new connection and returns once the origin has it.
func slowRequestInFlight(t *testing.T, o *origin, addr string, ms int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, br := dial(t, addr)
	if _, err := fmt.Fprintf(c, "GET /slow?ms=%d HTTP/1.1\r\nHost: d.test\r\n\r\n", ms); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for o.hits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return c, br
}

// TestShutdownTimeoutCountsOpenClients: when shutdown_timeout ends the drain, the error counts the
// client connections it cut (counted before the loops stop, which closes them).
func TestShutdownTimeoutCountsOpenClients(t *testing.T) {
	o := startOrigin(t, "a")
	addr, srv := startProxy(t, 1, simpleConfig("", o))
	slowRequestInFlight(t, o, addr, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "1 client connections still open") {
		t.Fatalf("Shutdown past its timeout with one request in flight: %v", err)
	}
}

var (
	combinedTime = regexp.MustCompile(`\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]`)
	jsonTime     = regexp.MustCompile(`"time":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})"`)
	jsonDuration = regexp.MustCompile(`"request_time":\d+\.\d{3},`)
)

// readLines polls path until it holds n lines (the loops hand their lines to the writer every 100 ms).
func readLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d lines, want %d:\n%s", path, len(lines), n, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccessLogLines writes a forwarded 200, a HEAD answered 404 by the proxy and a malformed request
// (400) to a log file in each format and checks each line byte for byte, but for the clock's fields:
// the request line, status, body bytes, Referer and User-Agent, escaped.
func TestAccessLogLines(t *testing.T) {
	oaddr := fixedOrigin(t, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	for _, format := range []string{"combined", "json"} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "access.log")
			addr, _ := startProxy(t, 1, fmt.Sprintf(`
[log]
access = %q
access_format = %q

[[upstream]]
name = "app"
servers = [ { addr = %q } ]

[[route]]
path_prefix = "/app/"
upstream = "app"
`, path, format, oaddr))
			c, br := dial(t, addr)
			resp, body := roundTrip(t, c, br, "GET /app/x?q=1 HTTP/1.1\r\nHost: log.test\r\nuser-agent: test-agent/1.0 \"quoted\" \\ \r\nReferer:http://ref.example/page\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("forwarded: %d %q", resp.StatusCode, body)
			}
			resp, _ = roundTrip(t, c, br, "HEAD /nope HTTP/1.1\r\nHost: log.test\r\nUser-Agent: agent\xff\xc3\xa9\r\n\r\n")
			if resp.StatusCode != 404 {
				t.Fatalf("no route: %d", resp.StatusCode)
			}
			c2, br2 := dial(t, addr)
			resp, _ = roundTrip(t, c2, br2, "GET /bad\x01 HTTP/1.1\r\nHost: log.test\r\n\r\n")
			if resp.StatusCode != 400 {
				t.Fatalf("malformed: %d", resp.StatusCode)
			}
			lines := readLines(t, path, 3)
			var want []string
			if format == "combined" {
				want = []string{
					`127.0.0.1 - - [T] "GET /app/x?q=1 HTTP/1.1" 200 2 "http://ref.example/page" "test-agent/1.0 \x22quoted\x22 \x5C"`,
					`127.0.0.1 - - [T] "HEAD /nope HTTP/1.1" 404 0 "-" "agent\xFF\xC3\xA9"`,
					`127.0.0.1 - - [T] "GET /bad\x01 HTTP/1.1" 400 16 "-" "-"`,
				}
				for i := range lines {
					if !combinedTime.MatchString(lines[i]) {
						t.Errorf("line %d: no $time_local: %s", i, lines[i])
					}
					lines[i] = combinedTime.ReplaceAllString(lines[i], "[T]")
				}
			} else {
				want = []string{
					`{"time":"T","remote_addr":"127.0.0.1","request":"GET /app/x?q=1 HTTP/1.1","status":200,"body_bytes_sent":2,"http_referer":"http://ref.example/page","http_user_agent":"test-agent/1.0 \"quoted\" \\","request_time":D,"upstream":"` + oaddr + `","route":"/app/"}`,
					`{"time":"T","remote_addr":"127.0.0.1","request":"HEAD /nope HTTP/1.1","status":404,"body_bytes_sent":0,"http_referer":"","http_user_agent":"agent\ufffdé","request_time":D,"upstream":"","route":""}`,
					`{"time":"T","remote_addr":"127.0.0.1","request":"GET /bad\u0001 HTTP/1.1","status":400,"body_bytes_sent":16,"http_referer":"","http_user_agent":"","request_time":D,"upstream":"","route":""}`,
				}
				for i := range lines {
					if !json.Valid([]byte(lines[i])) {
						t.Errorf("line %d is not JSON: %s", i, lines[i])
					}
					if !jsonTime.MatchString(lines[i]) || !jsonDuration.MatchString(lines[i]) {
						t.Errorf("line %d: no time or request_time: %s", i, lines[i])
					}
					lines[i] = jsonTime.ReplaceAllString(lines[i], `"time":"T"`)
					lines[i] = jsonDuration.ReplaceAllString(lines[i], `"request_time":D,`)
				}
			}
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
			}
			for i := range want {
				if lines[i] != want[i] {
					t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
				}
			}
		})
	}
}

// TestAccessLogRecordAllocatesNothing: with the access log on (and the admin listener), a forwarded
// response, a 404 built by the proxy and a cache hit each allocate nothing, counted over the whole
// process (client and origin included), as the other allocation tests do.
func TestAccessLogRecordAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	oaddr := fixedOrigin(t, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	for _, format := range []string{"combined", "json"} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "access.log")
			addr, srv := startProxy(t, 1, fmt.Sprintf(`
[admin]
listen = "127.0.0.1:0"

[log]
access = %q
access_format = %q

[[upstream]]
name = "app"
servers = [ { addr = %q } ]

[[route]]
path_prefix = "/app/"
upstream = "app"

[[route]]
path_prefix = "/cached/"
upstream = "app"
cache_ttl = "60s"
`, path, format, oaddr))
			c, br := dial(t, addr)
			buf := make([]byte, 4096)
			const runs = 1000
			for _, tc := range []struct{ name, req, tail string }{
				{"forwarded", "GET /app/x HTTP/1.1\r\nHost: a.test\r\nUser-Agent: alloc-test\r\n\r\n", "\r\n\r\nok"},
				{"404", "GET /none HTTP/1.1\r\nHost: a.test\r\nUser-Agent: alloc-test\r\n\r\n", "Not Found\n"},
				{"cache hit", "GET /cached/x HTTP/1.1\r\nHost: a.test\r\nUser-Agent: alloc-test\r\n\r\n", "\r\n\r\nok"},
			} {
				end := []byte(tc.tail)
				req := []byte(tc.req)
				f := func() { writeReadUntil(t, c, br, buf, req, func(b []byte) bool { return bytes.HasSuffix(b, end) }) }
				f()
				if allocs := testing.AllocsPerRun(runs, f); allocs != 0 {
					t.Errorf("%s: %.2f allocations per request", tc.name, allocs)
				}
			}
			lines := readLines(t, path, 3*(runs+2))
			if n := srv.Snapshot().AccessLog.Dropped; int(n)+len(lines) != 3*(runs+2) {
				t.Errorf("%d lines written and %d dropped, want %d", len(lines), n, 3*(runs+2))
			}
		})
	}
}

// blockedWriter blocks every Write until released.
type blockedWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// TestAccessLogDropsWhenWriterLags: a writer that does not keep up costs lines, counted, never a blocked
// loop or memory beyond the buffers allocated at start.
func TestAccessLogDropsWhenWriterLags(t *testing.T) {
	a, err := newAccessLog(config.Log{Access: config.AccessStdout, AccessFormat: "combined"}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &blockedWriter{release: make(chan struct{})}
	a.w = w
	a.start()
	ls := &loopState{s: &Server{base: time.Now()}}
	ls.alog = &accessBuf{a: a}
	cc := &clientConn{}
	const lines = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < lines; i++ {
			ls.logAccess(cc, false, 408, 0, 0, nil, nil, int64(i))
		}
		ls.alog.flush(&ls.st)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logging blocked on a stuck writer")
	}
	dropped := ls.st.logDropped.Load()
	if dropped == 0 {
		t.Fatal("no line dropped with the writer stuck")
	}
	close(w.release)
	a.close()
	got := int64(bytes.Count(w.buf.Bytes(), []byte{'\n'}))
	if got+int64(dropped) != lines {
		t.Fatalf("%d lines written + %d dropped != %d", got, dropped, lines)
	}
	if !strings.HasPrefix(w.buf.String(), `- - - [`) || !strings.Contains(w.buf.String(), `] "-" 408 0 "-" "-"`+"\n") {
		t.Fatalf("unexpected line: %.120q", w.buf.String())
	}
}

// TestMetricsAcrossReload: a reload that keeps a route and a server keeps their counts; a route it adds
// starts at zero, a route it removes is no longer reported.
func TestMetricsAcrossReload(t *testing.T) {
	oaddr := fixedOrigin(t, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	sk := sockettest.NewSet(t)
	adminAddr := sk.AddAdmin()
	routes := func(prefixes ...string) string {
		s := fmt.Sprintf("\n[admin]\nlisten = %q\n\n[[upstream]]\nname = \"app\"\nservers = [ { addr = %q } ]\n", adminAddr, oaddr)
		for _, p := range prefixes {
			s += fmt.Sprintf("\n[[route]]\npath_prefix = %q\nupstream = \"app\"\n", p)
		}
		return s
	}
	addr, srv := startProxyWith(t, 2, sk, routes("/a/", "/gone/"))
	c, br := dial(t, addr)
	get := func(target string) {
		t.Helper()
		if resp, _ := roundTrip(t, c, br, "GET "+target+" HTTP/1.1\r\nHost: r.test\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", target, resp.StatusCode)
		}
	}
	get("/a/1")
	get("/gone/1")
	cfg, err := config.Parse([]byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 2\n", addr) + routes("/b/", "/a/")))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	get("/a/2")
	get("/b/1")
	get("/b/2")
	m := scrapeSettled(t, adminAddr, map[string]float64{
		`switchflow_requests_total{route="/a/",code="2xx"}`:                                           2,
		`switchflow_requests_total{route="/b/",code="2xx"}`:                                           2,
		fmt.Sprintf(`switchflow_upstream_requests_total{upstream="app",server=%q,code="2xx"}`, oaddr): 5,
		`switchflow_request_duration_seconds_count`:                                                   5,
	})
	if _, ok := m[`switchflow_requests_total{route="/gone/",code="2xx"}`]; ok {
		t.Errorf("a route removed by the reload is still reported")
	}
}

// TestAccessLogReopen: SIGHUP's ReopenLogs makes the writer reopen the path, so that logrotate's "move,
// then signal" sends later lines to the new file.
func TestAccessLogReopen(t *testing.T) {
	oaddr := fixedOrigin(t, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	path := filepath.Join(t.TempDir(), "access.log")
	addr, srv := startProxy(t, 1, fmt.Sprintf("\n[log]\naccess = %q\n", path)+upstreamConfig("", oaddr))
	c, br := dial(t, addr)
	roundTrip(t, c, br, "GET /first HTTP/1.1\r\nHost: r.test\r\n\r\n")
	readLines(t, path, 1)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	srv.ReopenLogs()
	deadline := time.Now().Add(3 * time.Second)
	for _, err := os.Stat(path); err != nil; _, err = os.Stat(path) {
		if time.Now().After(deadline) {
			t.Fatal("the access log was not reopened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	roundTrip(t, c, br, "GET /second HTTP/1.1\r\nHost: r.test\r\n\r\n")
	lines := readLines(t, path, 1)
	if len(lines) != 1 || !strings.Contains(lines[0], `"GET /second HTTP/1.1" 200 2`) {
		t.Fatalf("new file: %q", lines)
	}
	old, _ := os.ReadFile(path + ".1")
	if !strings.Contains(string(old), `"GET /first HTTP/1.1" 200 2`) || strings.Contains(string(old), "/second") {
		t.Fatalf("rotated file: %q", old)
	}
}
