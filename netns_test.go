package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Several hosts: every host is a network namespace of its own, made by the test (ip netns, veth pairs
// on a bridge, as root). Two SwitchFlow processes (lb1, lb2) and three origins (h1-h3), each on its own
// address of one LAN; the test, in the namespace it was started in, sends requests to both proxies. A
// host is cut off by setting its link down, as a host that dies or falls off the network: its packets
// are dropped, nothing is refused or reset.

// netnsOriginEnv makes the test binary an origin (TestNetnsOriginHelper): "ADDR NAME".
const netnsOriginEnv = "SWITCHFLOW_NETNS_ORIGIN"

// TestNetnsOriginHelper is no test: started with netnsOriginEnv set (inside a namespace, by
// startNetnsOrigin), it serves on ADDR until killed, answering every request with NAME (body and
// X-Origin), /healthz included.
func TestNetnsOriginHelper(t *testing.T) {
	spec := os.Getenv(netnsOriginEnv)
	if spec == "" {
		t.Skip("a helper process for TestSeveralHosts, not a test")
	}
	addr, name, _ := strings.Cut(spec, " ")
	err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Origin", name)
		_, _ = io.WriteString(w, name)
	}))
	t.Fatal(err)
}

// lab is a set of namespaces on one bridge, torn down when the test ends, whatever way it ends.
type lab struct {
	t      *testing.T
	id     string // unique per run: names of namespaces and links
	subnet string // "198.18.N": the LAN's /24 (RFC 2544's benchmarking range)
	hosts  map[string]string
}

func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ns names host's namespace.
func (l *lab) ns(host string) string { return l.id + "-" + host }

// newLab makes the bridge's namespace and the test's own link to it, or skips the test where network
// namespaces cannot be made here (not root, no ip(8), no netns support).
func newLab(t *testing.T) *lab {
	t.Helper()
	if testing.Short() {
		t.Skip("several hosts: builds the binary and makes network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("several hosts: making network namespaces needs root (run the tests as root to include it)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("several hosts: ip(8) (iproute2) is not installed")
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	l := &lab{t: t, id: "sf" + hex.EncodeToString(rnd[:2]), subnet: fmt.Sprintf("198.18.%d", rnd[2]), hosts: map[string]string{}}
	if out, err := exec.Command("ip", "netns", "add", l.ns("sw")).CombinedOutput(); err != nil {
		t.Skipf("several hosts: cannot make a network namespace here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(l.teardown)
	l.ip("-n", l.ns("sw"), "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.ns("sw"), "link", "set", "br0", "up")
	// The test's own place on the LAN: a link from the namespace it runs in.
	l.ip("link", "add", l.id+"t", "type", "veth", "peer", "name", l.id+"tb")
	l.ip("link", "set", l.id+"tb", "netns", l.ns("sw"))
	l.ip("-n", l.ns("sw"), "link", "set", l.id+"tb", "master", "br0", "up")
	l.ip("addr", "add", l.subnet+".1/24", "dev", l.id+"t")
	l.ip("link", "set", l.id+"t", "up")
	return l
}

// host makes a namespace for name with address subnet.last on the LAN, its link named eth0.
func (l *lab) host(name string, last int) string {
	l.t.Helper()
	ns := l.ns(name)
	l.ip("netns", "add", ns)
	a, b := l.id+name, l.id+name+"b"
	l.ip("link", "add", a, "type", "veth", "peer", "name", b)
	l.ip("link", "set", b, "netns", l.ns("sw"))
	l.ip("-n", l.ns("sw"), "link", "set", b, "master", "br0", "up")
	l.ip("link", "set", a, "netns", ns)
	l.ip("-n", ns, "link", "set", a, "name", "eth0")
	addr := fmt.Sprintf("%s.%d", l.subnet, last)
	l.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	l.ip("-n", ns, "link", "set", "lo", "up")
	l.hosts[name] = addr
	return addr
}

// link sets host's link up or down.
func (l *lab) link(host string, up bool) {
	l.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	l.ip("-n", l.ns(host), "link", "set", "eth0", state)
}

// start runs argv inside host's namespace until the test ends; its output goes to out.
func (l *lab) start(host string, out io.Writer, env []string, argv ...string) {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(host)}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	// ip netns exec execs argv: the process is the one started, and ends with its kill.
	l.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// teardown deletes every namespace of the lab; their links go with them.
func (l *lab) teardown() {
	for name := range l.hosts {
		_ = exec.Command("ip", "netns", "del", l.ns(name)).Run()
	}
	_ = exec.Command("ip", "link", "del", l.id+"t").Run()
	_ = exec.Command("ip", "netns", "del", l.ns("sw")).Run()
}

// hostStatus is the part of a proxy's /status this test reads.
type hostStatus struct {
	Upstreams []struct {
		Servers []struct {
			Name   string `json:"name"`
			State  string `json:"state"`
			DownBy string `json:"down_by"`
		} `json:"servers"`
	} `json:"upstreams"`
}

// serverState is the state ("up", "down") and who marked it down that the proxy at admin reports for
// server name.
func serverState(admin, name string) (state, by string) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + admin + "/status")
	if err != nil {
		return "", err.Error()
	}
	defer resp.Body.Close()
	var st hostStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", err.Error()
	}
	for _, u := range st.Upstreams {
		for _, s := range u.Servers {
			if s.Name == name {
				return s.State, s.DownBy
			}
		}
	}
	return "", "no server " + name
}

// TestSeveralHosts: two proxies on hosts of their own in front of three origin hosts. One origin host
// is cut off under load: each proxy marks it down, the requests that would have gone to it go to the
// others within the retry budget (a connection to it times out and the next server is tried), and
// only a request already sent to it when it fell off may fail (504 after response_timeout: it may have
// been served, so it is not sent again). When its link returns it comes back, with slow start.
func TestSeveralHosts(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchflow")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	origins := []string{"h1", "h2", "h3"}
	var servers []string
	for i, h := range origins {
		addr := l.host(h, 11+i) + ":8000"
		servers = append(servers, fmt.Sprintf("{ addr = %q }", addr))
		l.start(h, io.Discard, []string{netnsOriginEnv + "=" + addr + " " + h}, self, "-test.run=^TestNetnsOriginHelper$")
	}
	cfg := filepath.Join(dir, "sf.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[server]
listen = "0.0.0.0:8080"
loops = 1
max_connections = 1000

[admin]
listen = "0.0.0.0:9090"

[[upstream]]
name = "app"
servers = [ %s ]
connect_timeout = "300ms"
response_timeout = "2s"
retries = 2
max_fails = 1
fail_timeout = "2s"
slow_start = "4s"

[upstream.health_check]
path = "/healthz"
interval = "200ms"
timeout = "150ms"
rise = 2
fall = 2

[[route]]
upstream = "app"
`, strings.Join(servers, ", "))), 0o644); err != nil {
		t.Fatal(err)
	}
	var proxies []string
	var logs [2]lockedBuffer
	for i, h := range []string{"lb1", "lb2"} {
		proxies = append(proxies, l.host(h, 2+i))
		l.start(h, &logs[i], nil, bin, "-config", cfg)
	}
	for _, p := range proxies {
		waitListening(t, p+":8080")
	}
	h2 := l.hosts["h2"] + ":8000"

	// Load: four clients on each proxy, keep-alive, counting answers by origin and every failure.
	var (
		mu     sync.Mutex
		byHost = map[string]int{}
		fails  []string
		stop   atomic.Bool
		wg     sync.WaitGroup
		served atomic.Int64
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			url := "http://" + proxies[i%2] + ":8080/"
			for !stop.Load() {
				start := time.Now()
				resp, err := c.Get(url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d after %v", resp.StatusCode, time.Since(start).Round(time.Millisecond))
					}
				}
				mu.Lock()
				if err != nil {
					fails = append(fails, err.Error())
				} else {
					byHost[resp.Header.Get("X-Origin")]++
				}
				mu.Unlock()
				served.Add(1)
			}
		}()
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	share := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := byHost
		byHost = map[string]int{}
		return out
	}
	waitFor := func(within time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within %v: %s\nlb1:\n%s\nlb2:\n%s", within, what, logs[0].String(), logs[1].String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(10*time.Second, "every origin served", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return byHost["h1"] > 50 && byHost["h2"] > 50 && byHost["h3"] > 50
	})

	// h2 falls off the network.
	l.link("h2", false)
	cut := time.Now()
	share()
	for _, p := range proxies {
		waitFor(5*time.Second, "h2 marked down by "+p, func() bool { s, _ := serverState(p+":9090", h2); return s == "down" })
	}
	t.Logf("h2 marked down by both proxies within %v", time.Since(cut).Round(time.Millisecond))
	mu.Lock()
	failedAtCut := len(fails)
	mu.Unlock()
	before := served.Load()
	waitFor(10*time.Second, "requests served while h2 is cut off", func() bool { return served.Load() > before+500 })
	during := share()
	mu.Lock()
	failedAfter := len(fails) - failedAtCut
	failed := append([]string(nil), fails...)
	mu.Unlock()
	if during["h2"] != 0 || during["h1"] == 0 || during["h3"] == 0 {
		t.Fatalf("while h2 is down: served by %v", during)
	}
	if failedAfter != 0 {
		t.Fatalf("%d requests failed once h2 was marked down: %q", failedAfter, failed[failedAtCut:])
	}
	// At most one request per client can have been on the wire to h2 when it fell off.
	if len(failed) > 8 {
		t.Fatalf("%d requests failed around the cut, more than the 8 clients could have had in flight: %q", len(failed), failed)
	}
	for _, f := range failed {
		if !strings.HasPrefix(f, "status 504") {
			t.Fatalf("a request around the cut failed otherwise than a response timeout on a request already sent: %q", failed)
		}
	}
	t.Logf("cut: %d requests failed (in flight to h2 when it fell off: %q)", len(failed), failed)

	// h2's link returns: its health checks bring it back, and slow start ramps its share up.
	l.link("h2", true)
	for _, p := range proxies {
		waitFor(5*time.Second, "h2 back up on "+p, func() bool { s, _ := serverState(p+":9090", h2); return s == "up" })
	}
	back := time.Now()
	share()
	before = served.Load()
	waitFor(5*time.Second, "requests after h2's return", func() bool { return served.Load() > before+300 })
	early := share()
	earlyTook := time.Since(back)
	time.Sleep(time.Until(back.Add(4500 * time.Millisecond))) // past slow_start: a ramp of time, not a synchronisation
	share()
	before = served.Load()
	waitFor(5*time.Second, "requests after the ramp", func() bool { return served.Load() > before+600 })
	late := share()
	frac := func(m map[string]int) float64 { return float64(m["h2"]) / float64(m["h1"]+m["h2"]+m["h3"]) }
	t.Logf("h2's share: %.1f%% in the first %v after it came back, %.1f%% after slow_start", 100*frac(early), earlyTook.Round(time.Millisecond), 100*frac(late))
	if earlyTook < 2*time.Second && frac(early) > 0.2 {
		t.Fatalf("h2 took %.0f%% of the requests in the first %v back, want a slow start (%v)", 100*frac(early), earlyTook, early)
	}
	if f := frac(late); f < 0.2 || f > 0.47 {
		t.Fatalf("after slow_start h2 takes %.0f%%, want about a third (%v)", 100*f, late)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(fails) != len(failed) {
		t.Fatalf("requests failed after h2 came back: %q", fails[len(failed):])
	}
}
