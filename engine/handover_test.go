package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"switchflow/config"
	"switchflow/internal/sockettest"
)

// TestHandOverKeepsQueuedConnections: the engine side of SIGUSR2 in one process. A serving engine's
// listeners (server.listen with reuse_port, one per loop, and [admin]) are duplicated and handed over: a
// keep-alive client that sends its next request during the drain gets it answered with a close; once the
// old engine has stopped, connections that arrive while nothing accepts wait in the very sockets, and a
// new engine given them serves every one, its admin listener included.
func TestHandOverKeepsQueuedConnections(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		// The old engine opens its own sockets, as the first process of an upgrade does: server.listen
		// with reuse_port on a reserved port, [admin] on a port of the kernel's choosing.
		addr := sockettest.Reserved(t)
		cfg, err := config.Parse([]byte(fmt.Sprintf("[server]\nlisten = %q\nloops = %d\n[admin]\nlisten = \"127.0.0.1:0\"\n", addr, loops) + simpleConfig("", o)))
		if err != nil {
			t.Fatal(err)
		}
		old, oldDone := serveEngine(t, cfg, testLog())
		adminAddr := old.AdminAddr()
		c, br := dial(t, addr)
		if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || resp.Close {
			t.Fatalf("before the handover: %d %q close=%v", resp.StatusCode, body, resp.Close)
		}

		l, err := old.DupListeners()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(l.Listen[addr]); n != loops {
			t.Fatalf("%d sockets for %s with %d loops and reuse_port, want one per loop", n, addr, loops)
		}
		if n := len(l.Admin["127.0.0.1:0"]); n != 1 {
			t.Fatalf("%d admin sockets, want 1", n)
		}

		handed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			handed <- old.HandOver(ctx)
		}()
		waitFor(t, "the drain", old.Draining)
		// Within the grace, the kept-alive client's next request is answered, and the connection closed.
		if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || string(body) != "Hello, World!" || !resp.Close {
			t.Fatalf("a request during the drain: %d %q close=%v, want 200 and a close", resp.StatusCode, body, resp.Close)
		}
		select {
		case err := <-handed:
			if err != nil {
				t.Fatalf("HandOver: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("HandOver did not return")
		}
		if err := <-oldDone; err != nil {
			t.Fatalf("the old engine's Serve: %v", err)
		}

		// Nothing accepts now; the sockets listen on, so these wait in their queues.
		var queued []net.Conn
		for i := 0; i < 4*loops; i++ {
			q, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatalf("dial %d while nothing accepts: %v", i, err)
			}
			defer q.Close()
			_, _ = q.Write([]byte("GET /queued HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
			queued = append(queued, q)
		}
		adm, err := net.DialTimeout("tcp", adminAddr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial the admin address while nothing accepts: %v", err)
		}
		defer adm.Close()
		_, _ = adm.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))

		next, _ := serveEngineWith(t, cfg, testLog(), func(s *Server) { s.Inherit(l) })
		for i, q := range queued {
			_ = q.SetDeadline(time.Now().Add(10 * time.Second))
			resp, body := readResponse(t, bufio.NewReader(q), false)
			if resp.StatusCode != 200 || string(body) != "Hello, World!" {
				t.Fatalf("queued connection %d: %d %q", i, resp.StatusCode, body)
			}
		}
		_ = adm.SetDeadline(time.Now().Add(10 * time.Second))
		if resp, _ := readResponse(t, bufio.NewReader(adm), false); resp.StatusCode != http.StatusOK {
			t.Fatalf("the queued /healthz: %d", resp.StatusCode)
		}
		if next.AdminAddr() != adminAddr {
			t.Errorf("the new engine's admin address %q, want %q", next.AdminAddr(), adminAddr)
		}
	})
}
