package engine

import (
	"bufio"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// echoUpgradeOrigin answers an upgrade request with 101 and then echoes every byte, like a WebSocket
// echo server without the framing (the proxy never looks at the frames).
func echoUpgradeOrigin(t *testing.T) (addr string, heads chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	heads = make(chan string, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					head.WriteString(line)
					if line == "\r\n" {
						break
					}
				}
				heads <- head.String()
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
				io.Copy(c, br)
			}(c)
		}
	}()
	return ln.Addr().String(), heads
}

func TestWebSocketTunnel(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		oaddr, heads := echoUpgradeOrigin(t)
		addr, srv := startProxy(t, loops, simpleConfig("", &origin{addr: oaddr}))
		c, br := dial(t, addr)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 101 || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
			t.Fatalf("upgrade response: %d %v", resp.StatusCode, resp.Header)
		}
		head := <-heads
		if !strings.Contains(head, "Upgrade: websocket") || !strings.Contains(strings.ToLower(head), "connection: upgrade") {
			t.Fatalf("the origin did not get the upgrade headers:\n%s", head)
		}
		// A 10 MiB message and some small ones, both ways at once, hash-checked.
		msg := bigBody(10 << 20)
		go func() {
			c.Write([]byte("small-1"))
			c.Write(msg)
			c.Write([]byte("small-2"))
		}()
		want := append(append([]byte("small-1"), msg...), "small-2"...)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("echo through the tunnel: %v", err)
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatal("bytes changed in the tunnel")
		}
		c.Close()
		if n := slabsInUseSettled(srv); n != 0 {
			t.Fatalf("%d slabs in use after the tunnel closed", n)
		}
	})
}

func TestTunnelIdleTimeoutAndUnaskedUpgrade(t *testing.T) {
	oaddr, _ := echoUpgradeOrigin(t)
	addr, _ := startProxy(t, 1, simpleConfig("idle_timeout = \"500ms\"\n", &origin{addr: oaddr}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle tunnel: %v, want EOF", err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 2*time.Second {
		t.Fatalf("idle tunnel closed after %v, want about 500ms", el)
	}
	// A 101 to a request that did not ask for an upgrade must not open a tunnel.
	c2, br2 := dial(t, addr)
	resp, _ := roundTrip(t, c2, br2, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 502 {
		t.Fatalf("unasked 101: %d, want 502", resp.StatusCode)
	}
}
