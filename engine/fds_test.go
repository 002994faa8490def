package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	errorx "github.com/panjf2000/gnet/v2/pkg/errors"

	"switchflow/internal/sockettest"
)

// serveForTest starts an engine with one loop and returns it with the channel Serve's result comes on.
func serveForTest(t *testing.T) (*Server, string, <-chan error) {
	t.Helper()
	sk := sockettest.NewSet(t)
	cfg, addr := proxyConfig(t, sk, 1, upstreamConfig("", "127.0.0.1:9"))
	srv, done := serveEngineWith(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), inherit(sk))
	return srv, addr, done
}

// TestLoopEndIsAnError: SPEC 1, only a stop that was asked for is a clean end. When gnet's loops end by
// themselves, Serve returns an error (main exits non-zero with it): a loop that dies of an accept error
// (gnet returned nil from Run for it, patch 11), and a loop that ends with no error at all.
func TestLoopEndIsAnError(t *testing.T) {
	t.Run("accept fails", func(t *testing.T) {
		_, addr, done := serveForTest(t)
		// Shutting the listening socket down takes it out of LISTEN: the loop, still watching it, is
		// woken and its accept fails with EINVAL, which no retry can mend. (The socket is found by its
		// address, so that the test reads nothing of gnet's.)
		fd := listeningFD(t, addr)
		if err := syscall.Shutdown(fd, syscall.SHUT_RD); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "accept") {
				t.Fatalf("Serve after the loop died of an accept error: %v, want that error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after its loop died")
		}
	})
	t.Run("loop ends", func(t *testing.T) {
		srv, addr, done := serveForTest(t)
		c, _ := dial(t, addr) // the loop's state exists from its first connection
		defer c.Close()
		var loop gnet.EventLoop
		for loop == nil {
			srv.loops.Range(func(k, _ any) bool { loop = k.(gnet.EventLoop); return false })
			time.Sleep(5 * time.Millisecond)
		}
		_ = loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			return errorx.ErrEngineShutdown // gnet's own way for a loop to end "cleanly"
		}))
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Serve returned nil after the loops ended without a shutdown")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after its loop ended")
		}
	})
}

// listeningFD finds this process's listening socket bound to addr.
func listeningFD(t *testing.T, addr string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || on != 1 {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if in4, ok := sa.(*syscall.SockaddrInet4); err == nil && ok && fmt.Sprintf("127.0.0.1:%d", in4.Port) == addr {
			return fd
		}
	}
	t.Fatalf("no listening socket on %s", addr)
	return -1
}
