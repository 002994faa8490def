package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"switchflow/config"
	"switchflow/internal/sockettest"
	"switchflow/upstream"
)

// checkedOrigin is an origin whose /healthz answers with a status the test sets; other paths are served
// (and counted) by origin.handle.
type checkedOrigin struct {
	*origin
	health atomic.Int32 // status of /healthz
	checks atomic.Int64 // /healthz requests seen
}

func startCheckedOrigin(t *testing.T, name string) *checkedOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &checkedOrigin{origin: &origin{addr: ln.Addr().String(), name: name, ln: ln}}
	o.health.Store(200)
	o.srv = &fasthttp.Server{DisableHeaderNamesNormalizing: true, Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/healthz" {
			o.checks.Add(1)
			ctx.SetStatusCode(int(o.health.Load()))
			return
		}
		o.handle(ctx)
	}}
	go o.srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = o.srv.Shutdown() })
	return o
}

// healthConfig is one upstream of the origins with health checks every 50 ms, every path routed to it.
func healthConfig(origins ...*checkedOrigin) string {
	servers := ""
	for i, o := range origins {
		if i > 0 {
			servers += ", "
		}
		servers += fmt.Sprintf("{ addr = %q }", o.addr)
	}
	return fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ %s ]
connect_timeout = "1s"
response_timeout = "2s"

[upstream.health_check]
path = "/healthz"
interval = "50ms"
timeout = "50ms"
rise = 2
fall = 3

[[route]]
path_prefix = "/"
upstream = "app"
`, servers)
}

// serverHealth reads the live table's view of server i of the first upstream.
func serverHealth(srv *Server, i int) upstream.HealthState {
	return srv.tbl.Load().groups[0].Servers[i].Health(srv.monoNow())
}

func waitHealth(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spread sends n requests on one keep-alive connection and counts the answers by origin.
func spread(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	c, br := dial(t, addr)
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		resp, body := roundTrip(t, c, br, "GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n")
		if resp.StatusCode != 200 || string(body) != "Hello, World!" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		seen[resp.Header.Get("X-Origin")]++
	}
	return seen
}

// TestHealthCheckSteersTraffic: a server whose /healthz fails is taken out of rotation by the active
// checks alone (no request ever failed on it), and comes back when it passes again.
func TestHealthCheckSteersTraffic(t *testing.T) {
	a := startCheckedOrigin(t, "a")
	b := startCheckedOrigin(t, "b")
	addr, srv := startProxy(t, 1, healthConfig(a, b))

	waitHealth(t, "first checks", func() bool { return a.checks.Load() > 0 && b.checks.Load() > 0 })
	if got := spread(t, addr, 20); got["a"] != 10 || got["b"] != 10 {
		t.Fatalf("both healthy: %v, want 10 each", got)
	}

	b.health.Store(500)
	waitHealth(t, "b down", func() bool { return serverHealth(srv, 1).ActiveDown })
	if h := serverHealth(srv, 1); h.Up || h.LastCheck != "status 500" || h.PassiveDown {
		t.Fatalf("b after failing checks: %+v", h)
	}
	bHits := b.hits.Load()
	if got := spread(t, addr, 20); got["a"] != 20 {
		t.Fatalf("b failing its checks: %v, want all 20 on a", got)
	}
	if n := b.hits.Load(); n != bHits {
		t.Fatalf("b got %d requests while down", n-bHits)
	}

	b.health.Store(200)
	waitHealth(t, "b up", func() bool { return serverHealth(srv, 1).Up })
	if got := spread(t, addr, 20); got["a"] != 10 || got["b"] != 10 {
		t.Fatalf("b healthy again: %v, want 10 each", got)
	}
}

// TestHealthChecksFollowReloadAndShutdown: a reload stops the old table's checks and starts the new
// one's, which carry on from the state the old ones left (a server down stays down until rise passing
// checks); Shutdown stops them all.
func TestHealthChecksFollowReloadAndShutdown(t *testing.T) {
	a := startCheckedOrigin(t, "a")
	b := startCheckedOrigin(t, "b")
	b.health.Store(500)
	sk := sockettest.NewSet(t)
	full := fmt.Sprintf("[server]\nlisten = %q\nloops = 1\n", sk.AddListen()) + healthConfig(a, b)
	cfg, err := config.Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if a.checks.Load() != 0 {
		t.Fatal("New ran checks before Serve")
	}
	inherit(sk)(srv)
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	<-srv.Ready()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Shutdown(context.Background())
			<-done
		}
	})

	waitHealth(t, "b down", func() bool { return serverHealth(srv, 1).ActiveDown })
	old := srv.tbl.Load().groups[0].Servers[1]

	cfg2, err := config.Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	if h := serverHealth(srv, 1); h.Up || !h.ActiveDown || h.DownBy != "active" {
		t.Fatalf("b right after reload: %+v, want it still down", h)
	}
	oldAt := old.Health(srv.monoNow()).LastCheckAt
	b.health.Store(200)
	waitHealth(t, "b up in the new table", func() bool { return serverHealth(srv, 1).Up })
	if at := old.Health(srv.monoNow()).LastCheckAt; !at.Equal(oldAt) {
		t.Fatal("the old table's checks went on after the reload")
	}

	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	stopped = true
	n := a.checks.Load() + b.checks.Load()
	time.Sleep(200 * time.Millisecond)
	if m := a.checks.Load() + b.checks.Load(); m != n {
		t.Fatalf("%d checks after Shutdown", m-n)
	}
	// A reload after the loops stopped starts no checks.
	cfg3, err := config.Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if m := a.checks.Load() + b.checks.Load(); m != n {
		t.Fatalf("%d checks after a reload of a stopped server", m-n)
	}
}
