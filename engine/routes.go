package engine

import (
	"time"

	"bytes"
	"sort"
	"strings"
)

// routeRT is a compiled [[route]].
type routeRT struct {
	host        string // lower case; "" = any; "*.example.com" stored as suffix ".example.com"
	wildcard    bool
	prefix      []byte
	group       int // index into table.groups
	stripPrefix bool
	cacheTTL    time.Duration // > 0: the micro-cache answers for this route
	name        string        // for logs and metrics: host+prefix
}

// routeTable picks a route as nginx picks a server block and then a location: first the most specific
// host class that names the request's host (exact name, then the longest matching wildcard, then routes
// with no host), then the longest path prefix within that class. A host class that matches but has no
// matching prefix answers 404, as an nginx server block without a matching location does.
type routeTable struct {
	exact    map[string][]*routeRT // by host; each slice sorted by prefix length, longest first
	wildcard []*routeRT            // sorted by suffix length then prefix length, longest first
	any      []*routeRT            // sorted by prefix length, longest first
}

func newRouteTable(routes []*routeRT) *routeTable {
	t := &routeTable{exact: map[string][]*routeRT{}}
	for _, r := range routes {
		switch {
		case r.host == "":
			t.any = append(t.any, r)
		case r.wildcard:
			t.wildcard = append(t.wildcard, r)
		default:
			t.exact[r.host] = append(t.exact[r.host], r)
		}
	}
	byPrefix := func(rs []*routeRT) {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].prefix) > len(rs[j].prefix) })
	}
	for _, rs := range t.exact {
		byPrefix(rs)
	}
	byPrefix(t.any)
	sort.SliceStable(t.wildcard, func(i, j int) bool {
		a, b := t.wildcard[i], t.wildcard[j]
		if len(a.host) != len(b.host) {
			return len(a.host) > len(b.host)
		}
		return len(a.prefix) > len(b.prefix)
	})
	return t
}

// match returns the route for host (port already stripped, any case) and path, or nil.
// It does not allocate: the exact-host lookup converts in a map index expression, which Go optimises.
func (t *routeTable) match(host, path []byte) *routeRT {
	var lower [256]byte
	if len(host) <= len(lower) {
		n := copy(lower[:], host)
		for i := 0; i < n; i++ {
			if c := lower[i]; 'A' <= c && c <= 'Z' {
				lower[i] = c + 'a' - 'A'
			}
		}
		h := lower[:n]
		if rs, ok := t.exact[string(h)]; ok {
			return longestPrefix(rs, path)
		}
		var host string
		for _, r := range t.wildcard {
			if len(h) > len(r.host) && bytes.HasSuffix(h, []byte(r.host)) {
				if host != "" && host != r.host {
					break // a longer wildcard matched this host already; its class had no matching prefix
				}
				host = r.host
				if bytes.HasPrefix(path, r.prefix) {
					return r
				}
			}
		}
		if host != "" {
			return nil
		}
	}
	return longestPrefix(t.any, path)
}

func longestPrefix(rs []*routeRT, path []byte) *routeRT {
	for _, r := range rs {
		if bytes.HasPrefix(path, r.prefix) {
			return r
		}
	}
	return nil
}

// compileHost turns a configured host pattern into its stored form.
func compileHost(h string) (host string, wildcard bool) {
	h = strings.ToLower(h)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	if strings.HasPrefix(h, "*.") {
		return h[1:], true
	}
	return h, false
}

// hostWithoutPort strips ":port" from a Host value, keeping IPv6 literals' brackets.
func hostWithoutPort(h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[i:], ']') < 0 {
		return h[:i]
	}
	return h
}

// splitTarget returns the authority (for absolute-form targets) and the path of a request target;
// the path keeps its query.
func splitTarget(target []byte) (authority, path []byte) {
	if len(target) > 0 && target[0] == '/' {
		return nil, target
	}
	if i := bytes.Index(target, []byte("://")); i > 0 {
		rest := target[i+3:]
		j := bytes.IndexByte(rest, '/')
		if j < 0 {
			return rest, []byte("/")
		}
		return rest[:j], rest[j:]
	}
	return nil, target
}

// appendStripped appends path with prefix removed, keeping a leading slash: "/api/v1?x" with prefix
// "/api/" becomes "/v1?x", and "/api" becomes "/".
func appendStripped(dst, path, prefix []byte) []byte {
	rest := path[len(prefix):]
	if len(rest) == 0 || rest[0] != '/' {
		dst = append(dst, '/')
	}
	return append(dst, rest...)
}
