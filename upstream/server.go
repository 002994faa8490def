package upstream

import (
	"net"
	"sync/atomic"
	"time"
)

// Server is one backend address of a Group. Its health state is shared by all loops and updated with
// atomics; a rare lost update between two loops only shifts a failure into the next window.
type Server struct {
	Index int // position in Group.Servers
	Addr  *net.TCPAddr
	Name  string // "host:port" as configured, for logs and metrics
	// HostHeader is the Host sent for a request that came without one (HTTP/1.0), as nginx's $proxy_host.
	HostHeader []byte
	Weight     int
	Backup     bool

	maxFails    int32
	failTimeout int64 // nanoseconds

	fails       atomic.Int32
	windowStart atomic.Int64 // monotonic ns when the current failure window opened
	downUntil   atomic.Int64 // monotonic ns; the server is down while now < downUntil
	inFlight    atomic.Int64 // requests in flight, for least_conn and metrics

	// Active health (health.go). Written only by the group's checker goroutine, read by anyone.
	activeDown atomic.Bool                 // fall failed checks in a row; cleared by rise passing ones
	hcFails    atomic.Int32                // consecutive failed checks
	hcPasses   atomic.Int32                // consecutive passing checks
	lastCheck  atomic.Pointer[checkResult] // nil until the first check ends
	healthReq  []byte                      // the check request, built once by NewGroup
}

// Up reports whether the server may take requests at now (monotonic nanoseconds): it is neither passively
// down (max_fails within fail_timeout) nor actively down (fall failed health checks).
func (s *Server) Up(now int64) bool { return now >= s.downUntil.Load() && !s.activeDown.Load() }

// Fail records one failed attempt at now. After maxFails failures within failTimeout the server is down
// for failTimeout, as nginx's max_fails/fail_timeout. maxFails == 0 disables marking.
func (s *Server) Fail(now int64) {
	if s.maxFails <= 0 {
		return
	}
	if ws := s.windowStart.Load(); now-ws > s.failTimeout {
		s.windowStart.Store(now)
		s.fails.Store(0)
	}
	if s.fails.Add(1) >= s.maxFails {
		s.downUntil.Store(now + s.failTimeout)
		s.fails.Store(0)
	}
}

// MarkDown takes the server out until now+d, as max_fails does (passive down).
func (s *Server) MarkDown(now int64, d time.Duration) { s.downUntil.Store(now + int64(d)) }

// MarkUp ends a passive down at once and forgets the failures counted toward one. Active down is the
// checker's own (health.go), which calls MarkUp when a server passes rise checks.
func (s *Server) MarkUp() { s.downUntil.Store(0); s.fails.Store(0) }

// InFlight reports the requests in flight on this server.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Begin and End count a request in flight; End must follow every Begin.
func (s *Server) Begin() { s.inFlight.Add(1) }
func (s *Server) End()   { s.inFlight.Add(-1) }
