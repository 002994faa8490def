package engine

import (
	"fmt"
	"strings"
	"testing"
)

// testRoutes compiles routes written as "host prefix name" ("-" for no host), in configuration order.
func testRoutes(specs ...string) *routeTable {
	routes := make([]*routeRT, 0, len(specs))
	for _, s := range specs {
		f := strings.Fields(s)
		host := f[0]
		if host == "-" {
			host = ""
		}
		h, wildcard := compileHost(host)
		routes = append(routes, &routeRT{host: h, wildcard: wildcard, prefix: []byte(f[1]), name: f[2]})
	}
	return newRouteTable(routes)
}

func routeName(r *routeRT) string {
	if r == nil {
		return "404"
	}
	return r.name
}

// TestRouteMatchSpec: SPEC section 2, the longest matching prefix among all routes whose host matches,
// then the more specific host, then configuration order.
func TestRouteMatchSpec(t *testing.T) {
	tbl := testRoutes(
		"- / a",
		"*.example.com /only/ b",
		"api.example.com /api/ c",
		// equal prefixes: exact over the longer wildcard over the shorter over none
		"- /t/ any",
		"*.example.com /t/ wild",
		"*.b.example.com /t/ wild2",
		"x.b.example.com /t/ exact",
		// a longer prefix beats a more specific host
		"api.example.com /long/ c-long",
		"- /long/path/ a-longer",
		// a port in the pattern is ignored
		"port.example.com:8080 /p/ port",
		"[::1]:80 /v6/ v6",
		// same host and prefix (config validation refuses it): the first in the file
		"dup.test /d/ first",
		"dup.test /d/ second",
	)
	cases := []struct{ host, path, want string }{
		// the audit's three cases: a host class without a matching prefix falls through to the others
		{"a.example.com", "/x", "a"},
		{"api.example.com", "/", "a"},
		{"api.example.com", "/only/x", "b"},
		{"api.example.com", "/api/v1", "c"},
		{"API.Example.COM", "/api/v1", "c"},
		{"b.example.com", "/only/", "b"},
		{"example.com", "/only/x", "a"}, // a wildcard needs a label before its suffix
		{"other.test", "/only/x", "a"},
		{"x.b.example.com", "/t/1", "exact"},
		{"y.b.example.com", "/t/1", "wild2"},
		{"b.example.com", "/t/1", "wild"}, // "*.b.example.com" does not match "b.example.com"
		{"y.example.com", "/t/1", "wild"},
		{"other.test", "/t/1", "any"},
		{"api.example.com", "/long/x", "c-long"},
		{"api.example.com", "/long/path/x", "a-longer"},
		{"port.example.com", "/p/x", "port"},
		{"PORT.example.com", "/p/x", "port"},
		{"[::1]", "/v6/x", "v6"},
		{"dup.test", "/d/x", "first"},
		{"", "/x", "a"},
		{strings.Repeat("a", 300) + ".b.example.com", "/t/", "wild2"},
		{strings.Repeat("a", 300) + ".b.example.com", "/x", "a"},
	}
	for _, tc := range cases {
		if got := routeName(tbl.match([]byte(tc.host), []byte(tc.path))); got != tc.want {
			t.Errorf("host %.40q path %q: %s, want %s", tc.host, tc.path, got, tc.want)
		}
	}

	// The Host header as a client sends it: a port, a fully qualified name's trailing dot.
	for _, tc := range []struct{ host, path, want string }{
		{"api.example.com:8080", "/api/v1", "c"},
		{"api.example.com.", "/api/v1", "c"},
		{"api.example.com.:8080", "/api/v1", "c"},
		{"y.example.com.", "/t/1", "wild"},
		{"[::1]:80", "/v6/x", "v6"},
		{".", "/x", "a"},
	} {
		if got := routeName(tbl.match([]byte(tc.host), []byte(tc.path))); got != tc.want {
			t.Errorf("Host %q path %q: %s, want %s", tc.host, tc.path, got, tc.want)
		}
	}

	// Routes that name no host: the prefix alone decides, whatever the Host says (the host is not read).
	tbl = testRoutes("- /api/ api", "- / root")
	for _, tc := range []struct{ host, path, want string }{
		{"api.example.com:8080", "/api/v1", "api"},
		{"", "/x", "root"},
		{"[::1]:80", "/api", "root"},
		{strings.Repeat("a", 300), "/api/", "api"},
	} {
		if got := routeName(tbl.match([]byte(tc.host), []byte(tc.path))); got != tc.want {
			t.Errorf("host-less routes, host %.40q path %q: %s, want %s", tc.host, tc.path, got, tc.want)
		}
	}

	// Without a host-less "/" route, a request no candidate matches is 404.
	tbl = testRoutes("api.example.com /api/ c", "*.example.com /w/ w")
	for _, tc := range []struct{ host, path, want string }{
		{"api.example.com", "/w/x", "w"},
		{"api.example.com", "/x", "404"},
		{"www.example.com", "/api/x", "404"},
		{"other.test", "/w/x", "404"},
	} {
		if got := routeName(tbl.match([]byte(tc.host), []byte(tc.path))); got != tc.want {
			t.Errorf("host %q path %q: %s, want %s", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestRouteCompileHostPort(t *testing.T) {
	for _, tc := range []struct {
		in, host string
		wildcard bool
	}{
		{"a.com:80", "a.com", false},
		{"A.com", "a.com", false},
		{"*.Example.com:443", ".example.com", true},
		{"[::1]:80", "[::1]", false},
		{"[::1]", "[::1]", false},
		{"", "", false},
	} {
		if h, w := compileHost(tc.in); h != tc.host || w != tc.wildcard {
			t.Errorf("compileHost(%q) = %q, %v; want %q, %v", tc.in, h, w, tc.host, tc.wildcard)
		}
	}
}

func TestRouteMatchAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tbl := testRoutes("- / a", "*.example.com /only/ b", "api.example.com /api/ c", "*.b.example.com /t/ w")
	reqs := []struct{ host, path []byte }{
		{[]byte("API.example.com"), []byte("/only/x")},
		{[]byte("x.B.example.com"), []byte("/t/x")},
		{[]byte("other.test"), []byte("/x")},
		{[]byte(strings.Repeat("A", 300) + ".example.com"), []byte("/only/")},
	}
	var sink *routeRT
	allocs := testing.AllocsPerRun(1000, func() {
		for _, r := range reqs {
			sink = tbl.match(r.host, r.path)
		}
	})
	if allocs != 0 || sink == nil {
		t.Fatalf("match allocates: %.2f allocations per run", allocs)
	}
}

// routeCase is a request and where it must arrive: at which origin (X-Origin) and as which target
// (X-Path).
type routeCase struct{ host, target, origin, path string }

// routedProxy starts a proxy with an upstream for each origin, named as the origin, and routes.
func routedProxy(t *testing.T, loops int, routes string, origins ...*origin) string {
	t.Helper()
	var b strings.Builder
	for _, o := range origins {
		fmt.Fprintf(&b, "[[upstream]]\nname = %q\nservers = [ { addr = %q } ]\n", o.name, o.addr)
	}
	addr, _ := startProxy(t, loops, b.String()+routes)
	return addr
}

// expectRoutes sends each case's request on one connection and checks where it arrived.
func expectRoutes(t *testing.T, addr string, cases []routeCase) {
	t.Helper()
	c, br := dial(t, addr)
	for _, tc := range cases {
		resp, _ := roundTrip(t, c, br, "GET "+tc.target+" HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n")
		if resp.StatusCode != 200 || resp.Header.Get("X-Origin") != tc.origin || resp.Header.Get("X-Path") != tc.path {
			t.Errorf("%s%s: %d via %q as %q, want %s as %s", tc.host, tc.target, resp.StatusCode,
				resp.Header.Get("X-Origin"), resp.Header.Get("X-Path"), tc.origin, tc.path)
		}
	}
}

// TestRouteSelectionOverSockets: the SPEC's rule end to end, on 1 and 4 loops, with a route whose host
// names a port.
func TestRouteSelectionOverSockets(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		addr := routedProxy(t, loops, `
[[route]]
path_prefix = "/"
upstream = "a"
[[route]]
host = "*.example.com"
path_prefix = "/only/"
upstream = "b"
[[route]]
host = "api.example.com"
path_prefix = "/api/"
upstream = "b"
[[route]]
host = "*.example.com"
path_prefix = "/t/"
upstream = "w"
[[route]]
host = "api.example.com"
path_prefix = "/t/"
upstream = "c"
[[route]]
path_prefix = "/t/"
upstream = "a"
[[route]]
host = "Port.example.com:8080"
path_prefix = "/p/"
upstream = "c"
strip_prefix = true
`, startOrigin(t, "a"), startOrigin(t, "b"), startOrigin(t, "c"), startOrigin(t, "w"))
		expectRoutes(t, addr, []routeCase{
			{"a.example.com", "/x", "a", "/x"},
			{"api.example.com", "/", "a", "/"},
			{"api.example.com", "/only/x", "b", "/only/x"},
			{"api.example.com:9000", "/api/v1", "b", "/api/v1"},
			{"api.example.com", "/t/1", "c", "/t/1"},
			{"www.example.com", "/t/1", "w", "/t/1"},
			{"other.test", "/t/1", "a", "/t/1"},
			{"port.example.com", "/p/x?q=1", "c", "/x?q=1"},
			{"PORT.example.com:9999", "/p/y", "c", "/y"},
			{"port.example.com", "/q", "a", "/q"},
		})
	})
}

// TestRoutingByHostAndPrefix: an exact host before a wildcard, the longest prefix within a host, a
// host's port and case ignored, strip_prefix, a route without host for the rest; 404 where none matches.
func TestRoutingByHostAndPrefix(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		addr := routedProxy(t, loops, `
[[route]]
host = "api.example.com"
path_prefix = "/"
upstream = "a"
[[route]]
host = "api.example.com"
path_prefix = "/v2/"
upstream = "b"
strip_prefix = true
[[route]]
host = "*.example.com"
path_prefix = "/"
upstream = "w"
[[route]]
path_prefix = "/static/"
upstream = "d"
`, startOrigin(t, "a"), startOrigin(t, "b"), startOrigin(t, "w"), startOrigin(t, "d"))
		expectRoutes(t, addr, []routeCase{
			{"api.example.com", "/x", "a", "/x"},
			{"API.example.com:8080", "/v2/users?id=1", "b", "/users?id=1"},
			{"api.example.com", "/v2", "a", "/v2"},
			{"www.example.com", "/v2/users", "w", "/v2/users"},
			{"other.test", "/static/app.js", "d", "/static/app.js"},
		})
		c, br := dial(t, addr)
		resp, body := roundTrip(t, c, br, "GET /nothing HTTP/1.1\r\nHost: other.test\r\n\r\n")
		if resp.StatusCode != 404 || !strings.Contains(string(body), "404") {
			t.Fatalf("unrouted request: %d %q, want 404", resp.StatusCode, body)
		}
	})
}
