//go:build !race

package tlsrec

import (
	"context"
	"crypto/tls"
	"testing"
	"time"
)

// memPair is a client and a server record layer, handshaken over loopback TCP and then detached: the
// test moves their records between them in memory, as two loops would.
func memPair(t testing.TB, version uint16) (client, server *Conn) {
	t.Helper()
	sconf, cconf := testConfigs(t)
	cconf.MaxVersion = version
	cr, sr := tcpPair(t)
	_ = cr.SetDeadline(time.Now().Add(10 * time.Second))
	_ = sr.SetDeadline(time.Now().Add(10 * time.Second))
	client, server = Client(cr, cconf), Server(sr, sconf)
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake(context.Background()) }()
	if err := client.Handshake(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// TLS 1.3: the server's tickets wait in the client's socket; the client reads them in memory.
	client.Detach()
	server.Detach()
	client.Attach(new(Buffers))
	server.Attach(new(Buffers))
	if version == tls.VersionTLS13 {
		buf := make([]byte, 4096)
		_ = cr.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, err := cr.Read(buf)
			if n > 0 {
				if _, _, err := client.Inbound(buf[:n]); err != nil {
					t.Fatal(err)
				}
			}
			if err != nil {
				break
			}
		}
	}
	return client, server
}

// exchange is one keep-alive request and response through both record layers.
func exchange(t testing.TB, client, server *Conn, req, head, body []byte, one, two [][]byte) {
	one[0] = req
	raw, err := client.Outbound(one)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := server.Inbound(raw)
	if err != nil || len(plain) != len(req) {
		t.Fatalf("server got %d bytes, %v", len(plain), err)
	}
	two[0], two[1] = head, body
	raw, err = server.Outbound(two)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err = client.Inbound(raw)
	if err != nil || len(plain) != len(head)+len(body) {
		t.Fatalf("client got %d bytes, %v", len(plain), err)
	}
}

// TestRecordsAllocateOneReaderPerRecord: once warm, a request in and a response (head and body, a
// Writev) out cost the record layer nothing but crypto/tls's own allocation of 16 bytes per record read
// (readFromUntil's &atLeastReader, which escapes into bytes.Buffer.ReadFrom whenever a record needs
// bytes; no caller can avoid it): one record each way, two per exchange, over TLS 1.2 and 1.3.
func TestRecordsAllocateOneReaderPerRecord(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
	head := []byte("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n")
	body := make([]byte, 4096)
	one, two := make([][]byte, 1), make([][]byte, 2)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		client, server := memPair(t, v)
		exchange(t, client, server, req, head, body, one, two)
		if n := testing.AllocsPerRun(200, func() { exchange(t, client, server, req, head, body, one, two) }); n > 2 {
			t.Fatalf("version %x: %.1f allocations per exchange, want 2 (one per record read, in crypto/tls)", v, n)
		}
	}
}

// BenchmarkRecords: the record layer's CPU for one keep-alive exchange (both sides' work: the
// server's half is about half of it).
func BenchmarkRecords(b *testing.B) {
	req := []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
	head := []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n")
	body := []byte("Hello, World!")
	one, two := make([][]byte, 1), make([][]byte, 2)
	client, server := memPair(b, tls.VersionTLS13)
	b.ReportAllocs()
	for b.Loop() {
		exchange(b, client, server, req, head, body, one, two)
	}
}
