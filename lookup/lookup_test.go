package lookup

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"switchflow/internal/dnstest"
)

func addrs(t *testing.T, r *Resolver, host string, d time.Duration) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	got, err := r.Addrs(ctx, host)
	var out []string
	for _, a := range got {
		out = append(out, a.String())
	}
	return out, err
}

// The name has A and AAAA records, given in no order and one twice: every address comes back once,
// IPv4 first, sorted, so that two processes build the same servers.
func TestAddrsAAndAAAASorted(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Set("app.test.", "10.0.0.3", "fd00::2", "10.0.0.1", "10.0.0.3")
	got, err := addrs(t, New([]string{dns.Addr}), "app.test.", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1", "10.0.0.3", "fd00::2"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A truncated UDP answer is asked again over TCP, which gets the whole answer.
func TestAddrsTruncatedRetriesOverTCP(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Set("big.test.", "10.1.0.1", "10.1.0.2")
	dns.SetMode(dnstest.Truncate)
	got, err := addrs(t, New([]string{dns.Addr}), "big.test.", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.1.0.1", "10.1.0.2"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if dns.TCPQueries() == 0 {
		t.Fatal("no query came over TCP")
	}
}

// SERVFAIL, NXDOMAIN and an empty answer are each an error; an empty one is ErrNoAddresses.
func TestAddrsFailures(t *testing.T) {
	dns := dnstest.Start(t)
	r := New([]string{dns.Addr})
	dns.Set("empty.test.")
	if _, err := addrs(t, r, "empty.test.", 5*time.Second); !errors.Is(err, ErrNoAddresses) {
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound { // Go reports an empty answer as "no such host"
			t.Fatalf("empty answer: %v, want ErrNoAddresses or not found", err)
		}
	}
	if _, err := addrs(t, r, "missing.test.", 5*time.Second); err == nil {
		t.Fatal("NXDOMAIN: no error")
	}
	dns.Set("app.test.", "10.0.0.1")
	dns.SetMode(dnstest.ServFail)
	if _, err := addrs(t, r, "app.test.", 5*time.Second); err == nil {
		t.Fatal("SERVFAIL: no error")
	}
	dns.SetMode(dnstest.Drop)
	start := time.Now()
	if _, err := addrs(t, r, "app.test.", 300*time.Millisecond); err == nil {
		t.Fatal("no answer: no error")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("a lookup bounded by 300ms took %v", el)
	}
}

// A dead server (nothing listens on its port) or one that never answers hands the lookup to the next;
// the next lookups start with the server that answered. A server that answers that the name does not
// exist is believed: the next is not asked.
func TestAddrsNextServer(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Set("app.test.", "10.0.0.9")
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().String()
	_ = dead.Close()
	silent := dnstest.Start(t)
	silent.SetMode(dnstest.Drop)
	for _, first := range []string{deadAddr, silent.Addr} {
		r := New([]string{first, dns.Addr})
		for i := range 3 {
			start := time.Now()
			got, err := addrs(t, r, "app.test.", 2*time.Second)
			if err != nil || !slices.Equal(got, []string{"10.0.0.9"}) {
				t.Fatalf("first server %s, lookup %d: got %v, %v", first, i, got, err)
			}
			if el := time.Since(start); i > 0 && el > 500*time.Millisecond {
				t.Fatalf("first server %s, lookup %d took %v: it did not start with the server that answered", first, i, el)
			}
		}
	}
	q := silent.Queries()
	nx := dnstest.Start(t) // knows no name
	if _, err := addrs(t, New([]string{nx.Addr, silent.Addr}), "app.test.", 2*time.Second); err == nil {
		t.Fatal("NXDOMAIN: no error")
	}
	if silent.Queries() != q {
		t.Fatal("after NXDOMAIN the next server was asked")
	}
}

func TestAddrsLiteral(t *testing.T) {
	got, err := New(nil).Addrs(context.Background(), "::ffff:10.0.0.1")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestServerAddr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10.0.0.2", "10.0.0.2:53"},
		{"10.0.0.2:5353", "10.0.0.2:5353"},
		{"::1", "[::1]:53"},
		{"[::1]:54", "[::1]:54"},
		{"dns.example:53", ""},
		{"dns.example", ""},
		{"10.0.0.2:0", ""},
		{"10.0.0.2:99999", ""},
		{"", ""},
	} {
		got, err := ServerAddr(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: got %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
