// Addresses, host names and path prefixes: how a file's addresses are checked and resolved, and
// when two route hosts overlap.

package config

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// splitHostPort splits host:port and parses the port as a decimal number.
func splitHostPort(addr string) (host string, port int, msg string) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Sprintf("%q is not a host:port address", addr)
	}
	p, err := strconv.Atoi(portStr)
	if err != nil || p < 0 || p > 65535 || portStr[0] == '+' {
		return "", 0, fmt.Sprintf("%q: port %q is not a number between 0 and 65535", addr, portStr)
	}
	return host, p, ""
}

// checkListen checks a listener address: host:port with an optional IP or
// host name and a numeric port. Nothing is resolved or bound here.
func checkListen(ps *problems, key, addr string) bool {
	host, _, msg := splitHostPort(addr)
	if msg != "" {
		ps.addf(key, "%s", msg)
		return false
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			ps.addf(key, "%q: %q is neither an IP address nor a host name", addr, host)
			return false
		}
	}
	return true
}

// hostsOverlap reports whether listeners on the same port with these hosts would both try to bind it:
// the same host (an IP in any spelling), or one a wildcard that covers the other. A name is compared as
// written (it is not resolved here).
func hostsOverlap(a, b string) bool {
	if strings.EqualFold(a, b) || covers(a, b) || covers(b, a) {
		return true
	}
	ipA, errA := netip.ParseAddr(a)
	ipB, errB := netip.ParseAddr(b)
	return errA == nil && errB == nil && ipA.Unmap() == ipB.Unmap()
}

// covers reports whether a listener on host w takes the port for host h as well: "" and "::" take every
// address (IPv6 and, dual stack, IPv4), "0.0.0.0" every IPv4 address and every name.
func covers(w, h string) bool {
	if w == "" {
		return true
	}
	ip, err := netip.ParseAddr(w)
	switch {
	case err != nil:
		return false
	case ip == netip.IPv6Unspecified():
		return true
	case ip == netip.IPv4Unspecified():
		other, err := netip.ParseAddr(h)
		return err != nil || other.Unmap().Is4()
	}
	return false
}

// checkBackend checks an upstream server address: host:port with an IP address or a host name and a
// port that can be dialled. ip is valid when host is an IP literal.
func checkBackend(addr string) (host string, port int, ip netip.Addr, msg string) {
	host, port, msg = splitHostPort(addr)
	if msg != "" {
		return "", 0, ip, msg
	}
	if host == "" {
		return "", 0, ip, fmt.Sprintf("%q has no host", addr)
	}
	if port == 0 {
		return "", 0, ip, fmt.Sprintf("%q: port 0 cannot be dialled", addr)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return host, port, a.Unmap(), ""
	}
	if !validHostname(host) {
		return "", 0, ip, fmt.Sprintf("%q: %q is neither an IP address nor a host name", addr, host)
	}
	return host, port, ip, ""
}

// lookupHost looks host up, bounded by resolveTimeout. The addresses come back unmapped, sorted (IPv4
// first) and without duplicates; failure is the reason why none came.
func lookupHost(host string, r resolver) ([]netip.Addr, string) {
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	ips, err := r.lookupIP(ctx, host)
	if err != nil || len(ips) == 0 {
		if err != nil {
			return nil, err.Error()
		}
		return nil, "no addresses"
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), ""
}

// resolveBackend turns an upstream server address into a TCP address: a name is looked up once and
// its first IPv4 address taken (its first address when it has no IPv4 one), as net.ResolveTCPAddr does.
func resolveBackend(addr string, r resolver) (*net.TCPAddr, string) {
	host, port, ip, msg := checkBackend(addr)
	if msg != "" {
		return nil, msg
	}
	if ip.IsValid() {
		return tcpAddr(ip, port), ""
	}
	addrs, why := lookupHost(host, r)
	if why != "" {
		return nil, fmt.Sprintf("%q: host %q does not resolve: %s", addr, host, why)
	}
	return tcpAddr(addrs[0], port), "" // sorted: an IPv4 address comes first
}

func tcpAddr(ip netip.Addr, port int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IP(ip.AsSlice()), Port: port, Zone: ip.Zone()}
}

// normalizeHost checks a route host pattern and lower-cases it. Accepted:
// a host name, "*." followed by a host name, an IPv4 address, or a
// bracketed IPv6 address, each optionally followed by ":port". The port is
// checked and dropped: the request's port is ignored when routing, so the
// pattern's is too.
func normalizeHost(h string) (string, string) {
	lower := strings.ToLower(h)
	if strings.HasPrefix(lower, "[") {
		end := strings.IndexByte(lower, ']')
		if end < 0 {
			return "", fmt.Sprintf("%q is not a valid bracketed IPv6 address", h)
		}
		if rest := lower[end+1:]; rest != "" {
			port, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", fmt.Sprintf("%q is not a valid bracketed IPv6 address", h)
			}
			if msg := checkHostPort(h, port); msg != "" {
				return "", msg
			}
			lower = lower[:end+1]
		}
		if ip, err := netip.ParseAddr(lower[1 : len(lower)-1]); err == nil && ip.Is6() {
			return lower, ""
		}
		return "", fmt.Sprintf("%q is not a valid bracketed IPv6 address", h)
	}
	switch strings.Count(lower, ":") {
	case 0:
	case 1:
		i := strings.IndexByte(lower, ':')
		if msg := checkHostPort(h, lower[i+1:]); msg != "" {
			return "", msg
		}
		lower = lower[:i]
	default:
		return "", fmt.Sprintf("%q: an IPv6 address must be in brackets, as in \"[::1]\"", h)
	}
	if lower == "*" {
		return "", `"*" is not a host pattern; leave host out to match any host`
	}
	name := strings.TrimPrefix(lower, "*.")
	if strings.Contains(name, "*") {
		return "", fmt.Sprintf("%q: a wildcard is allowed only as a whole leading label, as in \"*.example.com\"", h)
	}
	if !validHostname(strings.TrimSuffix(name, ".")) {
		return "", fmt.Sprintf("%q is not a valid host name or \"*.\" pattern", h)
	}
	return strings.TrimSuffix(lower, "."), ""
}

// checkHostPort checks the port of a route host pattern, which routing
// ignores: a decimal number between 0 and 65535.
func checkHostPort(h, port string) string {
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || port[0] == '+' || port[0] == '-' {
		return fmt.Sprintf("%q: port %q is not a number between 0 and 65535", h, port)
	}
	return ""
}

// validHostname reports whether s is a DNS name: dot-separated labels of
// letters, digits, '-' and '_', none empty, longer than 63 bytes or
// starting or ending with '-'.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func checkPathPrefix(ps *problems, key, p string) bool {
	if !strings.HasPrefix(p, "/") {
		ps.addf(key, "must start with \"/\", got %q", p)
		return false
	}
	if strings.ContainsAny(p, "?#") {
		ps.addf(key, "must be a path only, without a query or fragment, got %q", p)
		return false
	}
	if strings.IndexFunc(p, isBadPathRune) >= 0 {
		ps.addf(key, "must not contain spaces or control characters")
		return false
	}
	return true
}

func isBadPathRune(r rune) bool { return r <= ' ' || r == 0x7f }

// checkHashKey returns why k is not a hash_key, or "": uri, client_ip, header:NAME with NAME a header
// field name (an RFC 9110 token), cookie:NAME with NAME a cookie name (a token too, RFC 6265).
func checkHashKey(k string) string {
	switch k {
	case HashKeyURI, HashKeyClientIP:
		return ""
	}
	kind, name, ok := strings.Cut(k, ":")
	if !ok || (kind != "header" && kind != "cookie") {
		return fmt.Sprintf("%q is not one of \"uri\", \"client_ip\", \"header:NAME\", \"cookie:NAME\"", k)
	}
	if name == "" || strings.IndexFunc(name, func(r rune) bool { return !isTokenRune(r) }) >= 0 {
		return fmt.Sprintf("%q: %q is not a valid %s name", k, name, kind)
	}
	return ""
}

// isTokenRune reports whether r may appear in an RFC 9110 token (a header field name).
func isTokenRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return r < 0x80 && strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
