package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"switchflow/internal/sockettest"
)

// SIGUSR2 (SPEC 1): the binary upgrade, driven on the real binary (built once for all the steps). Every
// process of the chain is reaped by the test, which makes itself a child subreaper: a new process whose
// parent (the old one) exits becomes the test's child, so its exit status can be checked too.

// upgradeFleet is the chain of processes that one configuration runs through upgrades.
type upgradeFleet struct {
	t                        *testing.T
	dir, bin, good, cfg, pid string
	addr, tlsAddr, admin     string
	logs                     *lockedBuffer
	exits                    sync.Map // pid -> chan syscall.WaitStatus
	installs                 int
}

func TestUpgrade(t *testing.T) {
	bin, dir := buildBinary(t)
	if err := setSubreaper(); err != nil {
		t.Skipf("cannot become a child subreaper, so the upgraded processes' exits cannot be checked: %v", err)
	}
	f := &upgradeFleet{t: t, dir: dir, bin: filepath.Join(dir, "sbin", "switchflow"), good: bin, logs: &lockedBuffer{}}
	os.MkdirAll(filepath.Dir(f.bin), 0o755)
	f.install(t, bin)
	origin := testOrigin(t, "a")
	// The first process opens server.listen itself, with reuse_port, on a reserved port: its own
	// sockets, one per loop, are what the upgrades hand on. [tls] and [admin] it is handed.
	sk := sockettest.NewSet(t)
	f.addr, f.tlsAddr, f.admin = sockettest.Reserved(t), sk.AddTLS(), sk.AddAdmin()
	cert, key := writeSelfSigned(t, dir, "up.test", time.Now().Add(90*24*time.Hour))
	f.pid = filepath.Join(dir, "sf.pid")
	f.cfg = filepath.Join(dir, "sf.toml")
	cfgWith := func(loops int, reusePort bool, more ...string) string {
		listen, _ := json.Marshal(append([]string{f.addr}, more...))
		return fmt.Sprintf("[server]\nlisten = %s\nloops = %d\nreuse_port = %v\nmax_connections = 2000\nshutdown_timeout = \"5s\"\npid_file = %q\n"+
			"[tls]\nlisten = %q\ncertificates = [ { cert = %q, key = %q } ]\n[admin]\nlisten = %q\n"+
			"[[upstream]]\nname = \"o\"\nservers = [ { addr = %q } ]\n[[route]]\nupstream = \"o\"\n",
			listen, loops, reusePort, f.pid, f.tlsAddr, cert, key, f.admin, origin)
	}
	goodCfg := cfgWith(2, true)
	os.WriteFile(f.cfg, []byte(goodCfg), 0o644)

	first := f.start(t, sk)
	inodes := listeningInodes(t, f.addr, f.tlsAddr, f.admin)
	if n := len(inodes[f.addr]); n != 2 {
		t.Fatalf("%d listening sockets on %s with loops = 2 and reuse_port, want 2", n, f.addr)
	}

	t.Run("ten upgrades under load refuse and reset nothing", func(t *testing.T) {
		load := startUpgradeLoad(f.addr, f.tlsAddr)
		pid := first
		for i := 1; i <= 10; i++ {
			before := load.ok.Load()
			next := f.upgrade(t, pid, i)
			// The old process drains and exits 0; the new one serves what comes after.
			if st := f.exit(t, pid, 15*time.Second); !st.Exited() || st.ExitStatus() != 0 {
				t.Fatalf("upgrade %d: the old process (pid %d) ended with %v, want exit status 0\n%s", i, pid, st, f.logs.String())
			}
			if !poll(10*time.Second, func() bool { return load.ok.Load() > before+50 }) {
				t.Fatalf("upgrade %d: no requests served after the old process exited", i)
			}
			f.alive(t, next)
			pid = next
		}
		ok, errs := load.stop()
		if len(errs) > 0 {
			t.Fatalf("%d requests failed across ten upgrades (%d succeeded), first ones:\n%s\n%s", len(errs), ok, strings.Join(errs[:min(len(errs), 10)], "\n"), f.logs.String())
		}
		t.Logf("%d requests, none failed, across ten upgrades", ok)
		// The very sockets passed from process to process: none was opened anew, none lost.
		after := listeningInodes(t, f.addr, f.tlsAddr, f.admin)
		for _, a := range []string{f.addr, f.tlsAddr, f.admin} {
			if strings.Join(after[a], ",") != strings.Join(inodes[a], ",") {
				t.Errorf("listening sockets of %s: %v at the start, %v after ten upgrades; want the same", a, inodes[a], after[a])
			}
		}
		f.healthz(t, 200)
	})

	// The new process serves the sockets it inherits whatever its loops and reuse_port say: a loop
	// beyond them opens a socket of its own where SO_REUSEPORT allows it, else shares one; fewer loops
	// share them all out. An address the file adds is opened; one it drops is closed.
	t.Run("loops, reuse_port and addresses changed across upgrades", func(t *testing.T) {
		load := startUpgradeLoad(f.addr, f.tlsAddr)
		added := freeAddr(t) // opened by an upgraded process, once without SO_REUSEPORT: a port nothing holds
		for i, c := range []struct {
			loops     int
			reusePort bool
			more      []string
		}{
			{3, true, nil}, {1, true, nil},
			{2, false, []string{added}}, // added's socket opened without SO_REUSEPORT
			{3, true, []string{added}},  // so loops 1 and 2 share it
			{1, false, []string{added}}, {2, true, nil},
		} {
			os.WriteFile(f.cfg, []byte(cfgWith(c.loops, c.reusePort, c.more...)), 0o644)
			pid := f.servingPid(t)
			before := load.ok.Load()
			next := f.upgrade(t, pid, i+1)
			if st := f.exit(t, pid, 15*time.Second); !st.Exited() || st.ExitStatus() != 0 {
				t.Fatalf("loops %d, reuse_port %v: the old process ended with %v, want exit status 0\n%s", c.loops, c.reusePort, st, f.logs.String())
			}
			if !poll(10*time.Second, func() bool { return load.ok.Load() > before+50 }) {
				t.Fatalf("loops %d, reuse_port %v: no requests served after the old process exited\n%s", c.loops, c.reusePort, f.logs.String())
			}
			f.alive(t, next)
			for _, a := range c.more {
				if err := plainGet(a, true); err != nil {
					t.Fatalf("loops %d, reuse_port %v: GET on %s: %v", c.loops, c.reusePort, a, err)
				}
			}
		}
		if err := plainGet(added, true); err == nil {
			t.Fatalf("%s still answers after the file dropped it", added)
		}
		ok, errs := load.stop()
		if len(errs) > 0 {
			t.Fatalf("%d requests failed (%d succeeded), first ones:\n%s", len(errs), ok, strings.Join(errs[:min(len(errs), 10)], "\n"))
		}
		os.WriteFile(f.cfg, []byte(goodCfg), 0o644)
	})

	broken := []struct{ name, file, reason string }{
		{"an executable that exits 1", "#!/bin/sh\necho 'this build is broken' >&2\nexit 1\n", "ended (exit status 1) before it served"},
		{"a file that is no executable", "not a program\n", "exec format error"},
	}
	for _, b := range broken {
		t.Run(b.name+" leaves the old process serving", func(t *testing.T) {
			pid := f.servingPid(t)
			f.installText(t, b.file)
			defer f.install(t, f.good)
			f.failedUpgrade(t, pid, b.reason, true)
		})
	}

	t.Run("a file that does not check leaves the old process serving", func(t *testing.T) {
		pid := f.servingPid(t)
		os.WriteFile(f.cfg, []byte(goodCfg+"[cache]\nmax_szie = 1\n"), 0o644)
		defer os.WriteFile(f.cfg, []byte(goodCfg), 0o644)
		f.failedUpgrade(t, pid, "cache.max_szie: unknown key", true)
	})

	t.Run("a second SIGUSR2 during an upgrade is refused; a new process that never serves is killed", func(t *testing.T) {
		pid := f.servingPid(t)
		f.installText(t, "#!/bin/sh\nexec sleep 60\n") // starts, never serves
		defer f.install(t, f.good)
		started := strings.Count(f.logs.String(), "upgrade: new process started")
		syscall.Kill(pid, syscall.SIGUSR2)
		f.waitLog(t, "upgrade: new process started", started+1)
		refused := strings.Count(f.logs.String(), "upgrade refused: one is in progress")
		syscall.Kill(pid, syscall.SIGUSR2)
		f.waitLog(t, "upgrade refused: one is in progress", refused+1)
		// SWITCHFLOW_UPGRADE_TIMEOUT is 5s in this test.
		f.failedUpgrade(t, pid, "did not report that it serves within 5s, and was killed", false)
	})

	t.Run("after the failures an upgrade still works, /healthz is right in both processes, SIGTERM stops the last", func(t *testing.T) {
		pid := f.servingPid(t)
		// A request whose head is still coming keeps the old process draining; an admin connection
		// kept alive from before the upgrade stays with it.
		slow, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()
		io.WriteString(slow, "GET /slow-head HTTP/1.1\r\nHost: x\r\n")
		adm, err := net.Dial("tcp", f.admin)
		if err != nil {
			t.Fatal(err)
		}
		defer adm.Close()
		admR := bufio.NewReader(adm)
		healthzOn := func() int {
			t.Helper()
			adm.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(adm, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(admR, nil)
			if err != nil {
				t.Fatalf("/healthz on the old process's admin connection: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := healthzOn(); code != 200 {
			t.Fatalf("/healthz before the upgrade: %d", code)
		}
		next := f.upgrade(t, pid, 11)
		f.alive(t, pid) // still draining: the request head is not complete
		if code := healthzOn(); code != 503 {
			t.Fatalf("/healthz of the draining old process: %d, want 503", code)
		}
		f.healthz(t, 200) // a new admin connection: the new process
		f.get(t)
		// The old process still serves what it has: the request, once its head is complete.
		io.WriteString(slow, "\r\n")
		slow.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
		if err != nil || resp.StatusCode != 200 || !resp.Close {
			t.Fatalf("the request in flight on the old process: %v %v, want 200 and a close", resp, err)
		}
		if st := f.exit(t, pid, 15*time.Second); !st.Exited() || st.ExitStatus() != 0 {
			t.Fatalf("the old process ended with %v, want exit status 0", st)
		}
		syscall.Kill(next, syscall.SIGTERM)
		if st := f.exit(t, next, 15*time.Second); !st.Exited() || st.ExitStatus() != 0 {
			t.Fatalf("the last process ended with %v after SIGTERM, want exit status 0\n%s", st, f.logs.String())
		}
		if _, err := os.Stat(f.pid); !os.IsNotExist(err) {
			t.Fatalf("pid_file left after the last process exited: %v", err)
		}
		// Nothing went wrong that the steps did not ask for.
		for _, l := range strings.Split(f.logs.String(), "\n") {
			if (strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN")) &&
				!strings.Contains(l, "upgrade failed; this process keeps serving") && !strings.Contains(l, "upgrade refused: one is in progress") &&
				!strings.Contains(l, "inherited listeners closed: the file no longer has their addresses") {
				t.Errorf("unexpected log line: %s", l)
			}
		}
	})
}

// start runs the first process and waits until it serves; it returns its pid.
func (f *upgradeFleet) start(t *testing.T, sk *sockettest.Set) int {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(f.logs, r) // every process of the chain writes here: the same stderr, inherited
	cmd := exec.Command(f.bin, "-config", f.cfg)
	cmd.Stderr = w // a file, not a writer: no copying goroutine for Wait to wait on
	cmd.Env = append(os.Environ(), envUpgradeTimeout+"=5s")
	err = sk.Start(cmd) // returns once it serves
	w.Close()
	if cmd.Process == nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever is still running of the chain: the pid file names it.
		if b, err := os.ReadFile(f.pid); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
		cmd.Process.Kill()
		f.exits.Range(func(k, _ any) bool { syscall.Kill(k.(int), syscall.SIGKILL); return true })
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, f.logs.String())
	}
	pid := cmd.Process.Pid
	if !poll(10*time.Second, func() bool { return f.pidFile() == pid }) {
		t.Fatalf("the pid file never named the first process\n%s", f.logs.String())
	}
	return pid
}

// upgrade sends SIGUSR2 to pid and waits for the new process to serve: the pid file names it, and the old
// process says it has let go of the listeners and drains. It returns the new pid.
func (f *upgradeFleet) upgrade(t *testing.T, pid, n int) int {
	t.Helper()
	served := strings.Count(f.logs.String(), "upgrade: the new process serves")
	handed := strings.Count(f.logs.String(), "listeners handed over; draining")
	syscall.Kill(pid, syscall.SIGUSR2)
	if !poll(20*time.Second, func() bool { p := f.pidFile(); return p != 0 && p != pid }) {
		t.Fatalf("upgrade %d: the pid file still names %d\n%s", n, pid, f.logs.String())
	}
	f.waitLog(t, "upgrade: the new process serves", served+1)
	f.waitLog(t, "listeners handed over; draining", handed+1)
	next := f.pidFile()
	if !strings.Contains(f.logs.String(), "new_pid="+strconv.Itoa(next)) {
		t.Fatalf("upgrade %d: the old process did not name the new one (%d)\n%s", n, next, f.logs.String())
	}
	return next
}

// failedUpgrade sends SIGUSR2 to pid (unless signal is false: sent already), which must log that the
// upgrade failed with reason, and go on serving with the pid file naming it.
func (f *upgradeFleet) failedUpgrade(t *testing.T, pid int, reason string, signal bool) {
	t.Helper()
	failed := strings.Count(f.logs.String(), "upgrade failed; this process keeps serving")
	if signal {
		syscall.Kill(pid, syscall.SIGUSR2)
	}
	f.waitLog(t, "upgrade failed; this process keeps serving", failed+1)
	var last string
	for _, l := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(l, "upgrade failed; this process keeps serving") {
			last = l
		}
	}
	if !strings.Contains(last, reason) {
		t.Fatalf("the failed upgrade's line does not say %q:\n%s", reason, last)
	}
	f.alive(t, pid)
	if p := f.pidFile(); p != pid {
		t.Fatalf("pid_file names %d after the failed upgrade, want %d", p, pid)
	}
	f.get(t)
	f.healthz(t, 200)
}

func (f *upgradeFleet) servingPid(t *testing.T) int {
	t.Helper()
	p := f.pidFile()
	if p == 0 {
		t.Fatal("no pid file")
	}
	f.alive(t, p)
	return p
}

func (f *upgradeFleet) pidFile() int {
	b, err := os.ReadFile(f.pid)
	if err != nil || !strings.HasSuffix(string(b), "\n") {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

// exit waits up to d for pid to end and reaps it: the first process is the test's child, each later one
// becomes so when its parent exits (subreaper).
func (f *upgradeFleet) exit(t *testing.T, pid int, d time.Duration) syscall.WaitStatus {
	t.Helper()
	ch, _ := f.exits.LoadOrStore(pid, make(chan syscall.WaitStatus, 1))
	go func() {
		for {
			var ws syscall.WaitStatus
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.ECHILD {
				// Not the test's child yet: its parent still runs.
				if syscall.Kill(pid, 0) == syscall.ESRCH {
					return
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			ch.(chan syscall.WaitStatus) <- ws
			return
		}
	}()
	select {
	case ws := <-ch.(chan syscall.WaitStatus):
		f.exits.Delete(pid)
		return ws
	case <-time.After(d):
		t.Fatalf("pid %d did not exit within %v\n%s", pid, d, f.logs.String())
		return 0
	}
}

func (f *upgradeFleet) alive(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || strings.Contains(string(b), ") Z ") {
		t.Fatalf("pid %d is not running\n%s", pid, f.logs.String())
	}
}

func (f *upgradeFleet) waitLog(t *testing.T, want string, n int) {
	t.Helper()
	if !poll(20*time.Second, func() bool { return strings.Count(f.logs.String(), want) >= n }) {
		t.Fatalf("the log never said %q %d times:\n%s", want, n, f.logs.String())
	}
}

// install puts a copy of the file at src where the processes find their executable: a new file, and
// the symbolic link the processes were started through pointed at it (renamed over the old link), so
// the upgrade must follow the link as it is then.
func (f *upgradeFleet) install(t *testing.T, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f.installBytes(t, b)
}

func (f *upgradeFleet) installText(t *testing.T, text string) { f.installBytes(t, []byte(text)) }

func (f *upgradeFleet) installBytes(t *testing.T, b []byte) {
	t.Helper()
	f.installs++
	file := fmt.Sprintf("%s-%d", f.bin, f.installs)
	if err := os.WriteFile(file, b, 0o755); err != nil {
		t.Fatal(err)
	}
	link := f.bin + ".new"
	if err := os.Symlink(filepath.Base(file), link); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link, f.bin); err != nil {
		t.Fatal(err)
	}
}

func (f *upgradeFleet) get(t *testing.T) {
	t.Helper()
	if err := plainGet(f.addr, true); err != nil {
		t.Fatalf("GET: %v\n%s", err, f.logs.String())
	}
}

func (f *upgradeFleet) healthz(t *testing.T, want int) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + f.admin + "/healthz")
	if err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("/healthz: %d, want %d", resp.StatusCode, want)
	}
}

// upgradeLoad keeps requests going: clients that open a connection per request (plain and TLS), and
// keep-alive clients that open a new one only when a response says Connection: close. Any error counts:
// a refused or reset connection, a response cut short, a status other than 200.
type upgradeLoad struct {
	ok   atomic.Int64
	mu   sync.Mutex
	errs []string
	quit chan struct{}
	wg   sync.WaitGroup
}

func startUpgradeLoad(addr, tlsAddr string) *upgradeLoad {
	l := &upgradeLoad{quit: make(chan struct{})}
	run := func(name string, fn func() error) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				if err := fn(); err != nil {
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), name, err))
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	for i := 0; i < 8; i++ {
		run("new connection", func() error { return plainGet(addr, true) })
	}
	for i := 0; i < 2; i++ {
		run("new TLS connection", func() error { return tlsGet(tlsAddr) })
	}
	for i := 0; i < 4; i++ {
		ka := &keepAliveClient{addr: addr}
		run("keep-alive", ka.get)
	}
	return l
}

func (l *upgradeLoad) stop() (int64, []string) {
	close(l.quit)
	l.wg.Wait()
	return l.ok.Load(), l.errs
}

// plainGet makes one request on a new connection.
func plainGet(addr string, closeIt bool) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return exchange(c, bufio.NewReader(c), closeIt)
}

func tlsGet(addr string) error {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "up.test"})
	if err != nil {
		return err
	}
	defer c.Close()
	return exchange(c, bufio.NewReader(c), true)
}

// exchange sends a GET on c and reads a 200 with the origin's body.
func exchange(c net.Conn, br *bufio.Reader, closeIt bool) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	if closeIt {
		req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	}
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(body) != "a" {
		return fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	if resp.Close && !closeIt {
		return errConnClose
	}
	return nil
}

// errConnClose: a kept-alive connection's response said Connection: close, as the drain's do.
var errConnClose = errors.New("connection: close")

// keepAliveClient reuses its connection until a response says Connection: close.
type keepAliveClient struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
}

func (k *keepAliveClient) get() error {
	if k.c == nil {
		c, err := net.DialTimeout("tcp", k.addr, 5*time.Second)
		if err != nil {
			return err
		}
		k.c, k.br = c, bufio.NewReader(c)
	}
	err := exchange(k.c, k.br, false)
	if err != nil {
		k.c.Close()
		k.c = nil
	}
	if err == errConnClose {
		return nil // the drain's way to end a kept-alive connection: the response came whole
	}
	return err
}

// listeningInodes gives the inodes of the listening TCP sockets on each of addrs (IPv4 loopback), from
// /proc/net/tcp.
func listeningInodes(t *testing.T, addrs ...string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		want[fmt.Sprintf("0100007F:%04X", p)] = a
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		fs := strings.Fields(line)
		if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
			continue
		}
		if a, ok := want[fs[1]]; ok {
			out[a] = append(out[a], fs[9])
		}
	}
	for a := range out {
		sort.Strings(out[a])
	}
	return out
}

// setSubreaper makes the test process the reaper of its descendants' orphans (prctl PR_SET_CHILD_SUBREAPER).
func setSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return e
	}
	return nil
}

// TestInheritedEnvironment: what an upgrading process passes is read once and removed from the
// environment, and a descriptor that cannot be an inherited one is refused.
func TestInheritedEnvironment(t *testing.T) {
	t.Setenv(envInherit, "")
	os.Unsetenv(envInherit)
	if c, err := takeInherited(); c != nil || err != nil {
		t.Fatalf("no variable: %v, %v", c, err)
	}
	js, _ := json.Marshal(map[string]any{"listen": map[string][]int{"127.0.0.1:1": {2}}})
	t.Setenv(envInherit, string(js))
	if _, err := takeInherited(); err == nil || !strings.Contains(err.Error(), "descriptor 2") {
		t.Fatalf("stderr given as a listener: %v", err)
	}
	// An open file of this process, a connected socket, a closed number: refused, none touched.
	f, err := os.Open("upgrade_test.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cf, _ := conn.(*net.TCPConn).File()
	defer cf.Close()
	for _, fd := range []int{int(f.Fd()), int(cf.Fd()), 1 << 20} {
		js, _ := json.Marshal(map[string]any{"tls": map[string][]int{"127.0.0.1:1": {fd}}})
		t.Setenv(envInherit, string(js))
		if _, err := takeInherited(); err == nil || !strings.Contains(err.Error(), "not an inherited listening socket") {
			t.Errorf("descriptor %d given as a listener: %v", fd, err)
		}
	}
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	fd := int(lf.Fd()) // which makes the socket blocking, as os/exec passes one
	js, _ = json.Marshal(map[string]any{"admin": map[string][]int{"127.0.0.1:1": {fd}}})
	t.Setenv(envInherit, string(js))
	if c, err := takeInherited(); err != nil || c.listeners.Admin["127.0.0.1:1"][0] != fd {
		t.Errorf("a listening socket: %v, %v", c, err)
	}
	// The loops and fdListener wait for readiness and accept until EAGAIN: a socket that came blocking
	// is made non-blocking before either uses it.
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("an inherited socket passed blocking is still blocking (flags %#x, %v)", fl, err)
	}
	if _, ok := os.LookupEnv(envInherit); ok {
		t.Fatal("the variable is still in the environment")
	}
	t.Setenv(envInherit, "{")
	if _, err := takeInherited(); err == nil || !strings.Contains(err.Error(), envInherit) {
		t.Fatalf("malformed variable: %v", err)
	}
}
