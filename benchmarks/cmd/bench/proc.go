package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process the harness started, pinned with taskset.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	err  error         // Wait's result, valid after done
	log  string        // path of the file holding its stdout and stderr
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// lastLogLine returns the last non-empty line of the process's log.
func (p *proc) lastLogLine() string {
	t := strings.TrimSpace(p.logTail())
	if i := strings.LastIndexByte(t, '\n'); i >= 0 {
		t = t[i+1:]
	}
	return t
}

// logTail returns the last lines of the process's log, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// supervisor starts children and stops all of them on the way out, also
// after an error or a signal.
type supervisor struct {
	mu    sync.Mutex
	procs map[*proc]struct{}
}

func newSupervisor() *supervisor { return &supervisor{procs: map[*proc]struct{}{}} }

// start runs bin pinned to cpu, in its own process group (so its children,
// nginx's workers, are stopped with it), with output going to logPath.
func (s *supervisor) start(name, cpu, logPath string, env []string, stdin bool, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.mu.Lock()
	s.procs[p] = struct{}{}
	s.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// startPiped is start for a process whose stdout the harness reads and whose
// stdin it holds open (idleconns).
func (s *supervisor) startPiped(name, cpu, logPath string, bin string, args ...string) (*proc, *bufio.Reader, func(), error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, nil, err
	}
	defer logf.Close()
	cmd := exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.mu.Lock()
	s.procs[p] = struct{}{}
	s.mu.Unlock()
	go func() {
		// Wait closes the pipes, so it runs only after the reader is done:
		// the caller stops the process with s.stop, which waits for done.
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, bufio.NewReader(stdout), func() { _ = stdin.Close() }, nil
}

// stop ends p's process group: SIGTERM, then SIGKILL after 3 s.
func (s *supervisor) stop(p *proc) {
	if p == nil {
		return
	}
	pgid := p.pid()
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
		}
	}
	// Children (nginx workers) may outlive the leader; the group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
	s.mu.Lock()
	delete(s.procs, p)
	s.mu.Unlock()
}

func (s *supervisor) stopAll() {
	s.mu.Lock()
	ps := make([]*proc, 0, len(s.procs))
	for p := range s.procs {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop(p) }()
	}
	wg.Wait()
}

// treePIDs returns pid and all its descendants, found by scanning /proc.
func treePIDs(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(n)
		if err != nil {
			continue
		}
		parent[n] = st.ppid
	}
	out := []int{pid}
	// Breadth-first over the parent map; bounded by the number of processes.
	for i := 0; i < len(out) && i < len(parent)+1; i++ {
		for c, pp := range parent {
			if pp == out[i] {
				out = append(out, c)
			}
		}
	}
	return out
}

type procStat struct {
	ppid         int
	utime, stime uint64 // clock ticks
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, errors.New("short stat")
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	stt, _ := strconv.ParseUint(f[12], 10, 64)
	return procStat{ppid: ppid, utime: ut, stime: stt}, nil
}

// rssKiB sums VmRSS over the process tree of pid, in KiB.
func rssKiB(pid int) uint64 { return sumRSS(treePIDs(pid)) }

// clockTicks is USER_HZ, the unit of utime and stime.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}

// machineBusy returns the share (0..100) of all CPUs busy over d, from
// /proc/stat. Other work on the machine makes every number noisy.
func machineBusy(d time.Duration) float64 {
	read := func() (busy, total uint64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			total += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return busy, total
	}
	b0, t0 := read()
	time.Sleep(d)
	b1, t1 := read()
	if t1 <= t0 {
		return 0
	}
	return float64(b1-b0) / float64(t1-t0) * 100
}
