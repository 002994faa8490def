// Package dnstest is a DNS server for tests: it listens on loopback (UDP and TCP on one port) and
// answers A and AAAA queries from a table the test changes while it runs, or fails the way the test
// asks (SERVFAIL, no answer at all, truncated UDP answers). Only tests import it, so the proxy's binary
// never links github.com/miekg/dns.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Mode is how the server answers.
type Mode int32

const (
	Answer   Mode = iota // the table's addresses; NXDOMAIN for a name it does not hold
	ServFail             // SERVFAIL to every query
	Drop                 // no answer at all: the client times out
	Truncate             // over UDP a truncated, empty answer (the client must ask again over TCP); over TCP the table's
)

// Server is a running test DNS server. Safe for concurrent use.
type Server struct {
	Addr string // "127.0.0.1:port": UDP and TCP

	mu      sync.Mutex
	names   map[string][]netip.Addr // by fully qualified lower-case name
	mode    atomic.Int32
	queries atomic.Int64 // queries answered or dropped, every transport
	tcp     atomic.Int64 // of them over TCP
}

// Start starts a server on a free loopback port; it stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{names: map[string][]netip.Addr{}}
	var udp net.PacketConn
	var tcp net.Listener
	for try := 0; ; try++ {
		var err error
		udp, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: %v", err)
		}
		tcp, err = net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			break
		}
		_ = udp.Close()
		if try == 20 {
			t.Fatalf("dnstest: no port free on both udp and tcp: %v", err)
		}
	}
	s.Addr = udp.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	us := &dns.Server{PacketConn: udp, Handler: h}
	ts := &dns.Server{Listener: tcp, Handler: h}
	var started sync.WaitGroup
	started.Add(2)
	us.NotifyStartedFunc = started.Done
	ts.NotifyStartedFunc = started.Done
	go func() { _ = us.ActivateAndServe() }()
	go func() { _ = ts.ActivateAndServe() }()
	started.Wait()
	t.Cleanup(func() {
		_ = us.Shutdown()
		_ = ts.Shutdown()
	})
	return s
}

// Set makes name answer with addrs (IPv4 and IPv6 literals); no addrs: an empty answer (NOERROR, no
// records).
func (s *Server) Set(name string, addrs ...string) {
	list := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		list = append(list, netip.MustParseAddr(a))
	}
	s.mu.Lock()
	s.names[dns.Fqdn(strings.ToLower(name))] = list
	s.mu.Unlock()
}

// SetMode changes how every following query is answered.
func (s *Server) SetMode(m Mode) { s.mode.Store(int32(m)) }

// Queries reports the queries received so far; TCPQueries those over TCP.
func (s *Server) Queries() int64    { return s.queries.Load() }
func (s *Server) TCPQueries() int64 { return s.tcp.Load() }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	_, overTCP := w.RemoteAddr().(*net.TCPAddr)
	if overTCP {
		s.tcp.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch Mode(s.mode.Load()) {
	case Drop:
		return
	case ServFail:
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	case Truncate:
		if !overTCP {
			m.Truncated = true
			_ = w.WriteMsg(m)
			return
		}
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	s.mu.Lock()
	addrs, ok := s.names[strings.ToLower(q.Name)]
	s.mu.Unlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
		_ = w.WriteMsg(m)
		return
	}
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1}
	for _, a := range addrs {
		switch {
		case q.Qtype == dns.TypeA && a.Is4():
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case q.Qtype == dns.TypeAAAA && a.Is6():
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	_ = w.WriteMsg(m)
}
