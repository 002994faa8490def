package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/admin"
	"switchflow/bufpool"
	"switchflow/cache"
	"switchflow/config"
	"switchflow/upstream"
)

// Server is the proxy: a gnet event handler whose loops carry both the client connections and the backend
// connections that serve them.
type Server struct {
	gnet.BuiltinEventEngine

	cfg   *config.Config // the configuration the listeners were started with
	log   *slog.Logger
	slabs *bufpool.SlabPool
	// largeSlabs lends large_header_buffer slabs to heads that outgrow their slab; nil: none configured.
	largeSlabs *bufpool.SlabPool
	dialer     *upstream.Dialer
	cache      *cache.Store // the micro-cache, shared by the loops; bounded by [cache] max_size
	base       time.Time    // origin of the monotonic nanoseconds every loop uses
	// elapsed, when set (before Serve), replaces the time since base that every deadline, the sweep and
	// the servers' health read: tests move such a clock, so that a timeout fires at the instant it must
	// and not a nanosecond before, without waiting for it. nil: the real clock, with no indirect call.
	elapsed func() time.Duration

	tbl      atomic.Pointer[table]
	loops    sync.Map // gnet.EventLoop -> *loopState
	ticks    uint64   // OnTick calls; only gnet's ticker goroutine touches it
	nloops   int
	draining atomic.Bool
	engine   gnet.Engine
	booted   chan struct{} // OnBoot ran: s.engine is set (the loops are not started yet)
	loopsUp  chan struct{} // the first OnTick ran: every loop runs, every listener is bound
	stopped  chan struct{}

	stopAsked atomic.Bool // Shutdown stopped the loops: any other end of gnet.Rotate is an error
	fds       fdShortage  // running out of descriptors (fds.go)

	reg     statRegistry                   // metrics ids of routes and servers (stats.go)
	reloads reloadStats                    // reloads applied and refused (ops.go)
	alog    *accessLog                     // nil: log.access is off (accesslog.go)
	adminLn atomic.Pointer[admin.Listener] // the [admin] listener while Serve runs

	healthMu sync.Mutex        // orders the table swaps (Reload, the resolver) and the checkers' starts and stops
	checker  *upstream.Checker // active health checks of the live table, under healthMu
	serving  bool              // under healthMu: Serve runs, so the live table's checks run too
	resolver *resolverLoop     // looks up the names upstreams follow while Serve runs (resolve.go); under healthMu

	headerBuffer int
	maxHeaders   int // header lines in a request or response head: the size of each loop's header indexes
	// largeHeaderBuffer bounds a response head (502 beyond): large_header_buffer, at least header_buffer.
	largeHeaderBuffer int
	ioBuffer          int  // half of it queued for a connection holds its pair back (flow.go)
	splice            bool // large response bodies go backend to client by splice(2); SWITCHFLOW_SPLICE=0 turns it off

	tls *tlsTerm // HTTPS termination (tls.go, tlsconn.go); nil without [tls]

	inherited  *Listeners   // listening sockets from the process before (handover.go); nil: open them
	handedOver atomic.Bool  // another process serves the listeners: Shutdown lets go of them (handover.go)
	adminSock  net.Listener // the [admin] socket, under admin.Serve's wrapping; for DupListeners
	// tlsAcceptorsDone is closed once a handover's TLS accept goroutines have ended (handover.go).
	tlsAcceptorsDone chan struct{}
}

// Check reports what New would refuse in a configuration that passed its own checks (config.Load), for
// "switchflow -t": [tls], [upstream.tls], and an access log file that cannot be opened for appending. The file is opened
// as New opens it (created if absent, as nginx -t creates its logs) and closed again.
func Check(cfg *config.Config) error {
	errs := unservable(cfg)
	switch a := cfg.Log.Access; a {
	case "", config.AccessOff, config.AccessStdout, config.AccessStderr:
	default:
		f, err := openAccessFile(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("log.access: %w", err))
		} else {
			_ = f.Close()
		}
	}
	return errors.Join(errs...)
}

// unservable lists what in a checked configuration this build cannot start with: [tls] certificates
// that do not load, [upstream.tls] files that do not load, and header slabs the machine cannot hold. New refuses such a file; Check reports it.
func unservable(cfg *config.Config) []error {
	var errs []error
	errs = append(errs, checkTLS(cfg)...)         // tls.go
	errs = append(errs, checkUpstreamTLS(cfg)...) // upstreamtls.go
	if err := checkSlabMemory(cfg); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// New prepares a Server for cfg: it allocates the header slabs for max_connections clients and builds the
// routing table. Nothing listens until Serve.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if errs := unservable(cfg); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	t, err := newTable(cfg, log, configAnswers(cfg, nil))
	if err != nil {
		return nil, err
	}
	loops := cfg.Server.Loops
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	s := &Server{
		cfg:               cfg,
		log:               log,
		slabs:             bufpool.NewSlabPool(cfg.Server.MaxConnections, cfg.Server.HeaderBuffer),
		largeSlabs:        newLargeSlabs(cfg.Server),
		dialer:            upstream.NewDialer(64+16*loops, 8192),
		cache:             cache.NewStore(cfg.Cache.MaxSize),
		base:              time.Now(),
		nloops:            loops,
		booted:            make(chan struct{}),
		loopsUp:           make(chan struct{}),
		stopped:           make(chan struct{}),
		headerBuffer:      cfg.Server.HeaderBuffer,
		maxHeaders:        cfg.Server.MaxHeaders,
		largeHeaderBuffer: max(cfg.Server.LargeHeaderBuffer, cfg.Server.HeaderBuffer),
		ioBuffer:          cfg.Server.IOBuffer,
		splice:            os.Getenv("SWITCHFLOW_SPLICE") != "0",
	}
	s.dialer.RecvBuffer = socketBufferFor(s.ioBuffer)
	s.tbl.Store(t)
	s.reloads.lastOK.Store(time.Now().UnixNano()) // the file started with is the last one that loaded
	if s.alog, err = newAccessLog(cfg.Log, loops, log); err != nil {
		return nil, err
	}
	if s.tls, err = newTLSTerm(s, cfg); err != nil { // tlsconn.go
		return nil, err
	}
	return s, nil
}

// Loops reports the number of event loops the server runs.
func (s *Server) Loops() int { return s.nloops }

// Serve runs the event loops until Shutdown or Stop; it blocks.
func (s *Server) Serve() error {
	defer close(s.stopped)
	if err := s.startTLS(); err != nil { // tlsconn.go
		return err
	}
	if err := s.startAdmin(); err != nil {
		s.stopTLS() // tlsconn.go
		return err
	}
	s.startHealth()
	listenerFDs := s.listenerFDs() // handover.go
	s.closeUninherited()
	addrs := make([]string, len(s.cfg.Server.Listen))
	for i, a := range s.cfg.Server.Listen {
		addrs[i] = "tcp://" + a
	}
	err := gnet.Rotate(s, addrs,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.nloops),
		gnet.WithReuseAddr(true),
		gnet.WithReusePort(s.cfg.Server.ReusePort),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTicker(true),
		// Each loop keeps one OS thread. Unlocked, the loop goroutine moved between threads at its
		// 4 ms yields (third_party/README.md, patch 1): perf sched showed its work spread over four
		// threads, which then waited on one another for the core (about 3 % of the time, up to 5 ms at
		// once, a stall of every request in flight). Locked, that wait is gone.
		gnet.WithLockOSThread(true),
		gnet.WithLoadBalancing(gnet.LeastConnections),
		gnet.WithReadBufferCap(readBufferFor(s.ioBuffer)),
		gnet.WithLogger(gnetLogger{s.log}),
		gnet.WithListenerFDs(listenerFDs), // our gnet copy (patch 13): sockets inherited on an upgrade
	)
	s.stopHealth()
	s.stopTLS() // tlsconn.go
	s.dialer.Close()
	s.stopAdmin()
	if err != nil && !s.isBooted() {
		return listenError(s.cfg.Server.Listen, err)
	}
	if err == nil && !s.stopAsked.Load() {
		// SPEC 1: only a stop that a signal asked for is a clean end.
		err = errors.New("no shutdown was asked for")
	}
	if err != nil {
		return fmt.Errorf("engine: the event loops stopped: %w", err)
	}
	return nil
}

func (s *Server) isBooted() bool {
	select {
	case <-s.booted:
		return true
	default:
		return false
	}
}

// listenError names the address a failed start could not listen on: gnet's error ("bind: address
// already in use") does not. Each address is tried once more on its own (and let go at once); the
// first that fails is the one named, else all of them are.
func listenError(addrs []string, err error) error {
	for _, a := range addrs {
		ln, lerr := net.Listen("tcp", a)
		if lerr != nil {
			return fmt.Errorf("listen %s: %w", a, err)
		}
		_ = ln.Close()
	}
	return fmt.Errorf("listen %s: %w", strings.Join(addrs, ", "), err)
}

// startHealth starts the active health checks of the live table and the resolver of the names its
// upstreams follow, for Serve.
func (s *Server) startHealth() {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	s.serving = true
	s.checker = upstream.StartChecker(s.tbl.Load().groups, s.monoNow, s.log)
	s.resolver = startResolver(s)
}

// stopHealth stops the checks and the resolver when the loops have stopped (Shutdown or a failed
// start); a later Reload starts none.
func (s *Server) stopHealth() {
	s.healthMu.Lock()
	r := s.resolver
	s.serving = false
	s.resolver = nil
	s.checker.Stop()
	s.checker = nil
	s.healthMu.Unlock()
	r.stopAndWait() // outside the lock: a lookup in flight may be about to swap a table
}

// swapTable makes t the live table: t's servers that the live table has too (same upstream, same
// name) take over their health state, new ones join at now (slow_start ramps them up), and the loops
// move to t at their next callback (loopState.current), where the idle connections to servers t no
// longer has are closed. The one way an upstream's servers change: a reload, and the resolver when a
// name's addresses change. The old table's health checks stop before the state is carried over, and
// t's start after. Under healthMu.
func (s *Server) swapTable(t *table) {
	if s.serving {
		s.checker.Stop() // its last results are written before the state is carried over
	}
	t.adoptHealth(s.tbl.Load(), s.monoNow())
	s.tbl.Store(t)
	if s.serving {
		s.checker = upstream.StartChecker(t.groups, s.monoNow, s.log)
	}
}

// monoNow is the clock of upstream.Server.Up: monotonic nanoseconds since s.base, as the loops' now.
func (s *Server) monoNow() int64 {
	if s.elapsed != nil {
		return int64(s.elapsed())
	}
	return int64(time.Since(s.base))
}

// socketBufferFor is the receive buffer SwitchFlow fixes on backend sockets (the kernel doubles it).
// Left to autotuning it grew to megabytes after one fast transfer, and a slow client later served on
// that pooled connection held 5.8 MB in the backend socket's receive queue alone (ss -tm); fixed at
// 8 × io_buffer it holds about 1 MiB (nginx's held 0.95-1.6 MB, scripts/kernelmem.sh). At 4 × io_buffer
// a 1 MiB response cost 1.44 times the CPU it costs autotuned (the origin sends in smaller windows;
// scripts/compare-builds.sh, big1m, 8 paired rounds); at 8 × it costs the same (0.997, 6 rounds). The
// cost left is throughput where the bandwidth-delay product to a backend is larger than 1 MiB (8 Gbit/s
// at 1 ms of round trip). The client side's send
// buffer is left to autotuning, as nginx leaves it: a client reading nothing held 4.17 MB in it, nginx's
// 4.12 MB (tcp_wmem's cap; scripts/kernelmem.sh, TestSlowReaderSocketQueuesBounded). Fixed as well, it
// made the heap of a tunnel flooded both ways grow about 3 MiB more (TestTunnelBothWaysFloodHeld), for a
// reason not yet found.
func socketBufferFor(ioBuffer int) int { return 8 * ioBuffer }

// readBufferFor sizes each loop's read buffer (one per loop, not per connection) from io_buffer. The
// read that crosses the holding line (half of io_buffer, flow.go) is what a slow side may have queued beyond it, so
// this is also what bounds a connection's queue: about 1.5 × io_buffer. A larger io_buffer therefore
// buys fewer system calls for large bodies with memory: same-machine A/B with 128 KiB reads against
// 64 KiB, post64k -27 % CPU per request, big1m -10 to -15 %, and 100 slow readers 229 against 159 KiB
// of RSS each. Clamped to 16 KiB-1 MiB.
func readBufferFor(ioBuffer int) int {
	return min(max(ioBuffer, 16<<10), 1<<20)
}

// Ready is closed once the listeners accept connections: the event loops run on every listener (gnet's
// OnBoot comes before the loops are started and their listeners bound, which may still fail).
func (s *Server) Ready() <-chan struct{} { return s.loopsUp }

// Reload swaps in a new configuration for new requests: routes, upstreams, per-request settings and the
// cache's bound (a smaller [cache] max_size evicts down to it at once). What RestartOnly names keeps the
// values the server started with; a file whose [tls] certificates do not load is refused, the running
// ones staying.
// The new table's servers are new objects; those that stay (same upstream name, same address as
// configured) take over the old ones' health state (a server that was down stays down), new ones start
// up (swapTable). A name an upstream follows (resolve) that the file's check could not look up keeps
// its last good addresses. Each call counts as a reload applied or refused (/metrics). Safe from any
// goroutine.
func (s *Server) Reload(cfg *config.Config) error {
	certs, err := s.tlsReloadCerts(cfg) // tls.go
	if err != nil {
		s.RefuseReload()
		return err
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	t, err := newTable(cfg, s.log, configAnswers(cfg, s.tbl.Load().answers))
	if err != nil {
		s.RefuseReload()
		return err
	}
	s.swapTable(t)
	s.tlsSwapCerts(certs) // tls.go
	s.cache.Resize(cfg.Cache.MaxSize)
	s.resolver.kick() // names, intervals or [resolver] may have changed
	s.reloadApplied()
	return nil
}

// RestartOnly names the settings in cfg that differ from those the server started with and that a
// reload cannot apply: the listeners, the loops, the memory laid out at start, the pid file, and the
// access log's destination and format. The caller warns about them; the rest of cfg applies on Reload.
func (s *Server) RestartOnly(cfg *config.Config) []string {
	was, now := s.cfg, cfg
	var keys []string
	add := func(key string, changed bool) {
		if changed {
			keys = append(keys, key)
		}
	}
	add("server.listen", !slices.Equal(was.Server.Listen, now.Server.Listen))
	add("server.loops", was.Server.Loops != now.Server.Loops)
	add("server.max_connections", was.Server.MaxConnections != now.Server.MaxConnections)
	add("server.header_buffer", was.Server.HeaderBuffer != now.Server.HeaderBuffer)
	add("server.large_header_buffer", was.Server.LargeHeaderBuffer != now.Server.LargeHeaderBuffer)
	add("server.large_header_buffers", was.Server.LargeHeaderBufs != now.Server.LargeHeaderBufs)
	add("server.max_headers", was.Server.MaxHeaders != now.Server.MaxHeaders)
	add("server.io_buffer", was.Server.IOBuffer != now.Server.IOBuffer)
	add("server.reuse_port", was.Server.ReusePort != now.Server.ReusePort)
	add("server.pid_file", was.Server.PidFile != now.Server.PidFile)
	add("admin.listen", adminListen(was) != adminListen(now))
	add("log.access", was.Log.Access != now.Log.Access)
	add("log.access_format", was.Log.AccessFormat != now.Log.AccessFormat)
	keys = append(keys, tlsRestartOnly(was, now)...) // tls.go
	return keys
}

// Shutdown stops accepting, lets requests in flight finish until ctx ends, then stops the loops; the
// active health checks run through the drain and stop with the loops (Serve). Safe from any goroutine.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	select {
	case <-s.booted:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !s.handedOver.Load() {
		s.stopAccepting() // handover.go; HandOver has done it already
	}
	grace := time.Duration(0)
	if s.handedOver.Load() {
		grace = handoverGrace
	}
	s.eachLoop(func(ls *loopState) { ls.drain(grace) })
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.clientsOpen() > 0 || s.tlsLeft() > 0 {
		select {
		case <-ctx.Done():
			open := s.clientsOpen() // before the loops stop: stopping closes them
			s.stopEngine()
			return fmt.Errorf("engine: %d client connections still open at shutdown_timeout", open)
		case <-tick.C:
		}
	}
	s.stopEngine()
	return nil
}

func (s *Server) stopEngine() {
	s.stopAsked.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.engine.Stop(ctx)
	<-s.stopped
}

func (s *Server) clientsOpen() int64 {
	var n int64
	s.loops.Range(func(_, v any) bool {
		n += v.(*loopState).clientsOpen.Load()
		return true
	})
	return n
}
