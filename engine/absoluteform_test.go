package engine

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestAbsoluteFormTargetRoutedAsItsAuthority guards against an absolute-form target bypassing host
// routing: a request routed by the authority of "http://public.example/reset" must reach the backend as
// that request (origin-form target, Host and X-Forwarded-Host from the authority, RFC 9112 3.2.2), not
// with the client's own Host header (here evil.com), which the route never matched and which must not
// reach the backend at all.
func TestAbsoluteFormTargetRoutedAsItsAuthority(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		heads := make(chan string, 16)
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			heads <- req.head
			return writeOr(c, okResponse)
		})
		addr, _ := startProxy(t, loops, fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q } ]
connect_timeout = "1s"
response_timeout = "2s"
[[route]]
host = "public.example"
path_prefix = "/"
upstream = "app"
`, o.addr))
		cases := []struct {
			name, target, wantLine, wantHost string
		}{
			{"path", "http://public.example/reset", "GET /reset HTTP/1.1", "public.example"},
			{"port in the authority", "http://public.example:8080/x?y=1", "GET /x?y=1 HTTP/1.1", "public.example:8080"},
			{"no path", "http://public.example", "GET / HTTP/1.1", "public.example"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c, br := dial(t, addr)
				resp, body := roundTrip(t, c, br, "GET "+tc.target+" HTTP/1.1\r\nHost: evil.com\r\n\r\n")
				if resp.StatusCode != 200 || string(body) != "ok" {
					t.Fatalf("%s: %d %q, want the backend's 200", tc.target, resp.StatusCode, body)
				}
				var head string
				select {
				case head = <-heads:
				default:
					t.Fatalf("the origin answered without recording the head")
				}
				lines := strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n")
				if lines[0] != tc.wantLine {
					t.Errorf("request line at the backend %q, want %q", lines[0], tc.wantLine)
				}
				var hosts, xfh []string
				for _, l := range lines[1:] {
					name, value, _ := strings.Cut(l, ":")
					switch strings.ToLower(name) {
					case "host":
						hosts = append(hosts, strings.TrimSpace(value))
					case "x-forwarded-host":
						xfh = append(xfh, strings.TrimSpace(value))
					}
				}
				if len(hosts) != 1 || hosts[0] != tc.wantHost {
					t.Errorf("Host at the backend %q, want exactly [%s]", hosts, tc.wantHost)
				}
				if len(xfh) != 1 || xfh[0] != tc.wantHost {
					t.Errorf("X-Forwarded-Host at the backend %q, want exactly [%s]", xfh, tc.wantHost)
				}
				if strings.Contains(strings.ToLower(head), "evil.com") {
					t.Errorf("the client's Host evil.com reached the backend:\n%s", head)
				}
			})
		}
	})
}
