// Package sockettest gives tests listening sockets that no other process can take: bound by the test to
// a loopback port of the kernel's choosing and handed, still listening, to the proxy under test, the way
// a binary upgrade passes its listeners (SWITCHFLOW_INHERIT, upgrade.go; Server.Inherit in process). A
// port found free and closed again, for the proxy to bind later, can be taken in between by any other
// process, another test's origin or the proxy itself connecting out. Only tests import it.
package sockettest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Listening returns a non-blocking listening TCP socket on 127.0.0.1 and a port of the kernel's
// choosing, and its address. It has no SO_REUSEPORT, so no other socket can join it on that port. The
// caller owns fd until it hands it over.
func Listening(t testing.TB) (addr string, fd int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 4096); err != nil { // the kernel caps it at net.core.somaxconn
		syscall.Close(fd)
		t.Fatal(err)
	}
	return addrOf(t, fd), fd
}

// Reserved returns a loopback address for a proxy that must open its listener itself, with reuse_port
// (the first process of an upgrade, whose own sockets are what it hands over): a socket bound to a port
// of the kernel's choosing with SO_REUSEPORT, never listening, holds the port until the test ends, so no
// other process can bind it while the proxy's SO_REUSEPORT sockets join it. A socket that does not
// listen is never given a connection.
func Reserved(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	return addrOf(t, fd)
}

func addrOf(t testing.TB, fd int) string {
	t.Helper()
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// Set is the listening sockets of one proxy under test, by the address its file names, as
// SWITCHFLOW_INHERIT keys them.
type Set struct {
	t      testing.TB
	Listen map[string][]int
	TLS    map[string][]int
	Admin  map[string][]int
	handed bool
}

// NewSet returns an empty Set; the sockets not handed over when the test ends are closed.
func NewSet(t testing.TB) *Set {
	s := &Set{t: t, Listen: map[string][]int{}, TLS: map[string][]int{}, Admin: map[string][]int{}}
	t.Cleanup(func() {
		if !s.handed {
			s.closeAll()
		}
	})
	return s
}

// AddListen binds a socket for server.listen and returns its address, for the file.
func (s *Set) AddListen() string { return s.add(s.Listen) }

// AddTLS binds a socket for [tls] listen.
func (s *Set) AddTLS() string { return s.add(s.TLS) }

// AddAdmin binds a socket for [admin] listen.
func (s *Set) AddAdmin() string { return s.add(s.Admin) }

func (s *Set) add(into map[string][]int) string {
	s.t.Helper()
	addr, fd := Listening(s.t)
	into[addr] = []int{fd}
	return addr
}

// Handed marks the sockets as the proxy's: the test no longer closes them. For Server.Inherit.
func (s *Set) Handed() { s.handed = true }

func (s *Set) closeAll() {
	for _, m := range []map[string][]int{s.Listen, s.TLS, s.Admin} {
		for _, fds := range m {
			for _, fd := range fds {
				_ = syscall.Close(fd)
			}
		}
	}
}

// Start starts cmd (the proxy's binary) with the sockets as a binary upgrade passes them
// (SWITCHFLOW_INHERIT and a readiness pipe) and waits, up to 30 s, for its word on the pipe: it returns
// once the process serves the sockets ("ready"), or an error with what the process said ("failed ...")
// or that it exited. The test's copies of the sockets are closed once cmd has started.
func (s *Set) Start(cmd *exec.Cmd) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	type inheritMsg struct {
		Listen map[string][]int `json:"listen,omitempty"`
		TLS    map[string][]int `json:"tls,omitempty"`
		Admin  map[string][]int `json:"admin,omitempty"`
		Ready  int              `json:"ready"`
	}
	// The child's descriptor i+3 is cmd.ExtraFiles[i]: the pipe first, then the sockets.
	files := []*os.File{w}
	msg := inheritMsg{Ready: 3}
	pass := func(src map[string][]int) map[string][]int {
		out := map[string][]int{}
		for a, fds := range src {
			for _, fd := range fds {
				out[a] = append(out[a], 3+len(files))
				// os/exec takes the descriptor with File.Fd, which makes the socket blocking: the
				// proxy sets every inherited socket non-blocking again before it uses it.
				files = append(files, os.NewFile(uintptr(fd), "listener"))
			}
		}
		return out
	}
	msg.Listen, msg.TLS, msg.Admin = pass(s.Listen), pass(s.TLS), pass(s.Admin)
	js, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	cmd.ExtraFiles = append(files, cmd.ExtraFiles...)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "SWITCHFLOW_INHERIT="+string(js))
	err = cmd.Start()
	w.Close()
	s.handed = true
	for _, f := range files[1:] {
		f.Close() // the child has its own copies
	}
	if err != nil {
		return err
	}
	_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(r).ReadString('\n')
	switch {
	case strings.HasPrefix(line, "ready "):
		return nil
	case line != "":
		return fmt.Errorf("the proxy did not start: %s", strings.TrimSpace(line))
	default:
		return fmt.Errorf("the proxy did not start: no word on its readiness pipe (%v)", err)
	}
}
