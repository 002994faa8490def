package upstream

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// Server is one backend address of a Group. Its health state is shared by all loops and updated with
// atomics; a rare lost update between two loops only shifts a failure into the next window.
type Server struct {
	Index    int    // position in Group.Servers
	Upstream string // the group's name, for logs
	Addr     *net.TCPAddr
	Name     string // "host:port" as configured, for logs and metrics
	// HostHeader is the Host sent for a request that came without one (HTTP/1.0), as nginx's $proxy_host.
	HostHeader []byte
	Weight     int
	Backup     bool

	maxFails    int32
	failTimeout int64 // nanoseconds
	log         *slog.Logger
	// passiveReason is why max_fails marks the server down, built once by NewGroup.
	passiveReason string

	seed uint64 // the server's identity on the consistent hash (serverSeed of Name)

	fails       atomic.Int32
	windowStart atomic.Int64 // monotonic ns when the current failure window opened
	downUntil   atomic.Int64 // monotonic ns; the server is down while now < downUntil
	inFlight    atomic.Int64 // requests in flight, for least_conn and metrics
	// upSince is the monotonic ns the server last came up by its health checks or joined the group in a
	// reload; with downUntil (the end of the last passive down) it starts slow_start's ramp (ramp).
	// NewGroup sets it long past: the servers of a fresh start take their full weight at once.
	upSince atomic.Int64

	// passiveMarked: a passive down was logged and its end not yet (Fail sets it, the Checker's watch
	// or MarkUp clears it). It makes each transition log exactly once.
	passiveMarked atomic.Bool
	passiveWhy    atomic.Pointer[downInfo] // why and since when passively down; nil while not
	activeWhy     atomic.Pointer[downInfo] // why and since when actively down; nil while not

	// Active health (health.go). Written only by the group's checker goroutine, read by anyone.
	activeDown atomic.Bool                 // fall failed checks in a row; cleared by rise passing ones
	hcFails    atomic.Int32                // consecutive failed checks
	hcPasses   atomic.Int32                // consecutive passing checks
	lastCheck  atomic.Pointer[checkResult] // nil until the first check ends
	healthReq  []byte                      // the check request, built once by NewGroup

	tls *tls.Config // HTTPS to this server (tls.go); nil: plain HTTP
}

// downInfo is why a server went down and when (wall time), for /status.
type downInfo struct {
	reason string
	since  time.Time
}

// Up reports whether the server may take requests at now (monotonic nanoseconds): it is neither passively
// down (max_fails within fail_timeout) nor actively down (fall failed health checks).
func (s *Server) Up(now int64) bool { return now >= s.downUntil.Load() && !s.activeDown.Load() }

// Fail records one failed attempt at now. After maxFails failures within failTimeout the server is down
// for failTimeout, as nginx's max_fails/fail_timeout. maxFails == 0 disables marking. The first marking
// of a stretch of passive down is logged ("upstream server down", by=passive), once: Fail runs on event
// loops, and the log line is written only at that transition, never per request.
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
		s.passiveDown(s.passiveReason, time.Duration(s.failTimeout))
	}
}

// MarkDown takes the server out until now+d, as max_fails does (passive down).
func (s *Server) MarkDown(now int64, d time.Duration) {
	s.downUntil.Store(now + int64(d))
	s.passiveDown("marked down", d)
}

// passiveDown records and logs the start of a passive down, unless one is already recorded.
func (s *Server) passiveDown(reason string, d time.Duration) {
	if !s.passiveMarked.CompareAndSwap(false, true) {
		return
	}
	s.passiveWhy.Store(&downInfo{reason: reason, since: time.Now()})
	if s.log != nil {
		s.log.Warn("upstream server down", "upstream", s.Upstream, "server", s.Name, "by", "passive",
			"reason", reason, "for", d.String())
	}
}

// passiveOver clears the record of a passive down that has ended; true when there was one to clear (the
// caller logs the "up").
func (s *Server) passiveOver() bool {
	if !s.passiveMarked.CompareAndSwap(true, false) {
		return false
	}
	s.passiveWhy.Store(nil)
	return true
}

// MarkUp ends a passive down at once and forgets the failures counted toward one. Active down is the
// checker's own (health.go), which calls MarkUp when a server passes rise checks.
func (s *Server) MarkUp() {
	s.downUntil.Store(0)
	s.fails.Store(0)
	s.passiveOver()
}

// rampUnit is the scale of a ramped weight: thousandths. rampFloor is where a ramp starts: a server
// that has just come up takes 1/20 of its weight, so that it is tried at all.
const (
	rampUnit  = 1000
	rampFloor = rampUnit / 20
)

// ramp is how far s is into slow_start's ramp at now, as num/den with 0 < num <= den: den/20 at the moment
// it came up (the floor), growing linearly to den at slow after. A server that came up longer than slow
// ago, or that never went down, gives den/den. Two atomic loads; no lock, no allocation.
func (s *Server) ramp(now, slow int64) (num, den int64) {
	start := max(s.upSince.Load(), s.downUntil.Load())
	el := now - start
	if el >= slow {
		return 1, 1
	}
	if el*rampUnit < slow*rampFloor {
		return rampFloor, rampUnit
	}
	return el, slow
}

// cameUp records that s came up (or joined) at now, for slow_start.
func (s *Server) cameUp(now int64) { s.upSince.Store(now) }

// InFlight reports the requests in flight on this server.
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Begin and End count a request in flight; End must follow every Begin.
func (s *Server) Begin() { s.inFlight.Add(1) }
func (s *Server) End()   { s.inFlight.Add(-1) }

// adopt takes over old's health state: a server that a reload keeps (same upstream, same address as
// configured) stays down, or keeps counting toward max_fails, across the reload. The requests in flight
// stay counted on old (their End goes there).
func (s *Server) adopt(old *Server) {
	s.fails.Store(old.fails.Load())
	s.windowStart.Store(old.windowStart.Load())
	s.downUntil.Store(old.downUntil.Load())
	s.upSince.Store(old.upSince.Load())
	s.passiveWhy.Store(old.passiveWhy.Load())
	s.passiveMarked.Store(old.passiveMarked.Load())
	s.activeDown.Store(old.activeDown.Load())
	s.activeWhy.Store(old.activeWhy.Load())
	s.hcFails.Store(old.hcFails.Load())
	s.hcPasses.Store(old.hcPasses.Load())
	s.lastCheck.Store(old.lastCheck.Load())
}
