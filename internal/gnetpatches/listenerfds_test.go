package gnetpatches

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchflow/internal/sockettest"
)

// echo is a server that echoes and counts the connections it opened.
type echo struct {
	gnet.BuiltinEventEngine
	eng    gnet.Engine
	booted chan struct{}
	opened atomic.Int64
}

func (h *echo) OnBoot(eng gnet.Engine) gnet.Action {
	h.eng = eng
	close(h.booted)
	return gnet.None
}

func (h *echo) OnOpen(gnet.Conn) ([]byte, gnet.Action) {
	h.opened.Add(1)
	return nil, gnet.None
}

func (h *echo) OnTraffic(c gnet.Conn) gnet.Action {
	b, _ := c.Next(-1)
	_, _ = c.Write(b)
	return gnet.None
}

// runEcho runs an echo engine on addr with loops event loops and the options given; it is stopped when
// the test ends.
func runEcho(t *testing.T, addr string, loops int, opts ...gnet.Option) *echo {
	t.Helper()
	h := &echo{booted: make(chan struct{})}
	done := make(chan error, 1)
	opts = append([]gnet.Option{gnet.WithMulticore(true), gnet.WithNumEventLoop(loops), gnet.WithReuseAddr(true)}, opts...)
	go func() { done <- gnet.Run(h, "tcp://"+addr, opts...) }()
	t.Cleanup(func() {
		if h.eng.Validate() == nil {
			_ = h.eng.Stop(t.Context())
		}
		<-done
	})
	select {
	case <-h.booted:
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("gnet.Run: %v", err)
	}
	return h
}

// echoOnce sends a line on c and wants it back.
func echoOnce(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}

func listening(fd int) bool {
	on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	return err == nil && on == 1
}

// TestInheritedListenersKeepTheirQueue pins patch 13: an engine's listening sockets, duplicated with
// DupListeners and let go of with ReleaseListeners, stay in the listening state; connections that arrive
// while nobody accepts wait in their queues, and an engine given them with WithListenerFDs accepts and
// serves every one, on the very sockets, with more loops than sockets (SO_REUSEPORT: it opens one more).
// StopAccepting instead takes the shared sockets out of listening for every holder.
func TestInheritedListenersKeepTheirQueue(t *testing.T) {
	addr := freeLoopback(t)
	old := runEcho(t, addr, 2, gnet.WithReusePort(true))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := echoOnce(c); err != nil {
		t.Fatalf("the old engine does not serve: %v", err)
	}
	fds, err := old.eng.DupListeners()
	if err != nil {
		t.Fatal(err)
	}
	mine := fds["tcp://"+addr]
	if len(mine) != 2 {
		t.Fatalf("DupListeners: %v, want two sockets (one per loop) for %s", fds, addr)
	}
	if err := old.eng.ReleaseListeners(); err != nil {
		t.Fatal(err)
	}
	// The old engine serves the connection it has, and accepts nothing more; its sockets stay listening.
	if err := echoOnce(c); err != nil {
		t.Fatalf("a connection of the old engine after ReleaseListeners: %v", err)
	}
	for _, fd := range mine {
		if !listening(fd) {
			t.Fatalf("descriptor %d is no longer listening after ReleaseListeners", fd)
		}
	}
	// Nobody accepts now: these wait in the sockets' queues (the kernel completes the handshake).
	var queued []net.Conn
	for i := 0; i < 16; i++ {
		q, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d while nobody accepts: %v", i, err)
		}
		defer q.Close()
		queued = append(queued, q)
	}
	openedBefore := old.opened.Load()

	next := runEcho(t, addr, 3, gnet.WithReusePort(true), gnet.WithListenerFDs(fds))
	for i, q := range queued {
		if err := echoOnce(q); err != nil {
			t.Fatalf("queued connection %d after the handover: %v", i, err)
		}
	}
	if n := old.opened.Load(); n != openedBefore {
		t.Errorf("the old engine accepted %d connections after ReleaseListeners", n-openedBefore)
	}
	if n := next.opened.Load(); n < int64(len(queued)) {
		t.Errorf("the new engine opened %d connections, want at least %d", n, len(queued))
	}
	got, err := next.eng.DupListeners()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got["tcp://"+addr]); n != 3 {
		t.Errorf("the new engine has %d listeners, want 3: the two inherited and one of its own", n)
	}
	for _, fd := range got["tcp://"+addr] {
		_ = syscall.Close(fd)
	}

	// The other way of stopping acts on the socket: every holder loses it.
	if err := next.eng.StopAccepting(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for listening(mine[0]) {
		if time.Now().After(deadline) {
			t.Fatal("StopAccepting in the engine that serves the socket left it listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInheritedListenersWithoutReusePort: sockets opened without SO_REUSEPORT leave no room for another on
// their port, so an engine with more loops than inherited sockets shares them instead of failing to bind,
// and one without SO_REUSEPORT watches every inherited socket with its acceptor.
func TestInheritedListenersWithoutReusePort(t *testing.T) {
	addr := freeLoopback(t)
	old := runEcho(t, addr, 2) // no SO_REUSEPORT: one socket, gnet's acceptor
	fds, err := old.eng.DupListeners()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fds["tcp://"+addr]); n != 1 {
		t.Fatalf("DupListeners without SO_REUSEPORT: %v, want one socket", fds)
	}
	if err := old.eng.ReleaseListeners(); err != nil {
		t.Fatal(err)
	}
	next := runEcho(t, addr, 3, gnet.WithReusePort(true), gnet.WithListenerFDs(fds))
	for i := 0; i < 8; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		err = echoOnce(c)
		c.Close()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	// Without SO_REUSEPORT the old engine may still take a connection or two that its acceptor had been
	// woken for as ReleaseListeners ran (seen under -race); it serves them, so none is refused. The new
	// engine must take the rest.
	if o, n := old.opened.Load(), next.opened.Load(); n < 4 || o+n != 8 {
		t.Errorf("the new engine opened %d connections and the old %d, want 8 in all, most in the new", n, o)
	}
}

// TestStopAcceptingSharedListener pins patch 15: loops that share one inherited socket opened without
// SO_REUSEPORT (each watching a duplicate) are all woken when StopAccepting shuts it down on one of them;
// the others' accept then fails with EINVAL. Every loop must go on serving the connections it has, and
// the engine on running, where a loop used to end with gnet's accept error and close them.
func TestStopAcceptingSharedListener(t *testing.T) {
	for round := 0; round < 10; round++ {
		addr, fd := sockettest.Listening(t)
		h := runEcho(t, addr, 4, gnet.WithReusePort(true), gnet.WithListenerFDs(map[string][]int{"tcp://" + addr: {fd}}))
		var conns []net.Conn
		for i := 0; i < 8; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("round %d, dial %d: %v", round, i, err)
			}
			defer c.Close()
			if err := echoOnce(c); err != nil {
				t.Fatalf("round %d, connection %d before StopAccepting: %v", round, i, err)
			}
			conns = append(conns, c)
		}
		if err := h.eng.StopAccepting(); err != nil {
			t.Fatal(err)
		}
		for i, c := range conns {
			if err := echoOnce(c); err != nil {
				t.Fatalf("round %d, connection %d after StopAccepting: %v (its loop ended)", round, i, err)
			}
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("round %d: a connection after StopAccepting was accepted", round)
		}
	}
}
