package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptOrigin accepts connections and runs script on each; it reports on closed when a connection's
// script saw the proxy close it (a read returned EOF or an error).
func scriptOrigin(t *testing.T, script func(c net.Conn)) (addr string, closed chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed = make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				script(c)
				// Wait for the proxy to let go of the connection.
				if _, err := io.Copy(io.Discard, c); err == nil || !strings.Contains(err.Error(), "use of closed") {
					closed <- struct{}{}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), closed
}

// readHeadOf reads a request head from c (the body, if any, is left unread).
func readHeadOf(c net.Conn) string {
	br := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			return head.String()
		}
	}
}

func waitClosed(t *testing.T, closed chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-closed:
	case <-time.After(within):
		t.Fatalf("%s: the proxy never closed its backend connection", what)
	}
}

// TestUploadStallTimesOut: a client that stops sending its request body must not hold its slot and a
// backend connection forever (nginx: client_body_timeout). After idle_timeout without body bytes the
// client gets 408 and a close, and the backend connection, which holds a partial request, is closed.
func TestUploadStallTimesOut(t *testing.T) {
	oaddr, closed := scriptOrigin(t, func(c net.Conn) { readHeadOf(c) })
	addr, srv := startProxy(t, 1, "idle_timeout = \"1s\"\n"+upstreamConfig("", oaddr))
	c, br := dial(t, addr)
	start := time.Now()
	if _, err := io.WriteString(c, "POST /up HTTP/1.1\r\nHost: s.test\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, body := readResponse(t, br, false)
	if resp.StatusCode != 408 || !resp.Close {
		t.Fatalf("stalled upload: %d close=%v %q", resp.StatusCode, resp.Close, body)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Fatalf("408 after %v, want about idle_timeout (1s)", d)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the connection stayed open after the 408: %d %v", n, err)
	}
	waitClosed(t, closed, 2*time.Second, "stalled upload")
	if n := slabsInUseSettled(srv); n != 0 {
		t.Fatalf("%d slabs still in use", n)
	}
}

// TestUploadTricklingIsNotCut: the body timer runs from the last bytes, not from the head: a body that
// keeps coming, slower than idle_timeout in all, is forwarded whole.
func TestUploadTricklingIsNotCut(t *testing.T) {
	oaddr, _ := scriptOrigin(t, func(c net.Conn) {
		readHeadOf(c)
		buf := make([]byte, 10)
		for got := 0; got < 50; {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got += n
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngot!")
	})
	addr, _ := startProxy(t, 1, "idle_timeout = \"1s\"\n"+upstreamConfig("", oaddr))
	c, br := dial(t, addr)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: s.test\r\nContent-Length: 50\r\n\r\n")
	for i := 0; i < 5; i++ { // 2 s in all, 400 ms apart
		time.Sleep(400 * time.Millisecond)
		if _, err := io.WriteString(c, "0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, body := readResponse(t, br, false); resp.StatusCode != 200 || string(body) != "got!" {
		t.Fatalf("trickled upload: %d %q", resp.StatusCode, body)
	}
}

// TestDownloadStallTimesOut: a backend that stops in the middle of a body (copied, or spliced for a large
// one) must not hold its client forever (nginx: proxy_read_timeout). After response_timeout without
// bytes from it the client has what was sent, sees the close, and the backend connection is closed.
func TestDownloadStallTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name       string
		length     int
		sent       int
		stallAfter time.Duration // when the last bytes are sent
	}{
		{"copied", 100, 10, 0},
		{"spliced", 1 << 20, 128 << 10, 0},
		{"trickle then stall", 100, 30, time.Second}, // 10 bytes at 0, 500 and 1000 ms, then silence
	} {
		t.Run(tc.name, func(t *testing.T) {
			oaddr, closed := scriptOrigin(t, func(c net.Conn) {
				readHeadOf(c)
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", tc.length)
				if tc.stallAfter > 0 {
					for i := 0; i < tc.sent; i += 10 {
						if i > 0 {
							time.Sleep(500 * time.Millisecond)
						}
						io.WriteString(c, "0123456789")
					}
					return
				}
				c.Write(make([]byte, tc.sent))
			})
			addr, srv := startProxy(t, 1, strings.Replace(upstreamConfig("", oaddr), `response_timeout = "2s"`, `response_timeout = "1s"`, 1))
			c, br := dial(t, addr)
			start := time.Now()
			io.WriteString(c, "GET /down HTTP/1.1\r\nHost: s.test\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(8 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("head: %v %v", resp, err)
			}
			got, err := io.Copy(io.Discard, resp.Body)
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("after %d body bytes: %v (want the body cut short by a close)", got, err)
			}
			if got != int64(tc.sent) {
				t.Fatalf("client got %d body bytes, the backend sent %d", got, tc.sent)
			}
			if d := time.Since(start); d < tc.stallAfter+800*time.Millisecond || d > tc.stallAfter+4*time.Second {
				t.Fatalf("closed after %v, want about response_timeout (1s) after the last bytes", d)
			}
			waitClosed(t, closed, 2*time.Second, tc.name)
			if n := slabsInUseSettled(srv); n != 0 {
				t.Fatalf("%d slabs still in use", n)
			}
		})
	}
}
