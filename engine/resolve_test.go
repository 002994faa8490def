package engine

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"switchflow/config"
	"switchflow/internal/dnstest"
	"switchflow/internal/sockettest"
)

// hostOrigin is an origin on one loopback address of its own (127.0.0.x), all of a test's on one port,
// so that one name with several addresses reaches each of them. It counts its open connections and
// the requests it is serving.
type hostOrigin struct {
	*origin
	ip       string
	accepted atomic.Int64 // connections accepted
	open     atomic.Int64 // connections open now
	inFlight atomic.Int64 // requests being served now
}

// startHostOrigins starts an origin on each of ips, all on one port, which it returns.
func startHostOrigins(t *testing.T, ips ...string) ([]*hostOrigin, int) {
	t.Helper()
	for try := 0; try < 20; try++ {
		var lns []net.Listener
		port := 0
		for _, ip := range ips {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
			if err != nil {
				break
			}
			port = ln.Addr().(*net.TCPAddr).Port
			lns = append(lns, ln)
		}
		if len(lns) < len(ips) {
			for _, ln := range lns {
				_ = ln.Close()
			}
			continue
		}
		var out []*hostOrigin
		for i, ln := range lns {
			o := &hostOrigin{origin: &origin{addr: ln.Addr().String(), name: ips[i], ln: ln}, ip: ips[i]}
			o.srv = &fasthttp.Server{
				DisableHeaderNamesNormalizing: true,
				Handler: func(ctx *fasthttp.RequestCtx) {
					o.inFlight.Add(1)
					defer o.inFlight.Add(-1)
					o.handle(ctx)
				},
				ConnState: func(_ net.Conn, st fasthttp.ConnState) {
					switch st {
					case fasthttp.StateNew:
						o.accepted.Add(1)
						o.open.Add(1)
					case fasthttp.StateClosed, fasthttp.StateHijacked:
						o.open.Add(-1)
					}
				},
			}
			go o.srv.Serve(ln) //nolint:errcheck
			t.Cleanup(func() { _ = o.srv.Shutdown() })
			out = append(out, o)
		}
		return out, port
	}
	t.Fatalf("no port free on every one of %v", ips)
	return nil, 0
}

// dnsConfig is one upstream following app.test through dns, every request routed to it.
func dnsConfig(dns *dnstest.Server, port int, extra string) string {
	return fmt.Sprintf(`
[resolver]
servers = [%q]

[[upstream]]
name = "app"
resolve = "1s"
servers = [ { addr = "app.test:%d" } ]
connect_timeout = "1s"
response_timeout = "5s"
keepalive = 16
%s
[[route]]
path_prefix = "/"
upstream = "app"
`, dns.Addr, port, extra)
}

// liveServers names the servers of the live table's first upstream.
func liveServers(srv *Server) []string {
	var names []string
	for _, s := range srv.tbl.Load().groups[0].Servers {
		names = append(names, s.Name)
	}
	return names
}

// load keeps workers clients sending requests, each on its own keep-alive connection, until stop; it
// counts every answer by origin and every failure.
type load struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	ok     atomic.Int64
	errs   atomic.Int64
	mu     sync.Mutex
	byHost map[string]int
	last   error
}

func startLoad(addr string, workers int, path string) *load {
	l := &load{stop: make(chan struct{}), byHost: map[string]int{}}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get("http://" + addr + path)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					l.errs.Add(1)
					l.mu.Lock()
					l.last = err
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.byHost[resp.Header.Get("X-Origin")]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

func (l *load) hits(host string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byHost[host]
}

// waitWithin polls cond every 10 ms until it holds or within passes, and reports how long it took.
func waitWithin(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// A name going from two addresses to three to one while clients keep sending: traffic follows each
// change within the interval (resolve = "1s", plus the lookup and the loops' next sweep), no request
// fails, a request in flight on an address that goes away finishes, and the idle pooled connections to
// the departed addresses are closed (those to an address that stays are kept:
// TestReloadKeepsIdleConnectionsOfServersThatStay).
func TestResolveFollowsAddressesUnderLoad(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		dns := dnstest.Start(t)
		origins, port := startHostOrigins(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
		a, b, c := origins[0], origins[1], origins[2]
		dns.Set("app.test.", "127.0.0.2", "127.0.0.3")
		addr, srv := startProxy(t, loops, dnsConfig(dns, port, ""))
		want := fmt.Sprintf("app.test:%d (127.0.0.2) app.test:%d (127.0.0.3)", port, port)
		if got := strings.Join(liveServers(srv), " "); got != want {
			t.Fatalf("servers at start: %q, want %q", got, want)
		}

		l := startLoad(addr, 4, "/")
		defer func() {
			if l.stop != nil {
				l.end()
			}
		}()
		waitWithin(t, 5*time.Second, "both addresses served", func() bool { return l.hits("127.0.0.2") > 20 && l.hits("127.0.0.3") > 20 })
		if n := c.hits.Load(); n != 0 {
			t.Fatalf("127.0.0.4 served %d requests before its address appeared", n)
		}

		// Two to three: the new address takes traffic within the interval.
		dns.Set("app.test.", "127.0.0.4", "127.0.0.2", "127.0.0.3")
		took := waitWithin(t, 4*time.Second, "127.0.0.4 joined", func() bool { return c.hits.Load() > 20 })
		t.Logf("loops=%d: a new address served within %v", loops, took)

		// A slow request in flight on each address that is about to go away.
		const maxSlow = 200
		slow := make(chan error, maxSlow)
		var slowWG sync.WaitGroup
		// Round robin under the load's own requests: keep sending until each departing address has one at
		// the same time (a slow request that landed early may have ended before one reached the other).
		for i := 0; i < maxSlow && (b.inFlight.Load() == 0 || c.inFlight.Load() == 0); i++ {
			slowWG.Add(1)
			go func() {
				defer slowWG.Done()
				resp, err := http.Get("http://" + addr + "/slow?ms=1500")
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != 200 || string(body) != "slow" {
						err = fmt.Errorf("slow request: %d %q", resp.StatusCode, body)
					}
				}
				slow <- err
			}()
			time.Sleep(50 * time.Millisecond)
		}
		waitWithin(t, 10*time.Second, "slow requests in flight on the departing addresses",
			func() bool { return b.inFlight.Load() > 0 && c.inFlight.Load() > 0 })

		// Three to one: the departed addresses take no new request once the loops have moved on.
		dns.Set("app.test.", "127.0.0.2")
		took = waitWithin(t, 4*time.Second, "the table holds one server", func() bool { return len(liveServers(srv)) == 1 })
		t.Logf("loops=%d: departed addresses left the table within %v", loops, took)
		slowWG.Wait()
		close(slow)
		for err := range slow {
			if err != nil {
				t.Fatalf("a request in flight on a departing address: %v", err)
			}
		}
		// Drained: every connection to them closed, idle pooled ones included.
		waitWithin(t, 3*time.Second, "connections to the departed addresses closed", func() bool {
			return b.open.Load() == 0 && c.open.Load() == 0
		})
		hb, hc := b.hits.Load(), c.hits.Load()
		before := a.hits.Load()
		waitWithin(t, 5*time.Second, "more requests served", func() bool { return a.hits.Load() > before+200 })
		if b.hits.Load() != hb || c.hits.Load() != hc {
			t.Fatalf("departed addresses still served: 127.0.0.3 %d -> %d, 127.0.0.4 %d -> %d", hb, b.hits.Load(), hc, c.hits.Load())
		}
		l.end()
		l.stop = nil
		if n := l.errs.Load(); n != 0 {
			t.Fatalf("%d requests failed of %d; last: %v", n, n+l.ok.Load(), l.last)
		}
		t.Logf("loops=%d: %d requests, none failed", loops, l.ok.Load())
	})
}

// A lookup that fails, whichever way (SERVFAIL, no answer within the interval, an empty answer), keeps
// the last good addresses, and the streak of failures is logged once; the next good answer applies.
func TestResolveFailureKeepsLastGoodAnswer(t *testing.T) {
	dns := dnstest.Start(t)
	origins, port := startHostOrigins(t, "127.0.0.2", "127.0.0.3")
	dns.Set("app.test.", "127.0.0.2", "127.0.0.3")
	addr, srv, logs, _ := startLoggedProxy(t, slog.LevelInfo, dnsConfig(dns, port, ""))
	const failed = "upstream name lookup failed"
	for _, fail := range []struct {
		name string
		set  func()
	}{
		{"SERVFAIL", func() { dns.SetMode(dnstest.ServFail) }},
		{"no answer", func() { dns.SetMode(dnstest.Drop) }},
		{"empty answer", func() { dns.SetMode(dnstest.Answer); dns.Set("app.test.") }},
	} {
		fail.set()
		q := dns.Queries()
		// Three lookups at least fail (each of A and AAAA asked), and the line is written once.
		waitWithin(t, 10*time.Second, fail.name+": lookups made", func() bool { return dns.Queries() >= q+6 })
		if n := logs.count(failed); n != 1 {
			t.Fatalf("%s: %q logged %d times, want once for the streak", fail.name, failed, n)
		}
		if n := len(liveServers(srv)); n != 2 {
			t.Fatalf("%s: %d servers, want the 2 of the last good answer", fail.name, n)
		}
		seen := spread(t, addr, 20)
		if seen["127.0.0.2"] == 0 || seen["127.0.0.3"] == 0 {
			t.Fatalf("%s: served by %v", fail.name, seen)
		}
	}
	dns.SetMode(dnstest.Answer)
	dns.Set("app.test.", "127.0.0.3")
	waitWithin(t, 4*time.Second, "the good answer applied", func() bool { return len(liveServers(srv)) == 1 })
	if n := logs.count("upstream name resolves again"); n != 1 {
		t.Fatalf("resolves again logged %d times", n)
	}
	if seen := spread(t, addr, 10); seen["127.0.0.3"] != 10 {
		t.Fatalf("served by %v", seen)
	}
	_ = origins
}

// With resolve set, a name that does not resolve at start is no reason not to start: the upstream has
// no servers (503) and takes its addresses as soon as the name has some. Each address is a server of
// its own in /metrics, named by the name and the address.
func TestResolveStartsWithoutAnswer(t *testing.T) {
	dns := dnstest.Start(t)
	_, port := startHostOrigins(t, "127.0.0.2", "127.0.0.3")
	sk := sockettest.NewSet(t)
	adminAddr := sk.AddAdmin()
	cfg, err := config.Parse([]byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 1\n[admin]\nlisten = %q\n", sk.AddListen(), adminAddr) +
		dnsConfig(dns, port, "")))
	if err != nil {
		t.Fatal(err)
	}
	if ws := cfg.Warnings(); len(ws) != 1 || !strings.Contains(ws[0], `host "app.test" does not resolve now`) {
		t.Fatalf("warnings: %q", ws)
	}
	srv, _ := serveEngineWith(t, cfg, testLog(), inherit(sk))
	addr := cfg.Server.Listen[0]
	c, br := dial(t, addr)
	if resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 503 {
		t.Fatalf("no address yet: %d, want 503", resp.StatusCode)
	}
	dns.Set("app.test.", "127.0.0.2", "127.0.0.3")
	waitWithin(t, 4*time.Second, "the name's addresses served", func() bool { return len(liveServers(srv)) == 2 })
	if seen := spread(t, addr, 6); seen["127.0.0.2"] != 3 || seen["127.0.0.3"] != 3 {
		t.Fatalf("served by %v", seen)
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		series := fmt.Sprintf(`switchflow_upstream_requests_total{upstream="app",server="app.test:%d (%s)",code="2xx"}`, port, ip)
		scrapeSettled(t, srv.AdminAddr(), map[string]float64{series: 3})
	}
}

// An address that joins ramps up with slow_start: its share starts small and grows to its weight.
func TestResolveJoinRampsWithSlowStart(t *testing.T) {
	dns := dnstest.Start(t)
	_, port := startHostOrigins(t, "127.0.0.2", "127.0.0.3")
	dns.Set("app.test.", "127.0.0.2")
	addr, srv := startProxy(t, 1, dnsConfig(dns, port, `slow_start = "6s"`))
	if seen := spread(t, addr, 10); seen["127.0.0.2"] != 10 {
		t.Fatalf("served by %v", seen)
	}
	dns.Set("app.test.", "127.0.0.2", "127.0.0.3")
	waitWithin(t, 4*time.Second, "the address joined", func() bool { return len(liveServers(srv)) == 2 })
	joined := time.Now()
	early := spread(t, addr, 200)
	elapsed := time.Since(joined)
	// Round robin with a ramp from 1/20 of the weight: well under half while the ramp is young.
	if share := float64(early["127.0.0.3"]) / 200; elapsed < 2*time.Second && share > 0.3 {
		t.Fatalf("a joining address took %.0f%% within %v of joining, want its slow start", share*100, elapsed)
	}
	time.Sleep(time.Until(joined.Add(6500 * time.Millisecond))) // the ramp's end, not a synchronisation
	late := spread(t, addr, 200)
	if share := float64(late["127.0.0.3"]) / 200; share < 0.4 || share > 0.6 {
		t.Fatalf("after the ramp the joined address takes %.0f%%, want about half (early %v, late %v)", share*100, early, late)
	}
}

// A reload (or a change of addresses) keeps the idle pooled connections to the servers that stay.
func TestReloadKeepsIdleConnectionsOfServersThatStay(t *testing.T) {
	origins, _ := startHostOrigins(t, "127.0.0.2")
	o := origins[0]
	addr, srv := startProxy(t, 1, upstreamConfig("", o.addr))
	spread(t, addr, 3)
	cfg, err := config.Parse([]byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 1\n", addr) + upstreamConfig("", o.addr)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	spread(t, addr, 3)
	if n := o.accepted.Load(); n != 1 {
		t.Fatalf("the origin accepted %d connections: its pooled one did not outlive the reload", n)
	}
}

// A reload whose check cannot look a followed name up keeps the name's last good addresses, as the
// resolver does; one whose check finds other addresses applies them at once.
func TestResolveReloadKeepsLastGoodAnswer(t *testing.T) {
	dns := dnstest.Start(t)
	_, port := startHostOrigins(t, "127.0.0.2", "127.0.0.3")
	dns.Set("app.test.", "127.0.0.2", "127.0.0.3")
	// resolve = "1h": only the reloads look the name up here.
	toml := strings.Replace(dnsConfig(dns, port, ""), `resolve = "1s"`, `resolve = "1h"`, 1)
	addr, srv := startProxy(t, 1, toml)
	reload := func() {
		t.Helper()
		cfg, err := config.Parse([]byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 1\n", addr) + toml))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	dns.SetMode(dnstest.ServFail)
	reload()
	if n := len(liveServers(srv)); n != 2 {
		t.Fatalf("after a reload that could not look the name up: %d servers, want the last good 2", n)
	}
	dns.SetMode(dnstest.Answer)
	dns.Set("app.test.", "127.0.0.3")
	reload()
	if got := liveServers(srv); len(got) != 1 || !strings.HasSuffix(got[0], "(127.0.0.3)") {
		t.Fatalf("after a reload that found one address: %q", got)
	}
	if seen := spread(t, addr, 5); seen["127.0.0.3"] != 5 {
		t.Fatalf("served by %v", seen)
	}
}
