package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/config"
	"switchflow/tlsrec"
)

// How a TLS client reaches the engine (issue 22, design (a) of docs/ARCHITECTURE.md, "TLS termination"):
//
//   - each [tls] listen address has an accept goroutine (net.Listener, Go's netpoller);
//   - each accepted connection has a goroutine for its handshake only (tlsrec, over the socket, blocking)
//     under a deadline of read_header_timeout: a client that sends nothing, or half a ClientHello, is
//     closed when it ends and counted as a timeout; plain HTTP sent to the port is answered 400 and
//     closed, and reaches nothing. At most max_connections + tlsRefusalSlots TLS connections are open
//     or in their handshake at once (tlsTerm.open, released at the loop's OnClose): past it a new one is
//     closed before its handshake, so handshakes in flight are bounded by max_connections too;
//   - after the handshake the goroutine hands the socket itself to an event loop (gnet's
//     Engine.Register: the least-connections loop, as for an accepted client) with a *tlsClient as its
//     context, and ends. In OnOpen the loop puts the connection's record layer (tlsrec.Conn) on it as
//     gnet's Transform (tlsAttach): the loop reads the socket, decrypts into OnTraffic, and encrypts what
//     the engine writes, with its own shared buffers. The engine takes it for an ordinary client
//     (clientOpened), with X-Forwarded-Proto: https; the same codec and state machines serve it.
//
// Backpressure is the plain client's (flow.go): the engine's queue for the client is ciphertext, counted
// by OutboundBuffered, and a paused client is not read, so TCP holds it back. Splicing does not apply to a
// TLS client (gnet refuses it; the engine copies).
//
// max_connections counts TLS clients as it counts the others: each one takes a header slab in
// clientOpened (503, encrypted, and a close when none is free).

// tlsTerm is the TLS side of a Server: nil without [tls].
type tlsTerm struct {
	s     *Server
	conf  *tls.Config
	certs atomic.Pointer[certSet]
	addrs []string

	lns   []net.Listener
	open  atomic.Int64 // TLS connections open or in their handshake, at most limit
	limit int64        // max_connections + tlsRefusalSlots
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
	conns map[net.Conn]struct{} // every socket in its handshake, for stop; under mu
	done  bool                  // stop ran: a connection accepted after is closed; under mu

	hs [hsResults][3]atomic.Uint64 // handshakes by result and version (tls.go)
}

// tlsRefusalSlots are TLS connections allowed beyond max_connections, so that a client past it is told
// 503 (over TLS, by clientOpened) as a plain one is, rather than closed before its handshake.
const tlsRefusalSlots = 64

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
		s:       s,
		addrs:   cfg.TLS.Listen,
		limit:   int64(cfg.Server.MaxConnections + tlsRefusalSlots),
		quit:    make(chan struct{}),
		running: make(chan struct{}),
		conns:   map[net.Conn]struct{}{},
	}
	t.certs.Store(cs)
	t.conf = &tls.Config{
		MinVersion: tlsVersion(cfg.TLS.MinVersion),
		NextProtos: []string{"http/1.1"}, // one HTTP engine: a client offering h2 and http/1.1 gets http/1.1
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.certs.Load().pick(hello), nil
		},
	}
	// A client that offers protocols but not http/1.1 (h2 only) gets no ALPN answer, as from nginx,
	// instead of crypto/tls's no_application_protocol alert: it may still speak HTTP/1.1. The clone's
	// tickets are sealed with the first Config's keys (crypto/tls uses the parent's automatic keys
	// for a Config from GetConfigForClient), so they resume on either.
	noALPN := t.conf.Clone()
	noALPN.NextProtos = nil
	t.conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if len(hello.SupportedProtos) > 0 && !slices.Contains(hello.SupportedProtos, "http/1.1") {
			return noALPN, nil
		}
		return nil, nil
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

// stopTLS ends the TLS side once the loops have stopped (Serve): the listeners close, and the
// connections still in their handshake are closed (their clients had not sent a request yet).
func (s *Server) stopTLS() {
	t := s.tls
	if t == nil {
		return
	}
	s.tlsStopAccepting()
	t.mu.Lock()
	t.done = true
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	close(t.quit)
	t.wg.Wait()
}

// tlsLoopsRunning tells the accept goroutines that the loops are registered (OnTick, on gnet's ticker
// goroutine, which starts after them).
func (s *Server) tlsLoopsRunning() {
	if t := s.tls; t != nil {
		t.runningOnce.Do(func() { close(t.running) })
	}
}

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
		if t.open.Add(1) > t.limit {
			t.open.Add(-1)
			_ = c.Close() // max_connections + tlsRefusalSlots TLS connections already
			continue
		}
		if !t.track(c) {
			_ = c.Close()
			t.open.Add(-1)
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

// serve runs one TLS connection's handshake and hands its socket to a loop.
func (t *tlsTerm) serve(raw net.Conn) {
	defer t.wg.Done()
	handed := false
	defer func() {
		t.untrack(raw)
		if !handed {
			_ = raw.Close()
			t.open.Add(-1)
		}
	}()

	tbl := t.s.tbl.Load()
	_ = raw.SetDeadline(time.Now().Add(tbl.readHeaderTimeout))
	rc := tlsrec.Server(raw, t.conf)
	if err := rc.Handshake(context.Background()); err != nil {
		result := hsFailed
		var rhe tls.RecordHeaderError
		var ne net.Error
		switch {
		case errors.As(err, &rhe) && rhe.Conn != nil:
			_, _ = rhe.Conn.Write([]byte(plainHTTP400))
		case errors.As(err, &ne) && ne.Timeout():
			result = hsTimeout
		}
		t.count(result, rc.TLS().ConnectionState().Version)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	rc.Detach()
	st := rc.TLS().ConnectionState()
	t.count(hsOK, st.Version)

	info := &tlsClient{version: st.Version, cipher: st.CipherSuite, rec: rc, term: t}
	// Register picks a loop as gnet's balancing picks one for an accepted client, dups the descriptor
	// onto it and closes raw; OnOpen then runs on that loop with info as the connection's context.
	ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), info), raw)
	res, err := t.s.engine.Register(ctx)
	if err != nil {
		t.s.log.Debug("tls client not handed to a loop", "error", err)
		return
	}
	handed = true // gnet closes raw, whatever the result; the loop releases the connection's count at OnClose
	select {
	case r, ok := <-res:
		if !ok || r.Err != nil {
			info.release() // no OnOpen, so no OnClose
			if ok {
				t.s.log.Debug("tls client not handed to a loop", "error", r.Err)
			}
		}
	case <-t.quit:
	}
}
