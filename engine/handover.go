// Listening sockets passed between processes: a binary upgrade (SIGUSR2, SPEC 1) hands every listener of
// the old process to the new one, which serves the very sockets (nothing queued on them is lost), and
// the old one then lets go of them without taking them out of the listening state.

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
)

// Listeners are listening sockets by the address they were configured with (as written in the file):
// those of server.listen (with reuse_port, one per event loop and address), [tls] listen and [admin]
// listen.
type Listeners struct {
	Listen map[string][]int `json:"listen,omitempty"`
	TLS    map[string][]int `json:"tls,omitempty"`
	Admin  map[string][]int `json:"admin,omitempty"`
}

// Close closes every descriptor of l.
func (l *Listeners) Close() {
	if l == nil {
		return
	}
	for _, m := range []map[string][]int{l.Listen, l.TLS, l.Admin} {
		for _, fds := range m {
			for _, fd := range fds {
				_ = syscall.Close(fd)
			}
		}
	}
}

// Inherit makes Serve take its listeners from l, for the addresses that the configuration still has,
// instead of opening them; the others are closed when Serve starts. Before Serve only.
func (s *Server) Inherit(l *Listeners) { s.inherited = l }

// listenTCP is the [tls] or [admin] listener for addr: the inherited socket, else a new one.
func (s *Server) listenTCP(from func(*Listeners) map[string][]int, addr string) (net.Listener, error) {
	if s.inherited == nil {
		return listenNoKeepAlive(addr)
	}
	m := from(s.inherited)
	fds := m[addr]
	delete(m, addr)
	if len(fds) == 0 {
		return listenNoKeepAlive(addr)
	}
	for _, fd := range fds[1:] {
		_ = syscall.Close(fd) // a single socket serves a [tls] or [admin] address
	}
	return newFDListener(fds[0])
}

// listenNoKeepAlive binds addr for the Go side's listeners (TLS, admin). Their connections get no TCP
// keep-alive, as gnet's plain clients get none (idle_timeout closes a silent client): net.Listen's
// default turns it on with four setsockopt calls on every accepted connection, an eighth of the system
// calls of a TLS handshake.
func listenNoKeepAlive(addr string) (net.Listener, error) {
	return (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", addr)
}

func tlsInherited(l *Listeners) map[string][]int   { return l.TLS }
func adminInherited(l *Listeners) map[string][]int { return l.Admin }

// listenerFDs gives gnet the inherited sockets of server.listen, keyed as Serve names the addresses;
// those of addresses no longer configured are closed.
func (s *Server) listenerFDs() map[string][]int {
	if s.inherited == nil {
		return nil
	}
	out := map[string][]int{}
	for _, a := range s.cfg.Server.Listen {
		if fds := s.inherited.Listen[a]; len(fds) > 0 {
			out["tcp://"+a] = fds
			delete(s.inherited.Listen, a)
		}
	}
	return out
}

// closeUninherited closes the inherited sockets that Serve did not take: addresses gone from the file.
// Connections queued on them are lost with them; so are the addresses, which the file no longer has.
func (s *Server) closeUninherited() {
	if s.inherited == nil {
		return
	}
	var gone []string
	for kind, m := range map[string]map[string][]int{"server.listen": s.inherited.Listen, "tls.listen": s.inherited.TLS, "admin.listen": s.inherited.Admin} {
		for a := range m {
			gone = append(gone, kind+" "+a)
		}
	}
	if len(gone) > 0 {
		s.log.Warn("inherited listeners closed: the file no longer has their addresses", "listeners", strings.Join(gone, ", "))
	}
	s.inherited.Close()
	s.inherited = nil
}

// DupListeners duplicates every listening socket of the running server, for a new process to serve
// (close-on-exec descriptors: the caller passes them on explicitly, then closes them). Not once a
// handover began.
func (s *Server) DupListeners() (*Listeners, error) {
	if s.handedOver.Load() {
		return nil, errors.New("engine: the listeners were handed over already")
	}
	select {
	case <-s.loopsUp:
	default:
		return nil, errors.New("engine: not serving yet")
	}
	l := &Listeners{Listen: map[string][]int{}, TLS: map[string][]int{}, Admin: map[string][]int{}}
	fds, err := s.engine.DupListeners()
	if err != nil {
		return nil, err
	}
	for k, v := range fds {
		l.Listen[strings.TrimPrefix(k, "tcp://")] = v
	}
	if s.tls != nil {
		for i, ln := range s.tls.lns {
			if err := dupInto(l.TLS, s.tls.addrs[i], ln); err != nil {
				l.Close()
				return nil, err
			}
		}
	}
	if ln := s.adminSock; ln != nil {
		if err := dupInto(l.Admin, s.cfg.Admin.Listen, ln); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// dupInto adds a close-on-exec duplicate of ln's socket to m[addr]. It never changes the socket's
// blocking mode (as os.File.Fd would: see fdListener).
func dupInto(m map[string][]int, addr string, ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("engine: listener %s has no descriptor", addr)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var nfd int
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = dupCloexec(int(fd))
	}); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("engine: dup of listener %s: %w", addr, derr)
	}
	m[addr] = append(m[addr], nfd)
	return nil
}

func dupCloexec(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// handoverGrace is how long, after a handover, a client connection waiting for a request head is kept
// for the request it may be sending (drain). Busy keep-alive clients send theirs within it, and get it
// answered with a close; an idle one costs the drain this much at most.
const handoverGrace = time.Second

// HandOver is Shutdown for a process whose listeners another one now serves (it got them from
// DupListeners): this one stops accepting without taking the sockets out of the listening state, so the
// connections waiting in their queues, and those still to come, go to the other process; then requests in
// flight finish until ctx ends, as on SIGTERM. The admin listener stops accepting too (its connections
// open answer /healthz with 503). The listeners are let go of before the drain begins, so that a new
// connection, to the admin listener above all, never meets this process draining. Safe from any
// goroutine, once Ready.
func (s *Server) HandOver(ctx context.Context) error {
	select {
	case <-s.loopsUp:
	default:
		return errors.New("engine: not serving yet")
	}
	s.handedOver.Store(true)
	s.stopAccepting()
	s.log.Info("listeners handed over; draining", "clients", s.clientsOpen())
	return s.Shutdown(ctx)
}

// tlsLeft counts, after a handover, the TLS connections this process accepted that are still in their
// handshake, for Shutdown's drain: each becomes a client to serve (on a loop, counted with the others
// once it is there), not a connection to drop. After SIGTERM a handshake that ends during the drain finds
// the client refused (clientOpened), so the drain does not wait for them.
func (s *Server) tlsLeft() int {
	if s.tls == nil || s.tlsAcceptorsDone == nil {
		return 0
	}
	select {
	case <-s.tlsAcceptorsDone:
	default:
		return 1 // an accept goroutine may hold a connection it has not counted yet
	}
	s.tls.mu.Lock()
	defer s.tls.mu.Unlock()
	return len(s.tls.conns)
}

// stopAccepting stops taking new connections on every listener, for Shutdown: after a handover by
// closing this process's descriptors only, else by refusing connections from then on.
func (s *Server) stopAccepting() {
	if s.handedOver.Load() {
		if err := s.engine.ReleaseListeners(); err != nil {
			s.log.Warn("cannot let go of the listeners", "error", err)
		}
		if ln := s.adminSock; ln != nil {
			_ = ln.Close() // the connections open stay, until the loops have stopped (stopAdmin)
		}
		if t := s.tls; t != nil {
			done := make(chan struct{})
			go func() {
				t.acceptors.Wait() // they end at once: tlsStopAccepting closes their listeners
				close(done)
			}()
			s.tlsAcceptorsDone = done
		}
	} else if err := s.engine.StopAccepting(); err != nil {
		// SPEC 1: stop accepting. New connections are refused from here on (our gnet copy's
		// StopAccepting); those already open finish what they carry.
		s.log.Warn("cannot stop accepting; new connections are closed instead", "error", err)
	}
	s.tlsStopAccepting() // tlsconn.go: closing a listener never takes its socket out of listening
}
