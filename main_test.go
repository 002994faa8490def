package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"switchflow/internal/dnstest"
	"switchflow/internal/sockettest"
)

func TestVersionAndConfigCheck(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-version"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "gnet v2.") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("-version: exit %d, %q", code, out.String())
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[[upstream]]\nname = \"a\"\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[[route]]\nupstream = \"a\"\n"), 0o644)
	out.Reset()
	if code := run([]string{"-t", "-config", good}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "configuration ok\nworst-case memory: ") {
		t.Fatalf("-t on a good file: exit %d, %q %q", code, out.String(), errb.String())
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[server]\nmax_connections = 0\nlisen = \"x\"\n[[route]]\nupstream = \"nope\"\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"-t", "-config", bad}, &out, &errb); code != 1 {
		t.Fatalf("-t on a bad file: exit %d", code)
	}
	for _, key := range []string{"server.max_connections", "server.lisen", "route[0].upstream"} {
		if !strings.Contains(errb.String(), key) {
			t.Errorf("-t output does not name %s:\n%s", key, errb.String())
		}
	}
	if code := run([]string{"-config", bad}, &out, &errb); code != 1 {
		t.Fatalf("running on a bad file: exit %d, want 1", code)
	}
	// What the file's own checks cannot see, -t reports as the run would: [tls] certificate files that
	// do not load, and an access log it cannot open.
	for _, tc := range []struct{ text, key string }{
		{"[tls]\ncertificates = [ { cert = \"a.crt\", key = \"a.key\" } ]\n", "tls.certificates[0] "},
		{"[log]\naccess = " + fmt.Sprintf("%q", filepath.Join(dir, "no-such-dir", "access.log")) + "\n", "log.access: "},
		{"[server]\nmax_connections = 100000000\nheader_buffer = \"1MiB\"\n", "server.max_connections: "}, // ~95 TiB of slabs
	} {
		f := filepath.Join(dir, "start.toml")
		os.WriteFile(f, []byte(tc.text), 0o644)
		out.Reset()
		errb.Reset()
		if code := run([]string{"-t", "-config", f}, &out, &errb); code != 1 || !strings.Contains(errb.String(), tc.key) || out.Len() != 0 {
			t.Errorf("-t on %q: exit %d, stdout %q, stderr %q; want 1 and a problem naming %q", tc.text, code, out.String(), errb.String(), tc.key)
		}
	}
	// -h is a question, answered with exit 0; a stray argument is a mistake (the file goes after -config).
	out.Reset()
	errb.Reset()
	if code := run([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "-config") {
		t.Errorf("-h: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"-t", good}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unexpected argument") {
		t.Errorf("-t FILE without -config: exit %d, %q; want 2", code, errb.String())
	}
	// The README's first command runs the shipped file: it must always check.
	out.Reset()
	errb.Reset()
	if code := run([]string{"-t", "-config", "switchflow.toml"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "configuration ok\n") {
		t.Fatalf("-t on the shipped switchflow.toml: exit %d, %q %q", code, out.String(), errb.String())
	}
}

// TestSignals drives the real binary: SIGHUP swaps routes without dropping a request, a bad file on SIGHUP
// is refused, and SIGTERM lets a request in flight finish before exiting 0.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchflow")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	a := testOrigin(t, "a")
	b, bSlow := countingOrigin(t, "b")
	sk := sockettest.NewSet(t)
	addr := sk.AddListen()
	cfgPath := filepath.Join(dir, "sf.toml")
	write := func(origin string, extra ...string) {
		os.WriteFile(cfgPath, []byte(fmt.Sprintf("[server]\nlisten = %q\nloops = 2\nshutdown_timeout = \"5s\"\n[[upstream]]\nname = \"o\"\nservers = [ { addr = %q } ]\n[[route]]\nupstream = \"o\"\n", addr, origin)+strings.Join(extra, "")), 0o644)
	}
	write(a)
	cmd := exec.Command(bin, "-config", cfgPath)
	var logs lockedBuffer
	cmd.Stderr = &logs
	err := sk.Start(cmd) // returns once it serves the socket
	if cmd.Process != nil {
		defer cmd.Process.Kill()
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, logs.String())
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if _, body := get("/"); body != "a" {
		t.Fatalf("before reload: %q", body)
	}
	write(b)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(3 * time.Second)
	for {
		code, body := get("/")
		if code != 200 {
			t.Fatalf("request during reload failed: %d", code)
		}
		if body == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not switch the upstream")
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.WriteFile(cfgPath, []byte("[[route]]\nupstream = \"missing\"\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if _, body := get("/"); body != "b" {
		t.Fatalf("a bad file replaced the running configuration: %q", body)
	}
	// The signal is logged, and each problem has its line (no literal \n inside one).
	waitLog(t, &logs, `msg="reload problem"`, 1)
	if l := logs.String(); !strings.Contains(l, `msg="reload requested" signal=SIGHUP`) ||
		!strings.Contains(l, `msg="reload refused; the running configuration stays"`) ||
		!strings.Contains(l, `problem="route[0].upstream: `) || strings.Contains(l, `\n`) {
		t.Fatalf("refused reload not logged a problem a line:\n%s", l)
	}
	// A file that adds [tls] with certificate files that do not exist is refused on reload as at start.
	write(a, "[tls]\nlisten = \"127.0.0.1:1\"\ncertificates = [ { cert = \"a.crt\", key = \"a.key\" } ]\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, "tls.certificates[0] ", 1)
	if _, body := get("/"); body != "b" {
		t.Fatalf("a file with [tls] replaced the running configuration: %q", body)
	}
	// log.level applies on reload (the Info line of this reload is not written); a setting that only a
	// restart applies is named in a warning.
	write(b, "[log]\nlevel = \"warn\"\n")
	os.WriteFile(cfgPath, bytes.Replace(must(os.ReadFile(cfgPath)), []byte("loops = 2"), []byte("loops = 3"), 1), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, &logs, "take effect only on restart", 1)
	if l := logs.String(); strings.Count(l, "configuration reloaded") != 1 || !strings.Contains(l, "keys=server.loops") {
		t.Fatalf("after a reload to level warn with loops changed:\n%s", l)
	}

	// A slow request in flight when SIGTERM arrives still completes.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	// In flight once the origin has it: a connection still in the listen queue at SIGTERM is reset
	// with it, which is not what this checks.
	for deadline := time.Now().Add(5 * time.Second); bSlow.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow request never reached the origin\n%s", logs.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	// SPEC 1: after SIGTERM the proxy stops accepting: a new connection is refused, not accepted and
	// closed.
	time.Sleep(200 * time.Millisecond)
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		nc.Close()
		t.Fatal("a connection made after SIGTERM was accepted")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a connection made after SIGTERM: %v, want connection refused", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request in flight at SIGTERM: %v %v\n%s", resp, err, logs.String())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(6 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// waitLog waits up to 3 s for the child's log to hold want at least n times.
func waitLog(t *testing.T, logs *lockedBuffer, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for strings.Count(logs.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", want, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// testOrigin answers its name, and "/slow" after 500 ms.
func testOrigin(t *testing.T, name string) string {
	t.Helper()
	addr, _ := countingOrigin(t, name)
	return addr
}

// countingOrigin is testOrigin that also counts the "/slow" requests it has begun to answer.
func countingOrigin(t *testing.T, name string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var slow atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slow.Add(1)
			time.Sleep(500 * time.Millisecond)
		}
		io.WriteString(w, name)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &slow
}

// freeAddr is a loopback address nothing listens on, found free and closed again. Only for a listener
// that the proxy must open itself without SO_REUSEPORT (an address added by an upgrade): anything else
// gets its socket from internal/sockettest, bound before the proxy starts, since a closed port can be
// taken by another process before the proxy binds it.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never listened", addr)
}

// lockedBuffer collects the child's stderr, written by exec's copying goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSpareProc: SwitchFlow runs with one scheduler processor more than it has event loops, unless the
// environment sets GOMAXPROCS, which always wins.
func TestSpareProc(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Setenv("GOMAXPROCS", "")
	os.Unsetenv("GOMAXPROCS")
	runtime.GOMAXPROCS(1)
	spareProc(3, log)
	if got := runtime.GOMAXPROCS(0); got != 4 {
		t.Fatalf("3 loops, GOMAXPROCS unset: runtime.GOMAXPROCS = %d, want 4", got)
	}
	runtime.GOMAXPROCS(8)
	spareProc(3, log)
	if got := runtime.GOMAXPROCS(0); got != 8 {
		t.Fatalf("3 loops on 8 processors: runtime.GOMAXPROCS = %d, want 8 left alone", got)
	}

	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	spareProc(3, log)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS=1 in the environment: runtime.GOMAXPROCS = %d, want 1", got)
	}
}

// With resolve set, a name that does not resolve is no reason to refuse the file: -t says so in a
// warning and passes (the proxy starts without that name's servers). -T prints [resolver] and resolve.
func TestCheckFollowedNameThatDoesNotResolve(t *testing.T) {
	dns := dnstest.Start(t) // knows no name: every lookup is NXDOMAIN
	f := filepath.Join(t.TempDir(), "sf.toml")
	os.WriteFile(f, []byte(fmt.Sprintf("[resolver]\nservers = [%q]\n[[upstream]]\nname = \"a\"\nresolve = \"30s\"\nservers = [ { addr = \"app.test:80\" } ]\n[[route]]\nupstream = \"a\"\n", dns.Addr)), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"-T", "-config", f}, &out, &errb); code != 0 {
		t.Fatalf("-T: exit %d, %q %q", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), `warning: upstream[0].servers[0].addr: host "app.test" does not resolve now`) {
		t.Errorf("-T does not say the name does not resolve: %q", errb.String())
	}
	for _, want := range []string{fmt.Sprintf("[resolver]\nservers = [%q]\n", dns.Addr), "resolve = \"30s\"\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-T output lacks %q:\n%s", want, out.String())
		}
	}
	// Without resolve, a name that does not resolve is fatal, as nginx has it.
	os.WriteFile(f, []byte(fmt.Sprintf("[resolver]\nservers = [%q]\n[[upstream]]\nname = \"a\"\nservers = [ { addr = \"app.test:80\" } ]\n[[route]]\nupstream = \"a\"\n", dns.Addr)), 0o644)
	errb.Reset()
	if code := run([]string{"-t", "-config", f}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "does not resolve") {
		t.Errorf("-t on a static name that does not resolve: exit %d, %q", code, errb.String())
	}
}
