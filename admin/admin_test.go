package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fakeSource struct {
	snap     *Snapshot
	draining bool
}

func (f *fakeSource) Snapshot() *Snapshot { return f.snap }
func (f *fakeSource) Draining() bool      { return f.draining }

func sample() *Snapshot {
	return &Snapshot{
		Loops:   2,
		Clients: Clients{Active: 1, Idle: 4, Refused: 7},
		Bytes:   Bytes{Received: 100, Sent: 2000},
		Routes: []Route{
			{Name: `a"b\c` + "\n", Upstream: "app", Requests: Classes{0, 0, 3, 0, 1, 0}},
			{Name: "none", Requests: Classes{9, 0, 0, 0, 2, 0}},
		},
		Duration: Histogram{Bounds: []float64{0.005, 0.01, 10}, Counts: []uint64{2, 1, 0, 3}, Sum: 12.5, Count: 6},
		Upstreams: []Upstream{{Name: "app", Servers: []Server{
			{Name: "h:1", Addr: "127.0.0.1:1", Up: true, State: "up", InFlight: 2, Weight: 3, ConnsOpen: 5, ConnsIdle: 4, Requests: Classes{0, 0, 3}},
			{Name: "h:2", Addr: "127.0.0.1:2", State: "down", Backup: true, DownBy: "passive", DownReason: "3 failed attempts within fail_timeout 10s (max_fails)", DownSince: "2024-05-01T10:00:00Z"},
		}}},
		Cache:     Cache{Hits: 10, Misses: 2, Bypasses: 1, Evictions: 3, Bytes: 4096, Entries: 2},
		AccessLog: AccessLog{Enabled: true, Dropped: 8},
		Reloads:   Reloads{OK: 2, Refused: 1, LastOK: time.Unix(1700000000, 500e6), LastFailed: true},
	}
}

// TestMetricsTextFormat: the exposition format 0.0.4, byte for byte where it matters: HELP and TYPE
// before each family, escaped label values, status classes, a cumulative histogram ending in +Inf.
func TestMetricsTextFormat(t *testing.T) {
	out := string(AppendMetrics(nil, sample()))
	for _, want := range []string{
		"# HELP switchflow_requests_total Requests answered, by route and status class",
		"# TYPE switchflow_requests_total counter\n",
		`switchflow_requests_total{route="a\"b\\c\n",code="2xx"} 3` + "\n",
		`switchflow_requests_total{route="a\"b\\c\n",code="1xx"} 0` + "\n",
		`switchflow_requests_total{route="a\"b\\c\n",code="4xx"} 1` + "\n",
		`switchflow_requests_total{route="none",code="other"} 9` + "\n",
		"# TYPE switchflow_request_duration_seconds histogram\n",
		`switchflow_request_duration_seconds_bucket{le="0.005"} 2` + "\n",
		`switchflow_request_duration_seconds_bucket{le="0.01"} 3` + "\n",
		`switchflow_request_duration_seconds_bucket{le="10"} 3` + "\n",
		`switchflow_request_duration_seconds_bucket{le="+Inf"} 6` + "\n",
		"switchflow_request_duration_seconds_sum 12.5\n",
		"switchflow_request_duration_seconds_count 6\n",
		`switchflow_client_connections{state="active"} 1` + "\n",
		`switchflow_client_connections{state="idle"} 4` + "\n",
		"switchflow_connections_refused_total 7\n",
		"switchflow_received_bytes_total 100\n",
		"switchflow_sent_bytes_total 2000\n",
		`switchflow_upstream_requests_total{upstream="app",server="h:1",code="2xx"} 3` + "\n",
		`switchflow_upstream_server_up{upstream="app",server="h:1"} 1` + "\n",
		`switchflow_upstream_server_up{upstream="app",server="h:2"} 0` + "\n",
		`switchflow_upstream_requests_in_flight{upstream="app",server="h:1"} 2` + "\n",
		`switchflow_upstream_connections_open{upstream="app",server="h:1"} 5` + "\n",
		`switchflow_upstream_connections_idle{upstream="app",server="h:1"} 4` + "\n",
		"switchflow_cache_hits_total 10\n",
		"switchflow_cache_misses_total 2\n",
		"switchflow_cache_bypasses_total 1\n",
		"switchflow_cache_evictions_total 3\n",
		"switchflow_cache_bytes 4096\n",
		"switchflow_cache_entries 2\n",
		"switchflow_access_log_dropped_total 8\n",
		"switchflow_draining 0\n",
		`switchflow_config_reloads_total{result="ok"} 2` + "\n",
		`switchflow_config_reloads_total{result="refused"} 1` + "\n",
		"switchflow_config_last_reload_success_timestamp_seconds 1.7000000005e+09\n",
		"switchflow_config_last_reload_successful 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if strings.Contains(out, `route="a\"b\\c\n",code="other"`) {
		t.Error("a zero \"other\" class is written")
	}
	// Every sample's family has HELP and TYPE lines before it, each family once.
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			name := strings.Fields(line)[2]
			if seen[name] {
				t.Errorf("family %s twice", name)
			}
			seen[name] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !seen[name] && !seen[base] {
			t.Errorf("sample before its TYPE: %s", line)
		}
		if !strings.HasPrefix(name, "switchflow_") {
			t.Errorf("unprefixed: %s", line)
		}
	}
}

// TestStatusJSONRoundTrip: /status is the snapshot as JSON, classes by name.
func TestStatusJSONRoundTrip(t *testing.T) {
	b, err := statusJSON(sample())
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Routes[0].Requests != (Classes{0, 0, 3, 0, 1, 0}) || back.Routes[1].Requests[0] != 9 {
		t.Errorf("classes: %+v", back.Routes)
	}
	if s := back.Upstreams[0].Servers[1]; s.State != "down" || s.Up || !s.Backup || s.Addr != "127.0.0.1:2" ||
		s.DownBy != "passive" || s.DownSince != "2024-05-01T10:00:00Z" || !strings.Contains(s.DownReason, "max_fails") {
		t.Errorf("server: %+v", s)
	}
	if strings.Contains(string(b[:strings.Index(string(b), `"h:2"`)]), "down_reason") {
		t.Errorf("an up server has down fields:\n%s", b)
	}
	if back.Reloads.OK != 2 || !back.Reloads.LastFailed || !back.Reloads.LastOK.Equal(time.Unix(1700000000, 500e6)) {
		t.Errorf("reloads: %+v", back.Reloads)
	}
	if !strings.Contains(string(b), `"requests": {`+"\n") || !strings.Contains(string(b), `"2xx": 3`) {
		t.Errorf("classes not by name:\n%s", b)
	}
}

// TestAdminHandlerPaths: the three paths, 404 elsewhere, 405 for other methods, 503 while draining.
func TestAdminHandlerPaths(t *testing.T) {
	src := &fakeSource{snap: sample()}
	srv := httptest.NewServer(NewHandler(src))
	defer srv.Close()
	do := func(method, path string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, h, body := do("GET", "/metrics"); code != 200 || h.Get("Content-Type") != ContentType || !strings.Contains(body, "switchflow_cache_hits_total 10\n") {
		t.Errorf("/metrics: %d %q", code, h.Get("Content-Type"))
	}
	if code, h, body := do("GET", "/status"); code != 200 || h.Get("Content-Type") != "application/json" || !json.Valid([]byte(body)) {
		t.Errorf("/status: %d %q", code, h.Get("Content-Type"))
	}
	if code, _, body := do("GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _, body := do("HEAD", "/healthz"); code != 200 || body != "" {
		t.Errorf("HEAD /healthz: %d %q", code, body)
	}
	for _, p := range []string{"/", "/metrics/", "/favicon.ico", "/statusx"} {
		if code, _, _ := do("GET", p); code != 404 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if code, h, _ := do(m, "/metrics"); code != 405 || h.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /metrics: %d Allow=%q", m, code, h.Get("Allow"))
		}
	}
	src.draining = true
	if code, _, body := do("GET", "/healthz"); code != 503 || body != "draining\n" {
		t.Errorf("/healthz draining: %d %q", code, body)
	}
}
