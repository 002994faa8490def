package engine

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// nonblocking reports whether fd's open socket is in non-blocking mode (a flag the processes sharing it
// share too).
func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		t.Fatalf("fcntl: %v", e)
	}
	return fl&syscall.O_NONBLOCK != 0
}

// TestFDListenerLeavesTheSocketNonBlocking: an inherited socket is served without switching it to blocking
// mode, which the process it came from, still accepting on it, would suffer; it accepts, and Close ends a
// waiting Accept with net.ErrClosed while the socket goes on listening for the other holder.
func TestFDListenerLeavesTheSocketNonBlocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := &Listeners{TLS: map[string][]int{}}
	if err := dupInto(l.TLS, "x", ln); err != nil {
		t.Fatal(err)
	}
	fd := l.TLS["x"][0]
	if !nonblocking(t, fd) {
		t.Fatal("a Go listener's socket is not non-blocking to begin with")
	}
	fl, err := newFDListener(fd)
	if err != nil {
		t.Fatal(err)
	}
	if fl.Addr().String() != ln.Addr().String() {
		t.Errorf("Addr %s, want %s", fl.Addr(), ln.Addr())
	}
	// The other holder must not win this connection: ln does not accept until fl has.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := fl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if !nonblocking(t, fd) {
		t.Fatal("serving the inherited socket switched it to blocking mode")
	}
	go func() { _, _ = io.Copy(sc, sc) }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo over the accepted connection: %q %v", b, err)
	}

	accepted := make(chan error, 1)
	go func() {
		_, err := fl.Accept()
		accepted <- err
	}()
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Accept")
	}
	// The socket lives on in the other holder.
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial after the inherited listener closed: %v", err)
	}
	c2.Close()
	if sc2, err := ln.Accept(); err != nil {
		t.Fatalf("the first holder no longer accepts: %v", err)
	} else {
		sc2.Close()
	}
}

// TestFDListenerRefusesWhatIsNotListening: a descriptor that is not a listening socket is refused (and
// closed: the listener owns what it is given).
func TestFDListenerRefusesWhatIsNotListening(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[1])
	if _, err := newFDListener(fds[0]); err == nil {
		t.Fatal("a connected socket was taken for a listener")
	}
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[0]), syscall.F_GETFD, 0); e == 0 {
		t.Error("the refused descriptor was left open")
	}
}
