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
	"time"
)

// DefaultPort is the port of a [resolver] server given without one.
const DefaultPort = "53"

// ErrNoAddresses is the error of a lookup whose answer holds no address: for an upstream that follows
// its names, an empty answer is a failure like any other (its last good answer stays).
var ErrNoAddresses = errors.New("lookup: the answer has no addresses")

// Resolver looks host names up. Safe for concurrent use.
type Resolver struct {
	servers []string        // host:port of each DNS server; empty: the system's resolver
	each    []*net.Resolver // by server: Go's DNS client, every query of it sent to that server
	first   atomic.Uint32   // the server that answered last: the next lookup starts there
}

// New returns a Resolver that asks servers (each "ip:port"), or the system's resolver when servers is
// empty. Through servers, queries are Go's own DNS client's: A and AAAA over UDP, the same query over
// TCP when the UDP answer is truncated. A lookup asks the server that answered last; one that does not
// answer, refuses or fails (SERVFAIL) hands the lookup to the next, each server getting an equal share
// of what is left of the lookup's time. An answer that the name does not exist is final. /etc/hosts is
// read first and resolv.conf's search list, ndots, timeout and attempts still apply (write a name with
// enough dots, or fully qualified, to skip the search list).
func New(servers []string) *Resolver {
	lr := &Resolver{servers: slices.Clone(servers)}
	for _, srv := range lr.servers {
		lr.each = append(lr.each, &net.Resolver{PreferGo: true, Dial: dialOnly(srv)})
	}
	return lr
}

// dialOnly sends every query to srv, in place of the name servers resolv.conf names, on the network
// (udp or tcp) the Go resolver asks for.
func dialOnly(srv string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv)
	}
}

// Servers returns the DNS servers asked; nil for the system's resolver.
func (lr *Resolver) Servers() []string { return slices.Clone(lr.servers) }

// Addrs returns every address of host, IPv4 and IPv6, sorted (IPv4 first) and without duplicates, so
// that two processes given the same answer in another order build the same servers. An answer with no
// address is ErrNoAddresses. ctx bounds the whole lookup. An IP literal is returned as it is.
func (lr *Resolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	ips, err := lr.lookup(ctx, host)
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

// lookup asks the servers in turn, from the one that answered last, until one answers.
func (lr *Resolver) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	n := len(lr.each)
	if n == 0 {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	start := int(lr.first.Load())
	var lastErr error
	for i := range n {
		k := (start + i) % n
		sctx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && i < n-1 {
			sctx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(n-i))
		}
		ips, err := lr.each[k].LookupNetIP(sctx, "ip", host)
		cancel()
		var dnsErr *net.DNSError
		if err == nil || errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			lr.first.Store(uint32(k)) // it answered, if only that the name does not exist
			return ips, err
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
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
