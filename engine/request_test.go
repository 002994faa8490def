package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestRequestNeverSentForAnotherClient guards against one client's request being forwarded as another
// client's: the loop parses every connection's head into one scratch Request, and a client whose backend
// dial completes later (upstream keepalive = 0, so every request dials) must have its own head sent, not
// whatever another connection on the same loop left in the scratch meanwhile: a head that arrived in
// pieces (incomplete parse), a malformed one (400) or one with both Content-Length and Transfer-Encoding
// (400). Every victim's request carries a per-client secret in its path and in a header and a cookie;
// the origin echoes all three, and each victim must read back its own. The origin must never see a
// malformed head, a CL+TE head, or the target of a request the proxy refused.
func TestRequestNeverSentForAnotherClient(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		var violations atomic.Int64
		var firstViolation atomic.Value
		violate := func(s string) {
			if violations.Add(1) == 1 {
				firstViolation.Store(s)
			}
		}
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			h := strings.ToLower(req.head)
			if strings.Contains(h, "\r\ncontent-length:") && strings.Contains(h, "\r\ntransfer-encoding:") {
				violate("CL+TE head reached the origin:\n" + req.head)
			}
			if strings.Contains(req.target, "/bad/") || strings.Contains(req.target, "/clte/") {
				violate("a refused request reached the origin:\n" + req.head)
			}
			var secret, cookie string
			for _, line := range strings.Split(req.head, "\r\n")[1:] {
				name, value, _ := strings.Cut(line, ":")
				switch strings.ToLower(name) {
				case "x-secret":
					secret = strings.TrimSpace(value)
				case "cookie":
					cookie = strings.TrimSpace(value)
				}
			}
			body := req.target + "|" + secret + "|" + cookie
			_, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			return err == nil
		})
		cfg := strings.Replace(simpleRawConfig("", o), `connect_timeout = "1s"`, "connect_timeout = \"2s\"\nkeepalive = 0\nmax_fails = 0", 1)
		addr, _ := startProxy(t, loops, cfg)

		const victims, attackers, each = 40, 24, 25
		stop := make(chan struct{})
		var awg sync.WaitGroup
		errs := make(chan error, attackers)
		var mismatches atomic.Int64

		// Victims: one keep-alive connection each, requests one after another, each checked against the
		// echo of its own path and secret.
		victimErrs := make(chan []error, 1)
		go func() {
			victimErrs <- keepAliveClients(addr, victims, each, 15*time.Second, func(c net.Conn, br *bufio.Reader, i, k int) error {
				secret := fmt.Sprintf("victim%02d-%03d", i, k)
				target := "/v/" + secret
				want := target + "|" + secret + "|session=" + secret
				if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nX-Secret: %s\r\nCookie: session=%s\r\n\r\n", target, secret, secret); err != nil {
					return err
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					return err
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					return fmt.Errorf("body: %v", err)
				}
				if resp.StatusCode != 200 || string(body) != want {
					mismatches.Add(1)
					return fmt.Errorf("answered with another request: %d %q, want 200 %q", resp.StatusCode, body, want)
				}
				return nil
			})
		}()

		// Attackers: heads in two pieces 1 ms apart (valid, checked like a victim's), malformed heads and
		// CL+TE heads (each 400, on a fresh connection, also sent in two pieces), until the victims are done.
		attack := func(j int) {
			defer awg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				secret := fmt.Sprintf("attacker%02d-%04d", j, k)
				var first, second string
				wantStatus, want := 400, ""
				switch (j + k) % 3 {
				case 0:
					target := "/split/" + secret
					first = "GET " + target + " HTTP/1.1\r\nHost: x\r\nX-Secret: " + secret + "\r\n"
					second = "Cookie: session=" + secret + "\r\n\r\n"
					wantStatus, want = 200, target+"|"+secret+"|session="+secret
				case 1:
					first = "GET /bad/" + secret + " HTTP/1.1\r\nHost: x\r\nX-Secret: " + secret + "\r\n"
					second = "Cookie: session=" + secret + "\r\nX-A: a\x00b\r\n\r\n"
				default:
					first = "POST /clte/" + secret + " HTTP/1.1\r\nHost: x\r\nX-Secret: " + secret + "\r\nContent-Length: 5\r\n"
					second = "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
				}
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					errs <- err
					return
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.WriteString(c, first)
				time.Sleep(time.Millisecond)
				_, _ = io.WriteString(c, second)
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					c.Close()
					if wantStatus == 400 && isReset(err) {
						continue // the refusal was sent and reset away: not what this test is about
					}
					errs <- fmt.Errorf("attacker %d request %d: %v", j, k, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				c.Close()
				if resp.StatusCode != wantStatus || (want != "" && string(body) != want) {
					if mismatches.Add(1) == 1 {
						errs <- fmt.Errorf("attacker %d request %d (%q): %d %q, want %d %q", j, k, first, resp.StatusCode, body, wantStatus, want)
					}
					return
				}
			}
		}
		for j := 0; j < attackers; j++ {
			awg.Add(1)
			go attack(j)
		}
		for _, err := range <-victimErrs {
			t.Error(err)
		}
		close(stop)
		awg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := mismatches.Load(); n > 0 {
			t.Errorf("%d clients got a response to a request that was not theirs", n)
		}
		if n := violations.Load(); n > 0 {
			t.Errorf("%d requests reached the origin that must not have; the first: %v", n, firstViolation.Load())
		}
	})
}

// An upload that arrived with its head goes to the backend in one write: the head and the body bytes,
// whether they sit in the header slab or still in gnet's buffer, leave in one sendmsg and so in one TCP
// segment. The test reads the backend socket's count of data segments received (TCP_INFO's
// tcpi_data_segs_in), which one write per piece (head, slab, buffer) makes 2 or 3.

// segmentOrigin is a rawOrigin (smuggling_test.go) that, for every request it reads whole, sends on
// segs the number of data segments its connection had received by then.
func segmentOrigin(t *testing.T) (string, <-chan uint32) {
	t.Helper()
	segs := make(chan uint32, 16)
	o := startRawOrigin(t, func(c net.Conn, _ int64, _ *rawReq) bool {
		segs <- dataSegsIn(c)
		_, err := io.WriteString(c, okResponse)
		return err == nil
	})
	return o.addr, segs
}

// dataSegsIn is the number of segments with data that c has received (0 when it cannot be read).
func dataSegsIn(c net.Conn) uint32 {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0
	}
	var n uint32
	_ = rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = info.Data_segs_in
		}
	})
	return n
}

func TestUploadHeadAndBodyInOneWrite(t *testing.T) {
	backend, segs := segmentOrigin(t)
	// header_buffer 1 KiB: a 5,000-byte body is partly in the slab and partly in gnet's buffer.
	for _, hb := range []string{"8KiB", "1KiB"} {
		t.Run("header_buffer="+hb, func(t *testing.T) {
			addr, _ := startProxy(t, 1, upstreamConfig(fmt.Sprintf("header_buffer = %q\n", hb), backend))
			c, br := dial(t, addr)
			for i, body := range []string{`{"a":1}`, strings.Repeat("u", 5000)} {
				// Head and body in one write, as clients send a small upload.
				raw := fmt.Sprintf("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				resp, got := roundTrip(t, c, br, raw)
				if resp.StatusCode != 200 || string(got) != "ok" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, got)
				}
				var n uint32
				select {
				case n = <-segs:
				case <-time.After(5 * time.Second):
					t.Fatal("backend saw no request")
				}
				// The backend connection is pooled: its count grows by one per request.
				if want := uint32(i + 1); n != want {
					t.Errorf("request %d (%d-byte body): backend connection has %d data segments in, want %d (one write per request)", i, len(body), n, want)
				}
			}
		})
	}
}
