// Package lookup turns the host names of upstream servers into addresses: through the DNS servers of
// [resolver] (plain DNS over UDP, again over TCP when an answer comes back truncated; A and AAAA), or
// through the system's resolver (resolv.conf, /etc/hosts) when none are given. Standard library only;
// it never runs on an event loop (the callers look names up at load, and from the engine's resolver
// goroutine).
package lookup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
)

// DefaultPort is the port of a [resolver] server given without one.
const DefaultPort = "53"

// ErrNoAddresses is the error of a lookup whose answer holds no address: for an upstream that follows
// its names, an empty answer is a failure like any other (its last good answer stays).
var ErrNoAddresses = errors.New("lookup: the answer has no addresses")

// Resolver looks host names up. Safe for concurrent use.
type Resolver struct {
	servers []string // host:port of each DNS server, tried in turn; empty: the system's resolver
	r       *net.Resolver
	next    atomic.Uint32 // the server the next query goes to
}

// New returns a Resolver that asks servers (each "ip:port"), or the system's resolver when servers is
// empty. Through servers, queries are Go's own DNS client's: A and AAAA over UDP, the same query over
// TCP when the UDP answer is truncated, each attempt to the next server in turn, so a dead server
// costs one attempt's timeout. /etc/hosts is read first and resolv.conf's search list and ndots still
// apply (write a name with enough dots, or fully qualified, to skip the search list).
func New(servers []string) *Resolver {
	if len(servers) == 0 {
		return &Resolver{r: net.DefaultResolver}
	}
	lr := &Resolver{servers: slices.Clone(servers)}
	lr.r = &net.Resolver{PreferGo: true, Dial: lr.dial}
	return lr
}

// Servers returns the DNS servers asked; nil for the system's resolver.
func (lr *Resolver) Servers() []string { return slices.Clone(lr.servers) }

// dial replaces the name server that resolv.conf names with the next of ours, on the network (udp or
// tcp) the Go resolver asks for.
func (lr *Resolver) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	i := lr.next.Add(1) - 1
	var d net.Dialer
	return d.DialContext(ctx, network, lr.servers[int(i%uint32(len(lr.servers)))])
}

// Addrs returns every address of host, IPv4 and IPv6, sorted (IPv4 first) and without duplicates, so
// that two processes given the same answer in another order build the same servers. An answer with no
// address is ErrNoAddresses. ctx bounds the whole lookup. An IP literal is returned as it is.
func (lr *Resolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	ips, err := lr.r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", host, ErrNoAddresses)
	}
	return out, nil
}

// ServerAddr checks one [resolver] server address: an IP address with an optional port (53 when
// left out); "10.0.0.2", "10.0.0.2:5353", "::1" and "[::1]:53" are accepted. A name is refused: the
// resolver's own address is not looked up. It returns the address as "ip:port", or why it is not one.
func ServerAddr(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("%q: a zone is not supported", s)
		}
		return netip.AddrPortFrom(ip.Unmap(), 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an IP address with an optional port, as in \"10.0.0.2\" or \"10.0.0.2:53\"", s)
	}
	if ap.Port() == 0 {
		return "", fmt.Errorf("%q: port 0 cannot be asked", s)
	}
	if ap.Addr().Zone() != "" {
		return "", fmt.Errorf("%q: a zone is not supported", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), nil
}
