package engine

import (
	"bytes"
	"math"
	"sort"
	"strings"
	"time"
)

// routeRT is a compiled [[route]].
type routeRT struct {
	host        string // lower case, port stripped; "" = any; "*.example.com" stored as suffix ".example.com"
	wildcard    bool
	prefix      []byte
	group       int // index into table.groups
	stripPrefix bool
	cacheTTL    time.Duration // > 0: the micro-cache answers for this route
	name        string        // for logs and metrics: host+prefix
	index       int           // position in the configuration, the last tie-break
}

// routeTable picks a route as SPEC section 2 says: the candidates are every route whose host matches the
// request's host (an exact name, case-insensitive; a wildcard "*.example.com" for any name that ends in
// ".example.com" with at least one byte before it; a route without host for every request), and the
// longest matching path prefix among them wins. On equal prefix length the more specific host wins (an
// exact name, then a wildcard, the longer suffix first, then no host), then the earlier route in the
// configuration. No matching candidate: nil, which answers 404.
//
// The candidate set depends on the request's host only through its host class, so the merged, ordered
// candidate list of every class is built here, once per configuration load, and match scans one list:
// an exact name has its own routes, the wildcards that match it and the host-less routes; a host that
// names no exact route is keyed by the longest wildcard suffix it matches (every shorter matching
// wildcard is a suffix of that one), whose list holds that chain of wildcards and the host-less routes;
// any other host gets the host-less routes alone.
type routeTable struct {
	exact   map[string][]*routeRT // by exact host
	wild    map[string][]*routeRT // by wildcard suffix, as ".example.com"
	any     []*routeRT            // routes without host
	maxWild int                   // length of the longest wildcard suffix
}

func newRouteTable(routes []*routeRT) *routeTable {
	t := &routeTable{exact: map[string][]*routeRT{}, wild: map[string][]*routeRT{}}
	own := map[string][]*routeRT{}
	var wilds []*routeRT
	for i, r := range routes {
		r.index = i
		switch {
		case r.host == "":
			t.any = append(t.any, r)
		case r.wildcard:
			wilds = append(wilds, r)
			t.maxWild = max(t.maxWild, len(r.host))
		default:
			own[r.host] = append(own[r.host], r)
		}
	}
	// candidates merges a class's own routes with the wildcards that match host and the host-less routes.
	candidates := func(rs []*routeRT, host string) []*routeRT {
		rs = append([]*routeRT(nil), rs...)
		for _, w := range wilds {
			if wildcardMatches(host, w.host) {
				rs = append(rs, w)
			}
		}
		rs = append(rs, t.any...)
		sortRoutes(rs)
		return rs
	}
	for host, rs := range own {
		t.exact[host] = candidates(rs, host)
	}
	for _, w := range wilds {
		if _, done := t.wild[w.host]; !done {
			// Any name with this suffix stands for the class: "x.example.com" for ".example.com".
			t.wild[w.host] = candidates(nil, "x"+w.host)
		}
	}
	sortRoutes(t.any)
	return t
}

// wildcardMatches reports whether a wildcard stored as suffix (".example.com") matches host.
func wildcardMatches(host, suffix string) bool {
	return len(host) > len(suffix) && strings.HasSuffix(host, suffix)
}

// sortRoutes puts candidates in match order: longest prefix first, then the most specific host, then
// configuration order.
func sortRoutes(rs []*routeRT) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if len(a.prefix) != len(b.prefix) {
			return len(a.prefix) > len(b.prefix)
		}
		if sa, sb := hostRank(a), hostRank(b); sa != sb {
			return sa > sb
		}
		return a.index < b.index
	})
}

// hostRank orders host specificity: an exact name, then wildcards by suffix length, then no host.
func hostRank(r *routeRT) int {
	switch {
	case r.host == "":
		return 0
	case r.wildcard:
		return 1 + len(r.host)
	default:
		return math.MaxInt
	}
}

// match returns the route for host (as the request names it: any case, a port and a final dot ignored)
// and path, or nil.
// It does not allocate: the map lookups convert []byte to string in the index expression, which Go
// optimises, and the host is lower-cased on the stack. Only the last 256 bytes of the host are looked at
// for wildcards and a longer host names no exact route; valid names are at most 253 bytes.
func (t *routeTable) match(host, path []byte) *routeRT {
	if len(t.exact) == 0 && len(t.wild) == 0 {
		return firstPrefix(t.any, path) // no route names a host: the host is not looked at
	}
	host = hostWithoutPort(host)
	var lower [256]byte
	off := max(len(host)-len(lower), 0)
	n := copy(lower[:], host[off:])
	for i := 0; i < n; i++ {
		if c := lower[i]; 'A' <= c && c <= 'Z' {
			lower[i] = c + 'a' - 'A'
		}
	}
	h := lower[:n]
	if off == 0 {
		if rs, ok := t.exact[string(h)]; ok {
			return firstPrefix(rs, path)
		}
	}
	if len(t.wild) > 0 {
		// The longest wildcard suffix the host ends in, trying each dot from the left; a wildcard needs
		// a byte before its suffix, so the host's first byte does not count.
		for i := max(n-t.maxWild, 1-off, 0); i < n; i++ {
			if h[i] == '.' {
				if rs, ok := t.wild[string(h[i:])]; ok {
					return firstPrefix(rs, path)
				}
			}
		}
	}
	return firstPrefix(t.any, path)
}

// firstPrefix returns the first route in rs, which is in match order, whose prefix path starts with.
func firstPrefix(rs []*routeRT, path []byte) *routeRT {
	for _, r := range rs {
		if bytes.HasPrefix(path, r.prefix) {
			return r
		}
	}
	return nil
}

// compileHost turns a configured host pattern into its stored form: lower case, without a port (the
// request's port is ignored, so one in the pattern is too; config validation strips it already).
func compileHost(h string) (host string, wildcard bool) {
	h = strings.ToLower(h)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") &&
		(strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1) {
		h = h[:i] // "a.com:80" and "[::1]:80", never inside a bare IPv6 address
	}
	if strings.HasPrefix(h, "*.") {
		return h[1:], true
	}
	return h, false
}

// hostWithoutPort strips ":port" from a Host value, keeping IPv6 literals' brackets, and the trailing dot
// of a fully qualified name ("api.example.com." is api.example.com, as nginx takes it).
func hostWithoutPort(h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[i:], ']') < 0 {
		h = h[:i]
	}
	if n := len(h); n > 1 && h[n-1] == '.' {
		h = h[:n-1]
	}
	return h
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
