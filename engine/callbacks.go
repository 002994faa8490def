// The gnet event handler: each callback hands its connection to the loop's state machines and ends
// with settle.

package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/upstream"
)

// The optional interfaces of our gnet patches that Server implements: a missing method would leave a
// feature silently off.
var (
	_ gnet.EventHandler  = (*Server)(nil)
	_ gnet.DrainHandler  = (*Server)(nil)
	_ gnet.SpliceHandler = (*Server)(nil)
)

// tickInterval is the resolution of every timeout the engine enforces and of the Date header refresh.
const tickInterval = 100 * time.Millisecond

// quietTicks is how many ticks apart a quiet loop (no client, nothing in flight) is swept: it has no
// timeout to enforce, and waking every loop ten times a second cost an idle proxy with 16 loops about 3 %
// of a core (the loops' wake-ups, and the Go scheduler's sysmon polling after each). A client arriving
// makes the loop busy again at once (clientOpened).
const quietTicks = 10

// OnBoot records the engine so Shutdown can stop it.
func (s *Server) OnBoot(e gnet.Engine) gnet.Action {
	s.engine = e
	close(s.booted)
	return gnet.None
}

// OnOpen starts a client connection, or completes a backend dial.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	switch x := c.Context().(type) {
	case *backendConn:
		x.ls.backendOpened(x, c)
		x.ls.settle()
		return nil, gnet.None
	case *upstream.Secured:
		be := x.Ctx.(*backendConn)
		be.ls.secureOpened(be, x.Rec, c) // upstreamtls.go
		be.ls.settle()
		return nil, gnet.None
	}
	ls := s.loopFor(c)
	out, a := ls.clientOpened(c)
	ls.settle()
	return out, a
}

// OnSpliced ends a body that gnet spliced from a backend to its client (gnet.SpliceHandler).
func (s *Server) OnSpliced(c gnet.Conn) {
	if be, ok := c.Context().(*backendConn); ok {
		be.ls.spliced(be)
		be.ls.settle()
	}
}

// OnTraffic hands bytes to the connection's state machine.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	switch x := c.Context().(type) {
	case *clientConn:
		a := x.ls.clientTraffic(x)
		x.ls.settle()
		return a
	case *backendConn:
		a := x.ls.backendTraffic(x)
		if x.state == bsActive && x.headDone && !x.splicing && !x.held && x.client != nil {
			x.ls.armBackend(x) // the body goes on: time the backend's silence until its next bytes
		}
		x.ls.settle()
		return a
	}
	return gnet.Close
}

// OnDrained runs when gnet has written the last byte queued for c (our gnet patch): what was held back
// for c's sake is read again (flow.go).
func (s *Server) OnDrained(c gnet.Conn) {
	switch x := c.Context().(type) {
	case *clientConn:
		x.ls.clientDrained(x)
		x.ls.settle()
	case *backendConn:
		x.ls.backendDrained(x)
		x.ls.settle()
	}
}

// OnClose releases what the connection held.
func (s *Server) OnClose(c gnet.Conn, err error) gnet.Action {
	switch x := c.Context().(type) {
	case *clientConn:
		x.ls.clientGone(x)
		x.ls.settle()
		if x.tls != nil {
			x.tls.release() // tls.go
		}
	case *backendConn:
		x.ls.backendClosed(x, err)
		x.ls.settle()
	case *tlsClient: // closed in OnOpen (a 503, a drain) before it became a client
		x.release()
	}
	return gnet.None
}

// OnTick runs on gnet's ticker goroutine, not on a loop: it only schedules each loop's sweep there,
// every tick for a busy loop and every quietTicks ticks for a quiet one.
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	s.tlsLoopsRunning() // tlsconn.go
	if s.ticks == 0 {
		close(s.loopsUp) // the ticker starts once every loop runs on its bound listeners
	}
	s.ticks++
	all := s.ticks%quietTicks == 0
	s.loops.Range(func(_, v any) bool {
		ls := v.(*loopState)
		if all || !ls.quiet.Load() {
			_ = ls.loop.Execute(context.Background(), ls.sweepRunnable)
		}
		return true
	})
	return tickInterval, gnet.None
}

// eachLoop runs fn on every loop that has seen a connection, on that loop's goroutine.
func (s *Server) eachLoop(fn func(*loopState)) {
	s.loops.Range(func(_, v any) bool {
		ls := v.(*loopState)
		_ = ls.loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			fn(ls)
			ls.settle()
			return nil
		}))
		return true
	})
}

// loopFor returns the state of the loop c belongs to, creating it on the loop's first connection.
func (s *Server) loopFor(c gnet.Conn) *loopState {
	el := c.EventLoop()
	if v, ok := s.loops.Load(el); ok {
		return v.(*loopState)
	}
	ls := newLoopState(s, el)
	v, _ := s.loops.LoadOrStore(el, ls)
	return v.(*loopState)
}

// gnetLogger routes gnet's own log lines into slog.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) {}

func (g gnetLogger) Infof(format string, args ...any) { g.l.Info(fmt.Sprintf(format, args...)) }

// Warnf logs at warn level, but for gnet's "stale connection" line, which is debug: gnet reports an event
// that an epoll batch still held for a descriptor an earlier event of the same batch closed (a backend
// and its client hung up together, as when a backend restarts), and drops it. Nothing is lost; at warn it
// would fill the log at every backend restart.
func (g gnetLogger) Warnf(format string, args ...any) {
	if strings.Contains(format, "of a stale connection") {
		g.l.Debug(fmt.Sprintf(format, args...))
		return
	}
	g.l.Warn(fmt.Sprintf(format, args...))
}

func (g gnetLogger) Errorf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }

func (g gnetLogger) Fatalf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
