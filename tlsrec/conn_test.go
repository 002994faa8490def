package tlsrec

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// The record layer driven as a loop drives it, without gnet: the test reads the server's socket and
// feeds Inbound, and writes what Outbound and reply return. The client is crypto/tls over a real socket.

func testConfigs(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rec.example"}, DNSNames: []string{"rec.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	client = &tls.Config{RootCAs: pool, ServerName: "rec.example"}
	return server, client
}

// holdConn holds the client's encrypted records (outer type application data or change_cipher_spec)
// until flush, so that its Finished and its first request reach the server in one write.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	held []byte
	hold bool
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold && len(p) > 0 && (p[0] == 23 || p[0] == 20) {
		h.held = append(h.held, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

func (h *holdConn) flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = false
	_, err := h.Conn.Write(h.held)
	return err
}

type pair struct {
	rec    *Conn
	raw    net.Conn // the server's socket, read and written by the test as a loop would
	client *tls.Conn
	hold   *holdConn
	serr   chan error // the server's handshake, while the client's Finished is held
}

// tcpPair returns the two ends of a loopback TCP connection, closed when the test ends.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// newPair handshakes a crypto/tls client with a record layer over loopback TCP; the client's writes
// after the handshake are held until hold.flush when hold is set.
func newPair(t testing.TB, hold bool, version uint16) *pair {
	t.Helper()
	sconf, cconf := testConfigs(t)
	cconf.MaxVersion = version
	cr, sr := tcpPair(t)
	h := &holdConn{Conn: cr, hold: hold}
	p := &pair{rec: Server(sr, sconf), raw: sr, hold: h, client: tls.Client(h, cconf)}
	_ = sr.SetDeadline(time.Now().Add(10 * time.Second))
	serr := make(chan error, 1)
	go func() { serr <- p.rec.Handshake(context.Background()) }()
	if err := p.client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if hold {
		// The client's Finished is held: the server's handshake ends once the test flushes it.
		p.serr = serr
		return p
	}
	if err := <-serr; err != nil {
		t.Fatal(err)
	}
	p.rec.Detach()
	p.rec.Attach(nil)
	return p
}

// pump reads what the socket has within a short wait and feeds it to Inbound in pieces of at most
// step bytes, writing the replies; it returns the plaintext and Inbound's last error.
func (p *pair) pump(t testing.TB, want int, step int) ([]byte, error) {
	t.Helper()
	var got []byte
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < want {
		_ = p.raw.SetReadDeadline(deadline)
		n, err := p.raw.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (have %d of %d)", err, len(got), want)
		}
		for b := buf[:n]; len(b) > 0; {
			k := min(step, len(b))
			plain, reply, ierr := p.rec.Inbound(b[:k])
			b = b[k:]
			got = append(got, plain...)
			if len(reply) > 0 {
				if _, err := p.raw.Write(reply); err != nil {
					t.Fatal(err)
				}
			}
			if ierr != nil {
				return got, ierr
			}
		}
	}
	return got, nil
}

func TestRecordsOneByteAtATime(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		p := newPair(t, false, v)
		msg := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1000) // several records
		go func() { _, _ = p.client.Write(msg) }()
		got, err := p.pump(t, len(msg), 1)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("version %x: %d bytes, err %v; want %d", v, len(got), err, len(msg))
		}
	}
}

func TestRequestBehindFinished(t *testing.T) {
	p := newPair(t, true, tls.VersionTLS13)
	req := []byte("GET /behind HTTP/1.1\r\nHost: x\r\n\r\n")
	go func() {
		_, _ = p.client.Write(req) // held with the Finished
		_ = p.hold.flush()
	}()
	if err := <-p.serr; err != nil {
		t.Fatal(err)
	}
	p.rec.Detach()
	p.rec.Attach(nil)
	plain, _, err := p.rec.Inbound(nil) // what gnet runs after OnOpen
	if err != nil || !bytes.Equal(plain, req) {
		t.Fatalf("Inbound(nil) = %q, %v; want the request crypto/tls read with the Finished", plain, err)
	}
}

func TestOutboundJoinsSmallSlices(t *testing.T) {
	p := newPair(t, false, tls.VersionTLS13)
	head, body := []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"), []byte("Hello, World!")
	raw, err := p.rec.Outbound([][]byte{head, body})
	if err != nil {
		t.Fatal(err)
	}
	// One record: a 5-byte header, the plaintext, TLS 1.3's content type byte and a 16-byte tag.
	if want := 5 + len(head) + len(body) + 1 + 16; len(raw) != want {
		t.Fatalf("%d bytes of records for a head and a body; want one record of %d", len(raw), want)
	}
	raw = append([]byte(nil), raw...) // it lives until the next call
	big := bytes.Repeat([]byte{'x'}, 100<<10)
	raw2, err := p.rec.Outbound([][]byte{head, big, body})
	if err != nil {
		t.Fatal(err)
	}
	all := append(append([]byte(nil), raw...), raw2...)
	go func() { _, _ = p.raw.Write(all) }()
	want := append(append(append(append([]byte(nil), head...), body...), head...), big...)
	want = append(want, body...)
	got := make([]byte, len(want))
	_ = p.client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(p.client, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("client read %v, equal %v", err, bytes.Equal(got, want))
	}
}

func TestCloseNotify(t *testing.T) {
	p := newPair(t, false, tls.VersionTLS13)
	go func() {
		_, _ = p.client.Write([]byte("last"))
		_ = p.client.CloseWrite()
	}()
	got, err := p.pump(t, 1<<20, 64<<10)
	if !errors.Is(err, io.EOF) || string(got) != "last" {
		t.Fatalf("got %q, %v; want \"last\" then io.EOF", got, err)
	}
	raw := p.rec.Closing(err)          // the connection closes with Inbound's io.EOF
	if len(raw) == 0 || raw[0] != 23 { // TLS 1.3: an alert is an encrypted record
		t.Fatalf("Closing returned %d bytes; want our close_notify", len(raw))
	}
	go func() { _, _ = p.raw.Write(raw) }()
	_ = p.client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := p.client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read %d, %v after our close_notify; want io.EOF", n, err)
	}
}

func TestGarbageIsAnError(t *testing.T) {
	p := newPair(t, false, tls.VersionTLS13)
	_, reply, err := p.rec.Inbound([]byte{23, 3, 3, 0, 40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
		18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40})
	if err == nil || len(reply) == 0 {
		t.Fatalf("a record that does not decrypt: err %v, %d bytes of alert; want an error and an alert", err, len(reply))
	}
	if _, _, err2 := p.rec.Inbound(nil); err2 == nil {
		t.Fatal("the record layer took more after a broken record")
	}
}
