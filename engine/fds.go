package engine

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/admin"
	"switchflow/config"
	"switchflow/upstream"
)

// Running out of file descriptors (SPEC 3.3) never stops the proxy. Accepting pauses: our gnet copy
// stops watching the listeners of a loop whose accept failed for lack of descriptors (or of socket
// memory) and watches them again after a pause that doubles from 10 ms to 1 s while the shortage lasts
// (third_party/README.md, patch 11); the clients that arrive meanwhile wait in the kernel's accept queue,
// and the connections the loops hold are served on. A dial that fails for lack of descriptors is the
// proxy's own failure: its client gets 503 and the server is not marked (dialFailed). The event is
// counted (switchflow_accept_errors_total) and logged at most once a second.

var _ gnet.AcceptErrorHandler = (*Server)(nil)

// fdShortage counts the event for /metrics and the log. Written from any loop, the acceptor and the
// dialer's callbacks: atomics only, nothing that blocks.
type fdShortage struct {
	accepts   atomic.Uint64 // accept pauses since start, for /metrics
	sinceLog  atomic.Uint64 // accept pauses and dials failed since the last log line
	lastLogNs atomic.Int64  // monoNow of the last log line, plus one (0: never)
}

// OnAcceptError is called by gnet (our copy's gnet.AcceptErrorHandler) on the goroutine that accepts,
// when accepting paused for lack of descriptors or memory.
func (s *Server) OnAcceptError(err error) {
	s.fds.accepts.Add(1)
	s.descriptorsShort(err)
}

// descriptorsShort logs the shortage at most once a second, with the events seen since the last line.
func (s *Server) descriptorsShort(err error) {
	s.fds.sinceLog.Add(1)
	now := s.monoNow() + 1
	last := s.fds.lastLogNs.Load()
	if last != 0 && now-last < int64(time.Second) || !s.fds.lastLogNs.CompareAndSwap(last, now) {
		return
	}
	attrs := []any{"error", err, "events", s.fds.sinceLog.Swap(0), "accept_errors_total", s.fds.accepts.Load()}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		attrs = append(attrs, "open_files_limit", rl.Cur)
	}
	s.log.Warn("descriptors running out: accepting pauses, dials fail with 503", attrs...)
}

// dialShortage reports whether a dial failed for lack of descriptors, and if so notes it (dialFailed).
func (s *Server) dialShortage(err error) bool {
	if !upstream.DescriptorShortage(err) {
		return false
	}
	s.descriptorsShort(err)
	return true
}

// DescriptorsNeeded is about how many file descriptors cfg needs at max_connections (SPEC 3.3): two per
// client connection (its own and its backend's), plus the listeners of every loop, each loop's epoll and
// eventfd, the TLS listeners and the handshakes they may run beyond max_connections, the admin listener's
// connections, and a few for logs and the like.
func DescriptorsNeeded(cfg *config.Config) uint64 {
	loops := cfg.Server.Loops
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	n := 2*cfg.Server.MaxConnections + loops*(len(cfg.Server.Listen)+2) + 32
	if cfg.TLS != nil {
		// The TLS listeners, and the sockets in their handshake beyond max_connections (tlsconn.go).
		n += len(cfg.TLS.Listen) + tlsRefusalSlots
	}
	if cfg.Admin != nil {
		n += admin.MaxConns + 1
	}
	return uint64(n)
}
