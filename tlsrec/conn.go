package tlsrec

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// maxPlaintext is the most plaintext one TLS record carries (RFC 8446 5.1).
const maxPlaintext = 16 << 10

// keepOut is the largest ciphertext buffer a loop keeps between calls: a larger one (a large Write) is
// dropped at the next call rather than held for the loop's life.
const keepOut = 256 << 10

// Buffers are the scratch buffers of the record layers of one event loop, shared by all of them: what
// Inbound and Outbound return lives here until the next call on the same loop. Loop only. The zero
// value is ready.
type Buffers struct {
	plain []byte // Inbound's plaintext
	out   []byte // ciphertext crypto/tls wrote during the current call
	join  []byte // up to one record of a Writev's small slices, encrypted as one record
}

// Conn is one TLS connection's record layer (package doc).
type Conn struct {
	tc *tls.Conn
	tr transport
}

// Server returns the record layer of the server side of a TLS connection over raw; nothing is sent
// or read until Handshake.
func Server(raw net.Conn, conf *tls.Config) *Conn {
	c := &Conn{tr: transport{raw: raw}}
	c.tc = tls.Server(&c.tr, conf)
	return c
}

// Client returns the record layer of the client side of a TLS connection over raw.
func Client(raw net.Conn, conf *tls.Config) *Conn {
	c := &Conn{tr: transport{raw: raw}}
	c.tc = tls.Client(&c.tr, conf)
	return c
}

// Handshake runs the handshake over the socket, blocking: a worker goroutine's call, never a loop's.
// Its time limit is the socket's deadline, set by the caller. Before Detach only.
func (c *Conn) Handshake(ctx context.Context) error {
	if c.tr.raw == nil {
		return errDetached
	}
	return c.tc.HandshakeContext(ctx)
}

// TLS is the tls.Conn, for ConnectionState and the like. Its Read, Write and Close belong to the
// record layer: call them through Inbound, Outbound and Closing only.
func (c *Conn) TLS() *tls.Conn { return c.tc }

// Detach ends the record layer's use of the socket, after a successful Handshake and before the socket
// goes to a loop: from then on it reads what Inbound is given and writes to the loop's buffers. The
// socket's deadlines are the caller's to clear (gnet does not use them).
func (c *Conn) Detach() {
	c.tr.raw = nil
}

// Attach gives the record layer its loop's scratch buffers (nil: buffers of its own), on the loop,
// before the connection's first Inbound or Outbound.
func (c *Conn) Attach(b *Buffers) {
	if b == nil {
		b = new(Buffers)
	}
	c.tr.b = b
}

// Inbound turns bytes read from the socket into plaintext (gnet.Transform): raw is read whole (a partial
// record waits in crypto/tls for the rest); plain and reply (bytes to write to the peer first: a
// KeyUpdate's answer, an alert) live in the loop's Buffers until the next call on the loop. err is
// io.EOF after the peer's close_notify, another error for a broken record (after its alert, in reply).
// Loop only.
func (c *Conn) Inbound(raw []byte) (plain, reply []byte, err error) {
	b := c.tr.b
	b.out = b.out[:0]
	c.tr.in = raw
	plain = b.plain[:0]
	for {
		if cap(plain)-len(plain) < maxPlaintext {
			plain = append(plain, make([]byte, maxPlaintext)...)[:len(plain)]
		}
		n, rerr := c.tc.Read(plain[len(plain):cap(plain)])
		plain = plain[:len(plain)+n]
		if rerr != nil {
			if rerr != errWouldBlock {
				err = rerr
			} else {
				c.tr.drained = true
			}
			break
		}
		// crypto/tls was given no byte past the record it returned (transport.Read) and had room for
		// all of its plaintext: when Inbound has no byte left either, it holds nothing, and one more
		// Read would only cost crypto/tls an allocation (readFromUntil's reader) to learn it.
		if len(c.tr.in) == 0 && c.tr.drained && c.tr.recLeft == 0 && c.tr.hdrN == 0 {
			break
		}
	}
	c.tr.in = nil
	b.plain = plain
	return plain, b.out, err
}

// Outbound turns the handler's bytes into records (gnet.Transform); raw lives in the loop's Buffers
// until the next call on the loop. Small slices of a Writev (a head and a short body) go out as one
// record, a large one as records of its own, so no more than one record's worth is copied to join
// them. Loop only.
func (c *Conn) Outbound(bufs [][]byte) (raw []byte, err error) {
	b := c.tr.b
	if cap(b.out) > keepOut {
		b.out = nil
	}
	b.out = b.out[:0]
	if len(bufs) == 1 {
		if len(bufs[0]) > 0 {
			_, err = c.tc.Write(bufs[0])
		}
		return b.out, err
	}
	join := b.join[:0]
	for _, p := range bufs {
		if len(join)+len(p) <= maxPlaintext {
			join = append(join, p...)
			continue
		}
		if len(join) > 0 {
			if _, err = c.tc.Write(join); err != nil {
				break
			}
			join = join[:0]
		}
		if len(p) >= maxPlaintext/2 {
			if _, err = c.tc.Write(p); err != nil {
				break
			}
			continue
		}
		join = append(join, p...)
	}
	if err == nil && len(join) > 0 {
		_, err = c.tc.Write(join)
	}
	b.join = join[:0]
	return b.out, err
}

// Closing returns our close_notify (gnet.Transform), to be written behind what is queued as the
// connection closes with err: when we end it (nil) or answer the peer's close_notify (Inbound's io.EOF).
// Nothing after a socket error or a TCP end with no close_notify (the peer has gone: the write would
// only meet a reset) or a broken record (its alert went already). Loop only.
func (c *Conn) Closing(err error) (raw []byte) {
	b := c.tr.b
	if b == nil || (err != nil && err != io.EOF) {
		return nil
	}
	b.out = b.out[:0]
	_ = c.tc.CloseWrite()
	return b.out
}

var errDetached = errors.New("tlsrec: the socket was handed to a loop")

// wouldBlock is the transport's read error while it holds no bytes: temporary, so crypto/tls does not
// keep it and its next Read reads again.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsrec: no bytes yet" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock error = wouldBlock{}

// transport is the tls.Conn's net.Conn: the socket during the handshake, memory after Detach.
type transport struct {
	raw net.Conn // nil after Detach
	in  []byte   // Inbound's bytes crypto/tls has not taken yet
	b   *Buffers // the loop's scratch: b.out takes what crypto/tls writes

	// Where the byte stream given to crypto/tls stands in its records, followed from the first byte
	// (the handshake's too), so that after Detach a Read gives a whole record when it can, and no byte
	// past it: crypto/tls's input buffer then holds one record at most and keeps about 17 KiB, instead
	// of growing to hold the start of the next one too (twice that, or more), and it reads each record
	// with one call of ours (each of its reads that needs bytes allocates its reader).
	recLeft int     // bytes of the current record's body not yet given
	hdrN    int     // bytes of the next record's header given so far
	hdr     [5]byte // that header
	drained bool    // a Read since Detach found nothing: crypto/tls holds no byte the position above does not account for
}

func (t *transport) Read(p []byte) (int, error) {
	if t.raw != nil {
		n, err := t.raw.Read(p)
		t.follow(p[:n])
		return n, err
	}
	if len(t.in) == 0 {
		return 0, errWouldBlock
	}
	n := min(len(p), len(t.in))
	switch {
	case t.recLeft > 0:
		n = min(n, t.recLeft)
	case t.hdrN == 0 && len(t.in) >= len(t.hdr):
		n = min(n, len(t.hdr)+(int(t.in[3])<<8|int(t.in[4]))) // a whole record, header and body
	default:
		n = min(n, len(t.hdr)-t.hdrN)
	}
	copy(p, t.in[:n])
	t.follow(t.in[:n])
	t.in = t.in[n:]
	return n, nil
}

// follow moves the record position past b, the next bytes of the stream.
func (t *transport) follow(b []byte) {
	for len(b) > 0 {
		if t.recLeft > 0 {
			k := min(len(b), t.recLeft)
			t.recLeft -= k
			b = b[k:]
			continue
		}
		k := copy(t.hdr[t.hdrN:], b)
		t.hdrN += k
		b = b[k:]
		if t.hdrN == len(t.hdr) {
			t.recLeft = int(t.hdr[3])<<8 | int(t.hdr[4])
			t.hdrN = 0
		}
	}
}

func (t *transport) Write(p []byte) (int, error) {
	if t.raw != nil {
		return t.raw.Write(p)
	}
	if t.b == nil {
		return 0, errNotAttached
	}
	t.b.out = append(t.b.out, p...)
	return len(p), nil
}

var errNotAttached = errors.New("tlsrec: written before Attach")

// Close is crypto/tls's Close of the socket: a no-op after Detach, when the socket is the loop's.
func (t *transport) Close() error {
	if t.raw != nil {
		return t.raw.Close()
	}
	return nil
}

func (t *transport) LocalAddr() net.Addr {
	if t.raw != nil {
		return t.raw.LocalAddr()
	}
	return nil
}

func (t *transport) RemoteAddr() net.Addr {
	if t.raw != nil {
		return t.raw.RemoteAddr()
	}
	return nil
}

// The deadlines are the socket's during the handshake; after Detach crypto/tls sets them only around a
// close_notify, which Closing's caller writes without waiting.
func (t *transport) SetDeadline(d time.Time) error {
	if t.raw != nil {
		return t.raw.SetDeadline(d)
	}
	return nil
}

func (t *transport) SetReadDeadline(d time.Time) error {
	if t.raw != nil {
		return t.raw.SetReadDeadline(d)
	}
	return nil
}

func (t *transport) SetWriteDeadline(d time.Time) error {
	if t.raw != nil {
		return t.raw.SetWriteDeadline(d)
	}
	return nil
}
