package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/config"
)

// How a TLS client reaches the engine (issue 22, design (b) of docs/ARCHITECTURE.md, "TLS termination"):
//
//   - each [tls] listen address has an accept goroutine (net.Listener, Go's netpoller);
//   - each accepted connection has a goroutine that runs the handshake under a deadline of
//     read_header_timeout (a client that sends nothing, or half a ClientHello, is closed when it ends and
//     counted as a timeout); plain HTTP sent to the port is answered 400 and closed, and reaches nothing;
//   - after the handshake the goroutine makes a unix socketpair and Enrolls one end on an event loop
//     (gnet's Engine.Register: the least-connections loop, as for an accepted client), with a *tlsClient as
//     its context: the engine takes it for an ordinary client (clientOpened), with the TLS peer's address
//     and X-Forwarded-Proto: https. The same codec and state machines serve it; nothing else changes;
//   - two copies run until either side ends: client → engine on a goroutine of its own (tls.Conn.Read,
//     a buffer of one TLS record, then a blocking write to the socketpair), engine → client on the
//     connection's goroutine (it waits for the socketpair to be readable holding no buffer, borrows an
//     io_buffer one from a pool, reads, and writes it to the tls.Conn).
//
// Backpressure: the socketpair's buffers (SO_SNDBUF io_buffer each way) fill when one side stops reading;
// a full socketpair blocks the copy into it, which stops reading its source, and TCP holds the peer back.
// Toward the engine that is an ordinary slow client (flow.go pauses the backend); toward the TLS client a
// write that makes no progress for idle_timeout closes the connection, as the engine closes a plain client
// that reads nothing of its response.
//
// max_connections counts TLS clients as it counts the others: each one Enrolled takes a header slab in
// clientOpened (503 and a close when none is free). Handshakes in progress, which hold no slab, are
// bounded too (tlsTerm.slots): max_connections + tlsRefusalSlots TLS connections at once, past which a
// new one is closed before its handshake.

// tlsTerm is the TLS side of a Server: nil without [tls].
type tlsTerm struct {
	s     *Server
	conf  *tls.Config
	certs atomic.Pointer[certSet]
	addrs []string

	lns   []net.Listener
	slots chan struct{} // one per TLS connection open or in its handshake, max_connections
	wg    sync.WaitGroup
	quit  chan struct{} // closed by stop

	// acceptors: the accept goroutines alone, for a handover's drain (handover.go), which waits for the
	// handshakes of the connections they took.
	acceptors sync.WaitGroup

	// running is closed at the first OnTick: gnet calls OnBoot before it registers its loops, and the
	// ticker starts after, so Engine.Register may pick a loop only from then on.
	running     chan struct{}
	runningOnce sync.Once

	mu    sync.Mutex
	conns map[net.Conn]struct{} // every TLS connection's socket, for stop; under mu
	done  bool                  // stop ran: a connection accepted after is closed; under mu

	bufs      sync.Pool // *[]byte of io_buffer: engine → client reads
	ioBuffer  int
	upBufSize int // client → engine reads: one TLS record's plaintext at most is returned by a Read

	hs [hsResults][3]atomic.Uint64 // handshakes by result and version (tls.go)
}

// tlsRefusalSlots are TLS connections allowed beyond max_connections, so that a client past it is told
// 503 (over TLS, by clientOpened) as a plain one is, rather than closed before its handshake.
const tlsRefusalSlots = 64

// maxTLSRecord is the most plaintext one TLS record carries (RFC 8446 5.1): a larger read buffer on the
// client side gains nothing, tls.Conn.Read returns one record's worth.
const maxTLSRecord = 16 << 10

// newTLSTerm loads [tls]'s certificates and prepares the shared tls.Config; nil, nil without [tls].
func newTLSTerm(s *Server, cfg *config.Config) (*tlsTerm, error) {
	if cfg.TLS == nil {
		return nil, nil
	}
	cs, err := loadCertSet(cfg.TLS.Certificates, time.Now())
	if err != nil {
		return nil, err
	}
	for _, w := range cs.warn {
		s.log.Warn("tls certificate", "problem", w)
	}
	t := &tlsTerm{
		s:         s,
		addrs:     cfg.TLS.Listen,
		slots:     make(chan struct{}, cfg.Server.MaxConnections+tlsRefusalSlots),
		quit:      make(chan struct{}),
		running:   make(chan struct{}),
		conns:     map[net.Conn]struct{}{},
		ioBuffer:  cfg.Server.IOBuffer,
		upBufSize: min(cfg.Server.IOBuffer, maxTLSRecord),
	}
	t.certs.Store(cs)
	t.bufs.New = func() any { b := make([]byte, t.ioBuffer); return &b }
	t.conf = &tls.Config{
		MinVersion: tlsVersion(cfg.TLS.MinVersion),
		NextProtos: []string{"http/1.1"}, // one HTTP engine: a client offering h2 and http/1.1 gets http/1.1
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.certs.Load().pick(hello.ServerName), nil
		},
	}
	return t, nil
}

// startTLS binds the TLS listeners, for Serve, before the loops start: an address that cannot be bound
// fails the start, as a server.listen one does. The accept goroutines wait for the loops.
func (s *Server) startTLS() error {
	t := s.tls
	if t == nil {
		return nil
	}
	for _, a := range t.addrs {
		ln, err := s.listenTCP(tlsInherited, a) // handover.go: the socket of the process before, if any
		if err != nil {
			for _, l := range t.lns {
				_ = l.Close()
			}
			t.lns = nil
			return fmt.Errorf("tls listen %s: %w", a, err)
		}
		t.lns = append(t.lns, ln)
	}
	for _, ln := range t.lns {
		t.wg.Add(1)
		t.acceptors.Add(1)
		go t.accept(ln)
	}
	return nil
}

// TLSAddrs reports the addresses the TLS listeners are bound to (after Serve bound them), for tests and
// the start's log line.
func (s *Server) TLSAddrs() []string {
	if s.tls == nil {
		return nil
	}
	var out []string
	for _, ln := range s.tls.lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

// tlsStopAccepting closes the TLS listeners (Shutdown). Connections already accepted go on.
func (s *Server) tlsStopAccepting() {
	if s.tls == nil {
		return
	}
	for _, ln := range s.tls.lns {
		_ = ln.Close()
	}
}

// stopTLS ends the TLS side once the loops have stopped (Serve): the listeners close, and the copies,
// which see their socketpair end closed by the loops, flush what it held to their clients; those still
// running after tlsStopWait (a client that reads nothing) are closed.
func (s *Server) stopTLS() {
	t := s.tls
	if t == nil {
		return
	}
	s.tlsStopAccepting()
	t.mu.Lock()
	t.done = true
	t.mu.Unlock()
	close(t.quit)
	ended := make(chan struct{})
	go func() { t.wg.Wait(); close(ended) }()
	select {
	case <-ended:
		return
	case <-time.After(tlsStopWait):
	}
	t.mu.Lock()
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	<-ended
}

// tlsLoopsRunning tells the accept goroutines that the loops are registered (OnTick, on gnet's ticker
// goroutine, which starts after them).
func (s *Server) tlsLoopsRunning() {
	if t := s.tls; t != nil {
		t.runningOnce.Do(func() { close(t.running) })
	}
}

// tlsStopWait is how long stopTLS lets the copies flush before it closes their connections.
const tlsStopWait = 2 * time.Second

func (t *tlsTerm) accept(ln net.Listener) {
	defer t.wg.Done()
	defer t.acceptors.Done()
	select {
	case <-t.running:
	case <-t.quit:
		return
	}
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: wait a little, as net/http does, never spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.s.log.Warn("tls accept failed", "error", err, "retry_in", delay.String())
			select {
			case <-time.After(delay):
			case <-t.quit:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.slots <- struct{}{}:
		default:
			_ = c.Close() // max_connections + tlsRefusalSlots TLS connections already
			continue
		}
		if !t.track(c) {
			_ = c.Close()
			<-t.slots
			return
		}
		t.wg.Add(1)
		go t.serve(c)
	}
}

// track records c for stop; false once stop ran.
func (t *tlsTerm) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *tlsTerm) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// plainHTTP400 answers plain HTTP sent to a TLS port, as net/http does.
const plainHTTP400 = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 48\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// serve runs one TLS connection: handshake, enroll, copies.
func (t *tlsTerm) serve(raw net.Conn) {
	defer t.wg.Done()
	defer func() { <-t.slots }()
	defer t.untrack(raw)
	defer raw.Close()

	tbl := t.s.tbl.Load()
	_ = raw.SetDeadline(time.Now().Add(tbl.readHeaderTimeout))
	tc := tls.Server(raw, t.conf)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		result := hsFailed
		var rhe tls.RecordHeaderError
		var ne net.Error
		switch {
		case errors.As(err, &rhe) && rhe.Conn != nil:
			_, _ = rhe.Conn.Write([]byte(plainHTTP400))
		case errors.As(err, &ne) && ne.Timeout():
			result = hsTimeout
		}
		t.count(result, tc.ConnectionState().Version)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	t.count(hsOK, st.Version)

	info := &tlsClient{version: st.Version, cipher: st.CipherSuite}
	if a, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			info.ip = ip.Unmap()
		}
	}
	mine, err := t.enroll(info)
	if err != nil {
		t.s.log.Debug("tls client not handed to a loop", "error", err)
		return
	}
	defer mine.Close()

	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		t.up(tc, mine)
	}()
	t.down(mine, tc, tbl.idleTimeout)
	_ = raw.Close() // the engine is done with the client: its reader's Read ends too
	<-upDone
}

// enroll makes the socketpair and hands one end to a loop with info as its context; it returns the
// other end, for the copies.
func (t *tlsTerm) enroll(info *tlsClient) (*net.UnixConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, t.ioBuffer)
	}
	mine, err := unixConn(fds[0])
	if err != nil {
		_ = syscall.Close(fds[1])
		return nil, err
	}
	theirs, err := unixConn(fds[1])
	if err != nil {
		_ = mine.Close()
		return nil, err
	}
	// Register picks a loop as gnet's balancing picks one for an accepted client, dups the descriptor
	// onto it and closes theirs; OnOpen then runs on that loop with info as the connection's context.
	ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), info), theirs)
	res, err := t.s.engine.Register(ctx)
	if err != nil {
		_ = theirs.Close()
		_ = mine.Close()
		return nil, err
	}
	select {
	case r, ok := <-res:
		if !ok || r.Err != nil || r.Conn == nil {
			_ = mine.Close()
			if ok && r.Err != nil {
				return nil, r.Err
			}
			return nil, errors.New("the event loop did not take the connection")
		}
	case <-t.quit:
		_ = mine.Close()
		return nil, errors.New("stopping")
	}
	return mine, nil
}

// unixConn wraps a socketpair descriptor in a *net.UnixConn (on Go's netpoller); fd is its own after.
func unixConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "tls-socketpair")
	c, err := net.FileConn(f) // a dup of fd
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("socketpair: a %T", c)
	}
	return uc, nil
}

// up copies the client's plaintext to the engine until the client ends (EOF, close_notify, an error,
// or the connection closed by down), then half-closes the socketpair: the engine reads the end of its
// client's bytes as it does from a plain one.
func (t *tlsTerm) up(tc *tls.Conn, mine *net.UnixConn) {
	buf := make([]byte, t.upBufSize)
	for {
		n, err := tc.Read(buf)
		if n > 0 {
			if _, werr := mine.Write(buf[:n]); werr != nil {
				return // the engine closed the client
			}
		}
		if err != nil {
			_ = mine.CloseWrite()
			return
		}
	}
}

// down copies the engine's bytes to the client until the engine closes its end, then sends
// close_notify. It holds no buffer while the engine has nothing for the client: it waits for the
// socketpair to be readable, then borrows one. A write the client takes nothing of for idle (it reads
// nothing) ends the connection.
func (t *tlsTerm) down(mine *net.UnixConn, tc *tls.Conn, idle time.Duration) {
	rc, err := mine.SyscallConn()
	if err != nil {
		return
	}
	for {
		var bp *[]byte
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			b := t.bufs.Get().(*[]byte)
			for {
				n, rerr = syscall.Read(int(fd), *b)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				t.bufs.Put(b)
				return false // nothing yet: wait for the socketpair to be readable, holding no buffer
			}
			bp = b
			return true
		})
		if err != nil || rerr != nil || n <= 0 {
			if bp != nil {
				t.bufs.Put(bp)
			}
			if n == 0 && err == nil && rerr == nil {
				_ = tc.SetWriteDeadline(time.Now().Add(idle))
				_ = tc.CloseWrite() // close_notify: the engine ended the connection, every byte is sent
			}
			return
		}
		_ = tc.SetWriteDeadline(time.Now().Add(idle))
		_, werr := tc.Write((*bp)[:n])
		t.bufs.Put(bp)
		if werr != nil {
			return
		}
	}
}
