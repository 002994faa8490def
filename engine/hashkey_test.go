package engine

import (
	"fmt"
	"net/netip"
	"testing"

	"switchflow/codec"
	"switchflow/upstream"
)

// hashProxy runs a proxy in front of two origins with balance = "hash" on key.
func hashProxy(t *testing.T, loops int, key string) (string, *origin, *origin) {
	t.Helper()
	a, b := startOrigin(t, "a"), startOrigin(t, "b")
	addr, _ := startProxy(t, loops, fmt.Sprintf(`
[[upstream]]
name = "app"
balance = "hash"
hash_key = %q
servers = [ { addr = %q }, { addr = %q } ]
[[route]]
upstream = "app"
`, key, a.addr, b.addr))
	return addr, a, b
}

// TestHashKeySticksOverRealSockets: for each form of hash_key, 20 keys of 50 requests each, every key on
// a connection of its own (so on several loops), always reach the same origin, and the keys use both.
func TestHashKeySticksOverRealSockets(t *testing.T) {
	for _, c := range []struct {
		key     string
		request func(user int) string
	}{
		{"header:X-User", func(u int) string { return fmt.Sprintf("GET /p HTTP/1.1\r\nHost: x\r\nx-user: user%d\r\n\r\n", u) }},
		{"cookie:sid", func(u int) string {
			return fmt.Sprintf("GET /p HTTP/1.1\r\nHost: x\r\nCookie: theme=dark; sid=s%d\r\nCookie: other=1\r\n\r\n", u)
		}},
		{"uri", func(u int) string { return fmt.Sprintf("GET /item/%d?v=1 HTTP/1.1\r\nHost: x\r\n\r\n", u) }},
	} {
		t.Run(c.key, func(t *testing.T) {
			forLoops(t, func(t *testing.T, loops int) {
				addr, a, b := hashProxy(t, loops, c.key)
				used := map[string]bool{}
				for u := 0; u < 20; u++ {
					conn, br := dial(t, addr)
					first := ""
					for i := 0; i < 50; i++ {
						resp, _ := roundTrip(t, conn, br, c.request(u))
						if resp.StatusCode != 200 {
							t.Fatalf("status %d", resp.StatusCode)
						}
						o := resp.Header.Get("X-Origin")
						if first == "" {
							first = o
						} else if o != first {
							t.Fatalf("key %d went to %s, then to %s at request %d", u, first, o, i)
						}
					}
					conn.Close()
					used[first] = true
				}
				if !used["a"] || !used["b"] {
					t.Fatalf("20 keys all went to one origin (a=%d b=%d hits)", a.hits.Load(), b.hits.Load())
				}
			})
		})
	}
}

// Without the header or cookie, a request hashes the client address: from one address, one origin.
func TestHashKeyMissingFallsBackToClientIP(t *testing.T) {
	addr, a, b := hashProxy(t, 4, "header:X-User")
	for i := 0; i < 20; i++ {
		conn, br := dial(t, addr)
		if resp, _ := roundTrip(t, conn, br, "GET /p HTTP/1.1\r\nHost: x\r\nX-User: \r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		conn.Close()
	}
	if a.hits.Load() != 20 && b.hits.Load() != 20 {
		t.Fatalf("one client address reached both origins: a=%d b=%d", a.hits.Load(), b.hits.Load())
	}
}

func TestHashKeyOfRequest(t *testing.T) {
	parse := func(raw string) *codec.Request {
		var r codec.Request
		if _, err := codec.ParseRequest([]byte(raw), &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	group := func(key string) *upstream.Group {
		g := &upstream.Group{}
		g.HashKey, g.HashKeyName = upstream.SplitHashKey(key)
		return g
	}
	ip := netip.MustParseAddr("192.0.2.7")
	ipHash := clientIPHash(ip)
	req := parse("GET /a?b HTTP/1.1\r\nHost: x\r\nX-User: ann\r\nx-user: bob\r\nCookie: a=1;sid=\"zed\" ; c=3\r\n\r\n")
	for _, c := range []struct {
		key  string
		want uint64
	}{
		{"uri", fnvAdd(fnvOffset, []byte("/a?b"))},
		{"client_ip", ipHash},
		{"header:X-USER", fnvAdd(fnvOffset, []byte("ann,bob"))},
		{"header:X-Other", ipHash},
		{"cookie:sid", fnvAdd(fnvOffset, []byte("zed"))},
		{"cookie:c", fnvAdd(fnvOffset, []byte("3"))},
		{"cookie:SID", ipHash}, // cookie names are case-sensitive
		{"cookie:none", ipHash},
	} {
		if got := requestKeyHash(group(c.key), req, req.Target, ip); got != c.want {
			t.Errorf("%s: %x, want %x", c.key, got, c.want)
		}
	}
	g := group("cookie:c")
	if n := testing.AllocsPerRun(100, func() { requestKeyHash(g, req, req.Target, ip) }); n != 0 {
		t.Fatalf("requestKeyHash allocates %v times", n)
	}
}
