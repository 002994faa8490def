package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hungListener returns the address of a socket that listens with no accept backlog and never accepts;
// its queue is filled first, so further connects hang in SYN-SENT until their timeout.
func hungListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full: connects hang from here on
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Skip("could not fill the listen queue; connects do not hang here")
	return ""
}

// dialState reads, on each loop, the dials in flight to the first server and the dials queued behind them.
func dialState(t *testing.T, srv *Server) (inFlight, queued int) {
	t.Helper()
	onLoops(t, srv, func(ls *loopState) {
		if ls.lt != nil {
			inFlight += ls.lt.dials[0][0]
		}
		for _, d := range ls.dialing {
			if d.queued {
				queued++
			}
		}
	})
	return inFlight, queued
}

// TestDialBurstQueued: a burst of requests to a server whose connects hang starts at most maxDials dials
// per loop; the rest wait queued, without dialing, and every request gets its 502 at connect_timeout.
// Nothing is left in flight or queued afterwards.
func TestDialBurstQueued(t *testing.T) {
	cfg := strings.Replace(faultConfig(0, "5s", hungListener(t)), `connect_timeout = "1s"`, `connect_timeout = "2s"`, 1)
	addr, srv := startProxy(t, 1, cfg)
	const clients = 100
	var wg sync.WaitGroup
	codes := make(chan int, clients)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				codes <- -1
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				codes <- -2
				return
			}
			codes <- resp.StatusCode
		}()
	}
	// Every request reaches the loop well before connect_timeout (2s), even under the race detector.
	inFlight, queued := dialState(t, srv)
	for inFlight+queued < clients && time.Since(start) < 1500*time.Millisecond {
		time.Sleep(20 * time.Millisecond)
		inFlight, queued = dialState(t, srv)
	}
	if inFlight != maxDials || queued != clients-maxDials {
		t.Errorf("before connect_timeout: %d dials in flight and %d queued, want %d and %d", inFlight, queued, maxDials, clients-maxDials)
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 502 {
			t.Fatalf("a request got %d, want 502", code)
		}
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the 502s took %v; connect_timeout is 2s", d)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		inFlight, queued = dialState(t, srv)
		if inFlight == 0 && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the burst: %d dials in flight, %d queued", inFlight, queued)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reparses sums the request heads the loops parsed a second time.
func reparses(t *testing.T, srv *Server) int64 {
	t.Helper()
	var n int64
	onLoops(t, srv, func(ls *loopState) { n += ls.reparses.Load() })
	return n
}

// TestDialedRequestParsedOnce: a request whose backend connection is dialed leaves the callback that
// parsed it, and other clients' heads are parsed into the loop's scratch meanwhile; its head goes out
// from the offsets its exchange kept, never parsed again, and each backend gets its own client's head
// and body. keepalive = 0 makes every request dial.
func TestDialedRequestParsedOnce(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, srv := startProxy(t, loops, strings.Replace(simpleConfig("", o), `connect_timeout = "1s"`, "connect_timeout = \"1s\"\nkeepalive = 0", 1))
		const clients, requests = 16, 10
		errs := keepAliveClients(addr, clients, requests, 10*time.Second, func(c net.Conn, br *bufio.Reader, i, j int) error {
			id := fmt.Sprintf("%d-%d", i, j)
			var want string
			if j%2 == 0 {
				fmt.Fprintf(c, "GET /d/%s HTTP/1.1\r\nHost: x\r\nX-Id: %s\r\n\r\n", id, id)
			} else {
				fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(id), id)
				want = id
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			switch {
			case err != nil || resp.StatusCode != 200:
				return fmt.Errorf("%d %v", resp.StatusCode, err)
			case want == "" && (resp.Header.Get("X-Path") != "/d/"+id || string(body) != "Hello, World!"):
				return fmt.Errorf("GET %s came back for path %q: %q", id, resp.Header.Get("X-Path"), body)
			case want != "" && string(body) != want:
				return fmt.Errorf("POST %s echoed %q", id, body)
			}
			return nil
		})
		for _, err := range errs {
			t.Fatal(err)
		}
		if got := o.hits.Load(); got != clients*requests {
			t.Fatalf("the origin saw %d requests, want %d", got, clients*requests)
		}
		if n := reparses(t, srv); n != 0 {
			t.Fatalf("%d request heads parsed a second time, want none", n)
		}
	})
}
