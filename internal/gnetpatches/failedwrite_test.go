// Package gnetpatches checks behaviours of our gnet patch series that the engine relies on, against gnet
// itself, with no engine in between.
package gnetpatches

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// failedWrite is a one-loop server: the first connection is the victim, the second the trigger: its first
// bytes make OnTraffic shut the victim's sending side down (so that writing to it fails with EPIPE, and
// nothing the peer does is involved), write to it, and record what the writes returned and whether the
// victim's OnClose ran meanwhile.
type failedWrite struct {
	gnet.BuiltinEventEngine
	eng        gnet.Engine
	booted     chan struct{}
	victim     gnet.Conn
	opened     chan struct{}
	inCallback atomic.Bool
	closedIn   atomic.Bool // the victim's OnClose ran inside the trigger's callback
	closed     chan error  // the victim's OnClose, with its error
	result     chan [2]error
}

func (h *failedWrite) OnBoot(eng gnet.Engine) gnet.Action {
	h.eng = eng
	close(h.booted)
	return gnet.None
}

func (h *failedWrite) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if h.victim == nil {
		h.victim = c
		h.opened <- struct{}{}
	}
	return nil, gnet.None
}

func (h *failedWrite) OnClose(c gnet.Conn, err error) gnet.Action {
	if c == h.victim {
		h.closedIn.Store(h.inCallback.Load())
		h.closed <- err
	}
	return gnet.None
}

func (h *failedWrite) OnTraffic(c gnet.Conn) gnet.Action {
	_, _ = c.Next(-1)
	h.inCallback.Store(true)
	defer h.inCallback.Store(false)
	var first, second error
	if first = syscall.Shutdown(h.victim.Fd(), syscall.SHUT_WR); first == nil {
		_, first = h.victim.Write([]byte("x"))
	}
	_, second = h.victim.Writev([][]byte{[]byte("y"), []byte("z")})
	h.result <- [2]error{first, second}
	return gnet.None
}

// TestFailedWriteClosesAfterCallback pins patch 14: a write that fails does not close the connection
// inside Write (OnClose in the middle of the caller's callback); later writes fail at once with the same
// error; the close follows once the callback has returned, with the write's error.
func TestFailedWriteClosesAfterCallback(t *testing.T) {
	h := &failedWrite{booted: make(chan struct{}), opened: make(chan struct{}, 1), closed: make(chan error, 1), result: make(chan [2]error, 1)}
	addr := freeLoopback(t)
	done := make(chan error, 1)
	go func() {
		err := gnet.Run(h, "tcp://"+addr, gnet.WithNumEventLoop(1), gnet.WithReuseAddr(true))
		done <- err
		close(done) // a second receive (the cleanup's, after the start-up select took the error) returns
	}()
	t.Cleanup(func() {
		if h.eng.Validate() == nil {
			_ = h.eng.Stop(t.Context())
		}
		<-done
	})
	select {
	case <-h.booted:
	case err := <-done:
		t.Fatalf("gnet.Run: %v", err)
	}

	victim, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	<-h.opened

	trigger, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer trigger.Close()
	if _, err := trigger.Write([]byte("go")); err != nil {
		t.Fatal(err)
	}
	var res [2]error
	select {
	case res = <-h.result:
	case <-time.After(10 * time.Second):
		t.Fatal("the trigger's OnTraffic never ran")
	}
	if res[0] == nil {
		t.Fatal("a write to a connection shut down for writing succeeded")
	}
	if !errors.Is(res[1], res[0]) {
		t.Errorf("a write after the failed one returned %v, want the same error %v", res[1], res[0])
	}
	select {
	case err := <-h.closed:
		if h.closedIn.Load() {
			t.Error("OnClose ran inside the callback whose write failed")
		}
		if !errors.Is(err, res[0]) {
			t.Errorf("OnClose got %v, want the write's error %v", err, res[0])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection whose write failed was never closed")
	}
}

// freeLoopback returns a loopback address whose port was free a moment ago (gnet binds its own listener;
// WithReuseAddr makes a port left in TIME_WAIT no obstacle).
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return "127.0.0.1:" + strconv.Itoa(port)
}
