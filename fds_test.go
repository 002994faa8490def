package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchflow/internal/sockettest"
)

// SPEC 3.3: running out of file descriptors never stops the proxy. These tests run the binary under a
// small open-file limit (sh's ulimit -n, which lowers the hard limit too, so the proxy cannot raise it).

// buildBinary builds the proxy into a fresh directory and returns its path and the directory.
func buildBinary(t *testing.T) (string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchflow")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin, dir
}

// proc is the proxy binary running under a lowered open-file limit.
type proc struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error // the result of Wait, once it exited
}

func startLimited(t *testing.T, bin, cfgPath string, nofile int, sk *sockettest.Set) *proc {
	t.Helper()
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), bin, "-config", cfgPath)
	p := &proc{cmd: cmd, logs: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.logs
	var err error
	if sk != nil {
		err = sk.Start(cmd) // returns once it serves sk's sockets
	} else {
		err = cmd.Start() // a start meant to fail: nothing to wait for
	}
	if cmd.Process == nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, p.logs.String())
	}
	return p
}

// alive fails the test if the proxy has exited.
func (p *proc) alive(t *testing.T, when string) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s: the proxy exited (%v):\n%s", when, err, p.logs.String())
	default:
	}
}

// stop sends SIGTERM and wants exit status 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.alive(t, "before SIGTERM")
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0\n%s", err, p.logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// openFiles counts the proxy's open descriptors.
func (p *proc) openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("open descriptors of the proxy: %v", err)
	}
	return len(ents)
}

// poll retries cond every 20 ms until it holds or d passes.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// getOn sends a keep-alive GET on c and returns the status, or 0 and the error.
func getOn(c net.Conn, br *bufio.Reader) (int, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// getNew makes a GET on a fresh connection.
func getNew(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return getOn(c, bufio.NewReader(c))
}

// dialMany opens n connections to addr; those the proxy does not accept wait in the kernel's queue.
func dialMany(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i, n, err)
		}
		cs = append(cs, c)
	}
	return cs
}

// metric reads one sample from the admin listener's /metrics; -1 when it cannot.
func metric(adminAddr, sample string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

const fdLine = "descriptors running out"

// TestOutOfDescriptorsKeepsServing: with 256 descriptors and max_connections = 1000, a flood of 400
// connections runs the proxy out of descriptors. It stays up, serves the keep-alive connections it holds,
// logs the event at most once a second, counts it in /metrics, and accepts again once the flood closes;
// SIGTERM still ends it with status 0. With SO_REUSEPORT (each loop accepts) and without (gnet's acceptor).
func TestOutOfDescriptorsKeepsServing(t *testing.T) {
	bin, dir := buildBinary(t)
	origin := testOrigin(t, "a")
	for _, reusePort := range []bool{true, false} {
		t.Run(fmt.Sprintf("reuse_port=%v", reusePort), func(t *testing.T) {
			sk := sockettest.NewSet(t)
			addr, adminAddr := sk.AddListen(), sk.AddAdmin()
			cfgPath := filepath.Join(dir, fmt.Sprintf("fds-%v.toml", reusePort))
			os.WriteFile(cfgPath, []byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 2\nmax_connections = 1000\nreuse_port = %v\n"+
				"[admin]\nlisten = %q\n[[upstream]]\nname = \"o\"\nservers = [ { addr = %q } ]\n[[route]]\nupstream = \"o\"\n",
				addr, reusePort, adminAddr, origin)), 0o644)
			// -t warns that 256 descriptors cannot hold max_connections = 1000, and still passes the file.
			check := exec.Command("sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, bin, "-t", "-config", cfgPath)
			var out, errb strings.Builder
			check.Stdout, check.Stderr = &out, &errb
			if err := check.Run(); err != nil || !strings.HasPrefix(out.String(), "configuration ok\n") ||
				!strings.Contains(errb.String(), "warning: the open-file limit (256)") {
				t.Errorf("-t under 256 descriptors: %v, stdout %q, stderr %q; want exit 0, ok and a warning", err, out.String(), errb.String())
			}

			p := startLimited(t, bin, cfgPath, 256, sk)
			if !strings.Contains(p.logs.String(), "open-file limit (256)") {
				t.Errorf("no warning at start that 256 descriptors cannot hold max_connections = 1000:\n%s", p.logs.String())
			}

			held := dialMany(t, addr, 20)
			readers := make([]*bufio.Reader, len(held))
			for i, c := range held {
				readers[i] = bufio.NewReader(c)
				if code, err := getOn(c, readers[i]); code != 200 {
					t.Fatalf("held connection %d before the flood: %d %v", i, code, err)
				}
			}

			flood := dialMany(t, addr, 400)
			if !poll(10*time.Second, func() bool { return strings.Contains(p.logs.String(), fdLine) }) {
				t.Fatalf("the log never said %q:\n%s", fdLine, p.logs.String())
			}
			p.alive(t, "out of descriptors")
			// The connections it holds are served (their backend connections wait in the keep-alive pools).
			for i, c := range held {
				if code, err := getOn(c, readers[i]); code != 200 {
					t.Fatalf("held connection %d while out of descriptors: %d %v\n%s", i, code, err, p.logs.String())
				}
			}
			// At most once a second, while accepting keeps failing.
			before := strings.Count(p.logs.String(), fdLine)
			time.Sleep(2 * time.Second) // the window measured, not a synchronisation
			if n := strings.Count(p.logs.String(), fdLine) - before; n > 3 {
				t.Errorf("%d lines %q in 2 s, want at most one a second", n, fdLine)
			}
			p.alive(t, "2 s out of descriptors")

			for _, c := range flood {
				c.Close()
			}
			if !poll(10*time.Second, func() bool { code, _ := getNew(addr); return code == 200 }) {
				t.Fatalf("no new connection served after the flood closed:\n%s", p.logs.String())
			}
			if n := metric(adminAddr, "switchflow_accept_errors_total"); n < 1 {
				t.Errorf("switchflow_accept_errors_total = %v, want > 0", n)
			}
			p.stop(t)
		})
	}
}

// TestAdminFloodLeavesProxyDescriptors: 300 idle connections to the admin listener under a limit of 256
// take at most its cap of descriptors; the proxy still accepts and serves, and stays up.
func TestAdminFloodLeavesProxyDescriptors(t *testing.T) {
	bin, dir := buildBinary(t)
	origin := testOrigin(t, "a")
	sk := sockettest.NewSet(t)
	addr, adminAddr := sk.AddListen(), sk.AddAdmin()
	cfgPath := filepath.Join(dir, "admin.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 2\nmax_connections = 100\n"+
		"[admin]\nlisten = %q\n[[upstream]]\nname = \"o\"\nservers = [ { addr = %q } ]\n[[route]]\nupstream = \"o\"\n",
		addr, adminAddr, origin)), 0o644)
	p := startLimited(t, bin, cfgPath, 256, sk)
	base := p.openFiles(t)

	dialMany(t, adminAddr, 300)
	const capAdmin = 64 // admin.MaxConns
	// A few descriptors of the proxy's own may come and go: hence the slack.
	if !poll(10*time.Second, func() bool { return p.openFiles(t) >= base+capAdmin-4 }) {
		t.Fatalf("the admin listener never took its %d connections: %d descriptors open, %d before", capAdmin, p.openFiles(t), base)
	}
	for i := 0; i < 3; i++ {
		if code, err := getNew(addr); code != 200 {
			t.Fatalf("request %d to the proxy during the admin flood: %d %v\n%s", i, code, err, p.logs.String())
		}
	}
	// The admin listener keeps to its cap (a few descriptors of the proxy's own may come and go).
	if n := p.openFiles(t); n > base+capAdmin+8 {
		t.Errorf("%d descriptors open during the admin flood, %d before: the admin listener is over its cap of %d", n, base, capAdmin)
	}
	p.alive(t, "after the admin flood")
	p.stop(t)
}

// TestDialOutOfDescriptorsIs503: when the clients the proxy holds have taken every descriptor, a request
// whose backend dial fails for lack of one is answered 503 and the server is not marked down (max_fails =
// 1 would mark it at once); once descriptors free up, the request is served.
func TestDialOutOfDescriptorsIs503(t *testing.T) {
	bin, dir := buildBinary(t)
	origin := testOrigin(t, "a")
	sk := sockettest.NewSet(t)
	addr, adminAddr := sk.AddListen(), sk.AddAdmin()
	cfgPath := filepath.Join(dir, "dial.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 1\nmax_connections = 1000\n"+
		"[admin]\nlisten = %q\n[[upstream]]\nname = \"o\"\nservers = [ { addr = %q } ]\nmax_fails = 1\nfail_timeout = \"60s\"\nretries = 1\n[[route]]\nupstream = \"o\"\n",
		addr, adminAddr, origin)), 0o644)
	p := startLimited(t, bin, cfgPath, 128, sk)

	conns := dialMany(t, addr, 200) // one loop, one listener: the first is accepted first
	if !poll(10*time.Second, func() bool { return strings.Contains(p.logs.String(), fdLine) }) {
		t.Fatalf("the log never said %q:\n%s", fdLine, p.logs.String())
	}
	first, br := conns[0], bufio.NewReader(conns[0])
	if code, err := getOn(first, br); code != 503 && code != 502 {
		t.Fatalf("a request whose dial has no descriptor: %d %v, want 503\n%s", code, err, p.logs.String())
	}
	p.alive(t, "after the failed dial")
	for _, c := range conns[1:] {
		c.Close()
	}
	if !poll(10*time.Second, func() bool { code, _ := getNew(addr); return code == 200 }) {
		t.Fatalf("no request served after descriptors freed up (server marked down?):\n%s", p.logs.String())
	}
	if code, err := getOn(first, br); code != 200 {
		t.Fatalf("the first connection's next request: %d %v", code, err)
	}
	if up := metric(adminAddr, `switchflow_upstream_server_up{upstream="o",server="`+origin+`"}`); up != 1 {
		t.Errorf("switchflow_upstream_server_up = %v, want 1: the proxy's shortage was blamed on the server", up)
	}
	if l := p.logs.String(); strings.Contains(l, "upstream connect failed") || strings.Contains(l, "upstream server down") {
		t.Errorf("the dial that had no descriptor was logged as the server's failure:\n%s", l)
	}
	p.stop(t)
}

// TestFatalExitsNonZero: SPEC 1, exit status 0 only after a stop a signal asked for. A proxy that cannot
// listen (the port taken, reuse_port = false) exits non-zero and says why.
func TestFatalExitsNonZero(t *testing.T) {
	bin, dir := buildBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfgPath := filepath.Join(dir, "taken.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("[server]\nlisten = %q\nreuse_port = false\n[[upstream]]\nname = \"o\"\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[[route]]\nupstream = \"o\"\n",
		ln.Addr().String())), 0o644)
	p := startLimited(t, bin, cfgPath, 1024, nil)
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if err == nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("exit: %v, want a non-zero status\n%s", err, p.logs.String())
		}
		if !strings.Contains(p.logs.String(), "address already in use") {
			t.Errorf("the log does not say why:\n%s", p.logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not exit on a port it cannot listen on")
	}
}
