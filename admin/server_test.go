package admin

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestAdminConnectionCap: SPEC 4, the admin listener bounds its connections. With MaxConns idle
// connections open, the next one is not served (it waits in the kernel's queue); once one of those
// closes, it is.
func TestAdminConnectionCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Serve(ln, &fakeSource{snap: sample()})
	defer l.Close()
	addr := ln.Addr().String()

	get := func(c net.Conn, wait time.Duration) (int, error) {
		_ = c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	idle := make([]net.Conn, MaxConns)
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle[i] = c
	}
	// Each of them is served (so each holds a slot, as a keep-alive connection).
	for i, c := range idle {
		if code, err := get(c, 5*time.Second); code != 200 {
			t.Fatalf("connection %d of %d: %d %v", i, MaxConns, code, err)
		}
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if code, err := get(extra, 300*time.Millisecond); err == nil {
		t.Fatalf("connection %d was served (%d) with %d open: no cap", MaxConns+1, code, MaxConns)
	}
	idle[0].Close()
	br := bufio.NewReader(extra)
	_ = extra.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil) // the request written above is answered once a slot frees
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a slot freed: %v %v", resp, err)
	}
	resp.Body.Close()
}
