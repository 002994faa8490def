package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// HealthSettings are a group's active health checks ([upstream.health_check]), as validated configuration
// gives them.
type HealthSettings struct {
	Path         string        // request path, starts with "/"
	Interval     time.Duration // between the starts of two rounds of checks
	Timeout      time.Duration // bounds dial, write and the read of the status line of one check
	ExpectStatus int           // the status a passing check answers with
	Rise         int           // passing checks in a row that bring a down server back
	Fall         int           // failing checks in a row that mark a server down
}

// HealthState is a read-only view of a server's health, for status pages and tests.
type HealthState struct {
	Up          bool      // may take requests now
	ActiveDown  bool      // marked down by fall failed checks
	PassiveDown bool      // marked down by max_fails failures within fail_timeout
	Checked     bool      // at least one active check has ended
	LastCheck   string    // "ok", or why the last check failed ("status 500", "connect: refused", "timeout")
	LastCheckAt time.Time // wall time the last check ended
	// While down: "active" or "passive" (active wins when both), why, and since when (wall time).
	DownBy     string
	DownReason string
	DownSince  time.Time
}

type checkResult struct {
	at     time.Time
	reason string // "" when the check passed
}

// Health reports the server's health at now (monotonic nanoseconds, the clock Up takes).
func (s *Server) Health(now int64) HealthState {
	h := HealthState{
		Up:          s.Up(now),
		ActiveDown:  s.activeDown.Load(),
		PassiveDown: now < s.downUntil.Load(),
	}
	switch {
	case h.ActiveDown:
		h.DownBy, h.DownReason = "active", "failed health checks"
		if w := s.activeWhy.Load(); w != nil {
			h.DownReason, h.DownSince = w.reason, w.since
		}
	case h.PassiveDown:
		h.DownBy, h.DownReason = "passive", "max_fails"
		if w := s.passiveWhy.Load(); w != nil {
			h.DownReason, h.DownSince = w.reason, w.since
		}
	}
	if r := s.lastCheck.Load(); r != nil {
		h.Checked, h.LastCheck, h.LastCheckAt = true, r.reason, r.at
		if r.reason == "" {
			h.LastCheck = "ok"
		}
	}
	return h
}

// healthRequest is the whole check request for one server: a GET of path with the server's configured
// name as Host, on a connection closed after the status line.
func healthRequest(path, host string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nConnection: close\r\nUser-Agent: SwitchFlow-health-check\r\nAccept: */*\r\n\r\n")
}

// Checker runs the active health checks of one table's groups: one goroutine per group that has
// HealthSettings, which checks that group's servers (backups included) one after another, starting at
// once and then every Interval. A round in which servers time out may take longer than Interval; the
// ticks it overlaps are skipped, never queued. Each check dials a fresh TCP connection (with a TLS
// handshake for an HTTPS server, which resumes the server's session when it can); the request path
// never waits on a checker, it only reads the atomics the checker writes.
//
// Servers start up; fall failed checks in a row mark one down, rise passing checks in a row bring it back.
// rise passing checks also end a passive down (max_fails) early, as SPEC 3.4 allows either way back.
type Checker struct {
	now    func() int64 // the monotonic clock Server.Up is read with
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// StartChecker starts the checks of every group in groups that has HealthSettings. now is the clock the
// engine passes to Server.Up (passive down is stored in it). Stop ends them.
func StartChecker(groups []*Group, now func() int64, log *slog.Logger) *Checker {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checker{now: now, log: log, cancel: cancel}
	for _, g := range groups {
		if g.Health == nil {
			continue
		}
		c.wg.Add(1)
		go c.run(ctx, g)
	}
	c.wg.Add(1)
	go c.watch(ctx, groups)
	return c
}

// watchEvery is how often the watch looks for passive downs whose fail_timeout has passed.
var watchEvery = 250 * time.Millisecond

// watch logs the end of each passive down: the time fail_timeout ends is no event on any loop (the next
// request simply finds the server up), so a goroutine of the checker notices it, within watchEvery, and
// logs "upstream server up" once (passiveOver's compare-and-swap).
func (c *Checker) watch(ctx context.Context, groups []*Group) {
	defer c.wg.Done()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := c.now()
		for _, g := range groups {
			for _, s := range g.Servers {
				if s.passiveMarked.Load() && now >= s.downUntil.Load() && s.passiveOver() {
					c.log.Info("upstream server up", "upstream", g.Name, "server", s.Name, "by", "passive",
						"reason", "fail_timeout "+time.Duration(s.failTimeout).String()+" passed")
				}
			}
		}
	}
}

// Stop ends the checks and waits for their goroutines: a check in flight is abandoned at once (its
// connection is closed), so Stop returns promptly. Stop on nil or twice is a no-op.
func (c *Checker) Stop() {
	if c == nil {
		return
	}
	c.once.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
}

// serverCheck is a checker's private state for one server.
type serverCheck struct {
	// passiveSeen: the server was passively down at an earlier check of this stretch of passive down, so
	// the passes counted since belong to it.
	passiveSeen bool
}

func (c *Checker) run(ctx context.Context, g *Group) {
	defer c.wg.Done()
	state := make([]serverCheck, len(g.Servers))
	tick := time.NewTicker(g.Health.Interval)
	defer tick.Stop()
	for {
		for i, s := range g.Servers {
			if !c.check(ctx, g, s, &state[i]) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check runs one check of s and records it; false when ctx ended (nothing recorded).
func (c *Checker) check(ctx context.Context, g *Group, s *Server, st *serverCheck) bool {
	reason := probe(ctx, s, g.Health)
	if ctx.Err() != nil {
		return false
	}
	if reason == reasonNoDescriptors {
		return true // SPEC 3.3: the proxy's own lack of descriptors says nothing about s; nothing recorded
	}
	c.record(g, s, st, reason)
	return true
}

// record applies one check's outcome (reason "" = passed) to s and logs a transition.
func (c *Checker) record(g *Group, s *Server, st *serverCheck, reason string) {
	hs := g.Health
	s.lastCheck.Store(&checkResult{at: time.Now(), reason: reason})
	if reason != "" {
		s.hcPasses.Store(0)
		fails := min(s.hcFails.Load()+1, int32(hs.Fall))
		s.hcFails.Store(fails)
		if fails >= int32(hs.Fall) && !s.activeDown.Load() {
			s.activeWhy.Store(&downInfo{reason: fmt.Sprintf("%d failed health checks, the last: %s", fails, reason), since: time.Now()})
			s.activeDown.Store(true)
			c.log.Warn("upstream server down", "upstream", g.Name, "server", s.Name, "by", "active",
				"reason", reason, "failed_checks", fails)
		}
		return
	}
	s.hcFails.Store(0)
	passes := min(s.hcPasses.Load()+1, int32(hs.Rise))
	s.hcPasses.Store(passes)
	if s.activeDown.Load() {
		if passes >= int32(hs.Rise) {
			s.cameUp(c.now()) // before it is up: slow_start's ramp starts with it
			s.activeDown.Store(false)
			s.activeWhy.Store(nil)
			s.MarkUp() // a passive down, if any, ends with it
			st.passiveSeen = false
			c.log.Info("upstream server up", "upstream", g.Name, "server", s.Name, "by", "active",
				"reason", fmt.Sprintf("%d passing health checks", passes))
		}
		return
	}
	if c.now() >= s.downUntil.Load() {
		st.passiveSeen = false
		return
	}
	// Passively down: count the passes from the first check that saw it down.
	if !st.passiveSeen {
		st.passiveSeen = true
		passes = 1
		s.hcPasses.Store(passes)
	}
	if passes >= int32(hs.Rise) {
		s.cameUp(c.now())
		s.MarkUp()
		st.passiveSeen = false
		c.log.Info("upstream server up", "upstream", g.Name, "server", s.Name, "by", "active",
			"reason", fmt.Sprintf("%d passing health checks after max_fails", passes))
	}
}

// reasonNoDescriptors is probe's answer when the check could not open a socket: the proxy is out of file
// descriptors, which is no failure of the server's (check records nothing).
const reasonNoDescriptors = "no file descriptor for the check"

// probe runs one check of s and returns "" when it passed, else why it failed. When ctx ends, probe
// returns at once (the caller then ignores the result).
func probe(ctx context.Context, s *Server, hs *HealthSettings) string {
	ctx, cancel := context.WithTimeout(ctx, hs.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr.String())
	if err != nil {
		if DescriptorShortage(err) {
			return reasonNoDescriptors
		}
		return "connect: " + failReason(ctx, err)
	}
	defer conn.Close()
	// The deadline bounds write and read; closing on ctx's end abandons the check at Stop.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var rw io.ReadWriter = conn
	if s.tls != nil {
		// HTTPS servers are checked over TLS, verified as requests are: a server whose certificate
		// stopped verifying is down for the checks as it is for the requests.
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			if ctx.Err() != nil {
				return "tls: handshake timeout"
			}
			return "tls: " + HandshakeReason(err)
		}
		rw = tc
	}
	if _, err := rw.Write(s.healthReq); err != nil {
		return "write: " + failReason(ctx, err)
	}
	line, err := bufio.NewReaderSize(rw, 256).ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "malformed status line"
		}
		return failReason(ctx, err)
	}
	status, ok := parseStatusLine(line)
	if !ok {
		return "malformed status line"
	}
	if status != hs.ExpectStatus {
		return fmt.Sprintf("status %d", status)
	}
	return ""
}

// failReason names a dial, write or read error briefly for the log.
func failReason(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before a status line"
	}
	return err.Error()
}

// parseStatusLine returns the status code of "HTTP/1.x SSS[ reason]\r\n".
func parseStatusLine(line []byte) (int, bool) {
	if len(line) < 13 || string(line[:7]) != "HTTP/1." || line[8] != ' ' {
		return 0, false
	}
	code := 0
	for _, b := range line[9:12] {
		if b < '0' || b > '9' {
			return 0, false
		}
		code = code*10 + int(b-'0')
	}
	if r := line[12]; r != ' ' && r != '\r' && r != '\n' {
		return 0, false
	}
	return code, code >= 100
}
