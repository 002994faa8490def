package engine

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailureTableInLogs: each way a backend fails a request ends as the failure table says, and the
// JSON access log and the debug log name its termination cause: a refused connection (502, blamed), a
// response head with too many header lines (502, not blamed), no response head in time (504, blamed).
func TestFailureTableInLogs(t *testing.T) {
	many := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 150) + "Content-Length: 0\r\n\r\n"
	manyOrigin := func() string {
		return startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool { return writeOr(c, many) }).addr
	}
	stallOrigin := func() string {
		return startRawOrigin(t, func(c net.Conn, _ int64, _ *rawReq) bool { return holdUntilClosed(c) }).addr
	}
	path := filepath.Join(t.TempDir(), "access.log")
	addr, srv, logs, _ := startLoggedProxy(t, slog.LevelDebug, fmt.Sprintf(`[log]
access = %q
access_format = "json"
[[upstream]]
name = "dead"
servers = [ { addr = %q }, { addr = %q } ]
retries = 0
max_fails = 1
[[upstream]]
name = "many"
servers = [ { addr = %q }, { addr = %q } ]
max_fails = 1
[[upstream]]
name = "stall"
servers = [ { addr = %q }, { addr = %q } ]
retries = 0
max_fails = 1
response_timeout = "300ms"
[[route]]
path_prefix = "/dead/"
upstream = "dead"
[[route]]
path_prefix = "/many/"
upstream = "many"
[[route]]
path_prefix = "/stall/"
upstream = "stall"
`, path, refusedAddr(t), refusedAddr(t), manyOrigin(), manyOrigin(), stallOrigin(), stallOrigin()))
	for _, tc := range []struct {
		path   string
		status int
		cause  string
		blamed bool
	}{
		{"/dead/x", 502, "upstream-connect", true},
		{"/many/x", 502, "upstream-response-refused", false},
		{"/stall/x", 504, "upstream-response-timeout", true},
	} {
		c, br := dial(t, addr)
		resp, _ := roundTrip(t, c, br, "GET "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		c.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		logs.waitCount(t, 1, "request refused", fmt.Sprintf("status=%d", tc.status), "reason="+tc.cause)
		up := strings.TrimSuffix(strings.TrimPrefix(tc.path, "/"), "/x")
		downs := 0
		for _, u := range srv.Snapshot().Upstreams {
			if u.Name != up {
				continue
			}
			for _, s := range u.Servers {
				if !s.Up {
					downs++
				}
			}
		}
		if blamed := downs > 0; blamed != tc.blamed {
			t.Fatalf("%s: %d servers down, want blamed = %v", tc.path, downs, tc.blamed)
		}
	}
	lines := readLines(t, path, 3)
	for i, cause := range []string{"upstream-connect", "upstream-response-refused", "upstream-response-timeout"} {
		if !strings.Contains(lines[i], `"termination":"`+cause+`"`) {
			t.Errorf("access log line %d lacks termination %s: %s", i, cause, lines[i])
		}
	}
}
