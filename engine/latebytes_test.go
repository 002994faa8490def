package engine

import (
	"net"
	"sync"
	"testing"
)

// TestLateBytesPastResponseEndNeverAnswerTheNextRequest guards against bytes a backend sends past the end
// of a response becoming the next client's response. A 204 or a 304 with "Content-Length: 6", or a HEAD
// answered with "Content-Length: 6", ends at its head; a backend that means the 6 bytes anyway sends them
// after it, and they may arrive late: here they arrive only when the next request is on the same backend
// connection, and they are a whole fake response, "EVIL". (TestFaultExtraBytesAfterResponse and
// TestFaultBodyAfterHeadResponse cover such bytes arriving with the response, or while the connection is
// idle.) Whatever request follows, on the same client connection or another, must get the backend's real
// answer, never EVIL: a connection whose response declared a body it must not have is not reused.
func TestLateBytesPastResponseEndNeverAnswerTheNextRequest(t *testing.T) {
	const (
		fake = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
		good = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"
	)
	cases := []struct {
		name, request, answer string
		status                int
	}{
		{"204 with Content-Length", "GET /204 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n", 204},
		{"304 with Content-Length", "GET /304 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nContent-Length: 6\r\n\r\n", 304},
		{"HEAD with Content-Length", "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", 200},
	}
	forLoops(t, func(t *testing.T, loops int) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var mu sync.Mutex
				owed := map[net.Conn]bool{} // connections whose backend still "owes" the 6 bytes
				o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
					mu.Lock()
					late := owed[c]
					delete(owed, c)
					mu.Unlock()
					if late && !writeOr(c, fake) { // the 6 bytes, arriving late, and more
						return false
					}
					if req.method == "HEAD" || req.target == "/204" || req.target == "/304" {
						mu.Lock()
						owed[c] = true
						mu.Unlock()
						return writeOr(c, tc.answer)
					}
					return writeOr(c, good)
				})
				addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
				check := leakCheck(t, srv)
				c, br := dial(t, addr)
				for round := 0; round < 2; round++ {
					resp, body := roundTrip(t, c, br, tc.request)
					if resp.StatusCode != tc.status || len(body) != 0 {
						t.Fatalf("round %d: %s: %d %q, want %d without a body", round, tc.name, resp.StatusCode, body, tc.status)
					}
					expectGood(t, c, br, 2, "on the same client after a "+tc.name)
				}
				resp, body := roundTrip(t, c, br, tc.request)
				if resp.StatusCode != tc.status || len(body) != 0 {
					t.Fatalf("%s: %d %q", tc.name, resp.StatusCode, body)
				}
				c2, br2 := dial(t, addr)
				expectGood(t, c2, br2, 2, "on another client after a "+tc.name)
				c.Close()
				c2.Close()
				check()
			})
		}
	})
}
