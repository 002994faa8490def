package main

// SIGUSR2: the binary upgrade (SPEC 1; README "Upgrading the binary"). The old process starts the
// executable now on disk with its own arguments and hands it every listening socket (descriptors passed
// with exec, named in SWITCHFLOW_INHERIT, as nginx's NGINX variable or systemd's LISTEN_FDS do) and the
// write end of a pipe. The new process checks its file, serves the inherited sockets, writes its pid
// file, and says "ready" on the pipe; only then does the old one let go of the sockets (without taking
// them out of the listening state, so nothing queued on them is lost) and drain as on SIGTERM. A new
// process that fails says why on the pipe ("failed ...") and exits non-zero; one that exits without a
// word, or says nothing within the bound, fails too (the latter is killed). Either way the old process
// keeps serving and logs why.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"switchflow/engine"
)

// envInherit carries, from an upgrading process to the new one, which inherited descriptor is which
// listener and which one is the readiness pipe: JSON of inheritMsg.
const envInherit = "SWITCHFLOW_INHERIT"

// envUpgradeTimeout bounds the wait for a new process's readiness (a Go duration); upgradeTimeout by
// default.
const envUpgradeTimeout = "SWITCHFLOW_UPGRADE_TIMEOUT"

// upgradeTimeout is how long the old process waits for the new one to serve before it kills it. A
// start allocates the header slabs and opens the access log; seconds at most.
const upgradeTimeout = 30 * time.Second

type inheritMsg struct {
	engine.Listeners
	Ready int `json:"ready"` // the write end of the readiness pipe
}

// upgradeChild is the new process's side of an upgrade; nil in a process that was not started by one.
type upgradeChild struct {
	listeners *engine.Listeners
	ready     *os.File
	parent    int
}

// takeInherited reads (and removes from the environment) what an upgrading process passed; nil, nil
// when nothing was.
func takeInherited() (*upgradeChild, error) {
	v, ok := os.LookupEnv(envInherit)
	if !ok {
		return nil, nil
	}
	_ = os.Unsetenv(envInherit) // not for the processes this one starts: each upgrade sets its own
	var m inheritMsg
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("%s: %w", envInherit, err)
	}
	c := &upgradeChild{listeners: &m.Listeners, parent: os.Getppid()}
	if m.Ready > 2 && isFile(m.Ready, syscall.S_IFIFO) {
		syscall.CloseOnExec(m.Ready)
		c.ready = os.NewFile(uintptr(m.Ready), "upgrade-ready")
	}
	// Every descriptor named must be an inherited listening socket before any is used (or closed, as
	// those of addresses the file dropped are): a wrong number must not take one of this process's own.
	for _, l := range []map[string][]int{m.Listen, m.TLS, m.Admin} {
		for a, fds := range l {
			for _, fd := range fds {
				on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
				if fd <= 2 || fd == m.Ready || !isFile(fd, syscall.S_IFSOCK) || err != nil || on == 0 {
					return c, fmt.Errorf("%s: descriptor %d for %s is not an inherited listening socket", envInherit, fd, a)
				}
			}
		}
	}
	for _, l := range []map[string][]int{m.Listen, m.TLS, m.Admin} {
		for _, fds := range l {
			for _, fd := range fds {
				syscall.CloseOnExec(fd) // passed on explicitly at the next upgrade, never by accident
				// Non-blocking, as the loops and fdListener need: so it is already when a SwitchFlow
				// hands it over, but a socket passed by other means (os/exec's File.Fd, the tests)
				// may come blocking.
				_ = syscall.SetNonblock(fd, true)
			}
		}
	}
	return c, nil
}

// isFile reports whether fd is open and of the type given (syscall.S_IFSOCK, S_IFIFO).
func isFile(fd int, typ uint32) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == typ
}

// report tells the old process how the start ended, once.
func (c *upgradeChild) report(line string) {
	if c == nil || c.ready == nil {
		return
	}
	_, _ = io.WriteString(c.ready, line+"\n")
	_ = c.ready.Close()
	c.ready = nil
}

// failed tells the old process why this one will not serve; it exits non-zero after.
func (c *upgradeChild) failed(why string) {
	c.report("failed " + strings.Join(strings.Fields(why), " "))
}

// serving tells the old process that this one serves: it may let go of the listeners.
func (c *upgradeChild) serving() { c.report("ready " + strconv.Itoa(os.Getpid())) }

// upgrade is an upgrade in flight, on the old process's side.
type upgrade struct {
	pid  int
	proc *os.Process
	done chan error // one result: nil once the new process serves, else why it failed
}

// startUpgrade starts exe with argv, handing it srv's listeners, and watches it for up to timeout.
func startUpgrade(srv *engine.Server, exe string, argv []string, timeout time.Duration) (*upgrade, error) {
	if exe == "" {
		return nil, errors.New("the path of the executable is unknown")
	}
	l, err := srv.DupListeners()
	if err != nil {
		return nil, err
	}
	defer l.Close() // the new process has its own copies once started
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("readiness pipe: %w", err)
	}
	defer w.Close()
	// Raw descriptors for the child, never os.File.Fd of a socket (it would switch the shared socket to
	// blocking mode under the running loops).
	files := []uintptr{0, 1, 2, w.Fd()}
	msg := inheritMsg{Ready: 3}
	pass := func(src map[string][]int) map[string][]int {
		out := map[string][]int{}
		for a, fds := range src {
			for _, fd := range fds {
				out[a] = append(out[a], len(files))
				files = append(files, uintptr(fd))
			}
		}
		return out
	}
	msg.Listen, msg.TLS, msg.Admin = pass(l.Listen), pass(l.TLS), pass(l.Admin)
	js, err := json.Marshal(msg)
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	env := []string{envInherit + "=" + string(js)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envInherit+"=") {
			env = append(env, kv)
		}
	}
	pid, err := syscall.ForkExec(exe, argv, &syscall.ProcAttr{Env: env, Files: files})
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("cannot start %s: %w", exe, err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		_ = r.Close()
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return nil, err
	}
	u := &upgrade{pid: pid, proc: proc, done: make(chan error, 1)}
	go u.watch(r, timeout)
	return u, nil
}

// watch reads the new process's word on the pipe: "ready PID", "failed WHY", or nothing (it exited).
func (u *upgrade) watch(r *os.File, timeout time.Duration) {
	defer r.Close()
	_ = r.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "ready ") {
		u.done <- nil
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		_ = u.proc.Kill()
		_, _ = u.proc.Wait()
		u.done <- fmt.Errorf("the new process (pid %d) did not report that it serves within %s, and was killed", u.pid, timeout)
		return
	}
	status := u.exit(5 * time.Second)
	if why, ok := strings.CutPrefix(line, "failed "); ok {
		u.done <- fmt.Errorf("the new process (pid %d) %s: %s", u.pid, status, why)
		return
	}
	u.done <- fmt.Errorf("the new process (pid %d) %s before it served", u.pid, status)
}

// exit waits for the new process to end, killing it after d, and says how it ended.
func (u *upgrade) exit(d time.Duration) string {
	ended := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := u.proc.Wait()
		ended <- st
	}()
	var st *os.ProcessState
	select {
	case st = <-ended:
	case <-time.After(d):
		_ = u.proc.Kill()
		st = <-ended
	}
	if st == nil {
		return "ended"
	}
	return "ended (" + st.String() + ")"
}

// abort ends an upgrade in flight (the old process was told to stop): the new process is killed before
// the old one shuts its listeners down, which it may then do as their only holder.
func (u *upgrade) abort() error {
	_ = u.proc.Kill()
	return <-u.done
}

// executablePath is the path the process was started as (argv[0], made absolute now, before anything
// could change the working directory), which SIGUSR2 starts again: a symbolic link there is followed
// then, so pointing it at a new version upgrades to that version. os.Executable would name the file the
// link pointed to at the start. It falls back to os.Executable when argv[0] names nothing on PATH.
func executablePath() (string, error) {
	a := os.Args[0]
	if !strings.Contains(a, "/") {
		p, err := exec.LookPath(a)
		if err != nil {
			return os.Executable()
		}
		a = p
	}
	return filepath.Abs(a)
}

// upgradeWait is the bound on a new process's readiness: SWITCHFLOW_UPGRADE_TIMEOUT, else upgradeTimeout.
func upgradeWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(envUpgradeTimeout)); err == nil && d > 0 {
		return d
	}
	return upgradeTimeout
}
