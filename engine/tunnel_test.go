package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"runtime"
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
		expectSlabsFreed(t, srv)
	})
}

func TestTunnelIdleTimeoutAndUnaskedUpgrade(t *testing.T) {
	oaddr, _ := echoUpgradeOrigin(t)
	addr, srv, clock := startProxyOnClock(t, 1, simpleConfig("idle_timeout = \"500ms\"\n", &origin{addr: oaddr}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// The tunnel opened on the clock as it stands: closed silently exactly idle_timeout later.
	expectAt(t, srv, clock, clock.elapsed(), 500*time.Millisecond, c, br, "")
	// A 101 to a request that did not ask for an upgrade must not open a tunnel.
	c2, br2 := dial(t, addr)
	resp, _ := roundTrip(t, c2, br2, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 502 {
		t.Fatalf("unasked 101: %d, want 502", resp.StatusCode)
	}
}

// TestH2CUpgradeNotTunnelled: only WebSocket is tunnelled (SPEC 3.1). An "Upgrade: h2c" request reaches the
// backend as a plain request, without Upgrade, Connection or HTTP2-Settings, and a 101 to it is refused
// (502): h2c smuggling would let a client speak HTTP/2 to the backend past the proxy's rules.
func TestH2CUpgradeNotTunnelled(t *testing.T) {
	oaddr, heads := echoUpgradeOrigin(t)
	addr, _ := startProxy(t, 1, simpleConfig("", &origin{addr: oaddr}))
	c, br := dial(t, addr)
	defer c.Close()
	resp, _ := roundTrip(t, c, br, "GET /h2 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	if resp.StatusCode != 502 {
		t.Fatalf("a 101 to an h2c upgrade: %d, want 502", resp.StatusCode)
	}
	head := strings.ToLower(<-heads)
	for _, bad := range []string{"upgrade", "http2-settings", "h2c", "connection:"} {
		if strings.Contains(head, bad) {
			t.Fatalf("the backend got %q:\n%s", bad, head)
		}
	}
}

// floodUpgradeOrigin answers an upgrade with 101 and then, in mode "send", writes msg as fast as it can;
// in mode "read", reads len(msg) bytes at about 16 MiB/s and writes back their SHA-256.
func floodUpgradeOrigin(t *testing.T, mode string, msg []byte) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		if mode == "send" {
			_, _ = c.Write(msg)
			time.Sleep(time.Second)
			return
		}
		if got, sum, _ := readSlowly(br, len(msg)); got == len(msg) {
			_, _ = c.Write(sum)
		}
	})
}

// TestTunnelBackpressure: after a 101, a side that sends faster than the other reads must not make the
// proxy buffer the stream (SPEC 3.3), in either direction: the sending side is held while the other
// has io_buffer unread. 32 MiB each way, hash-checked, heap measured while it flows.
func TestTunnelBackpressure(t *testing.T) {
	const size = 32 << 20
	msg := bigBody(size)
	for _, mode := range []string{"send", "read"} {
		t.Run("origin-"+mode, func(t *testing.T) {
			oaddr := floodUpgradeOrigin(t, mode, msg)
			addr, srv := startProxy(t, 1, simpleConfig("io_buffer = \"64KiB\"\n", &origin{addr: oaddr}))
			c, br := openTunnel(t, addr, 60*time.Second)
			before := settledHeap()
			stop := heapPeak()
			if mode == "send" { // the client reads slowly
				got, sum, _ := readSlowly(br, size)
				if got != size || string(sum) != string(sha256Sum(msg)) {
					t.Fatalf("client got %d of %d bytes, intact=%v", got, size, got == size)
				}
			} else { // the client sends as fast as it can; the origin reads slowly and answers the hash
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				sum := make([]byte, 32)
				if _, err := io.ReadFull(br, sum); err != nil || string(sum) != string(sha256Sum(msg)) {
					t.Fatalf("origin's hash: %v, intact=%v", err, string(sum) == string(sha256Sum(msg)))
				}
			}
			growth := int64(stop()) - int64(before.HeapInuse)
			t.Logf("heap growth through a tunnel carrying 32 MiB to a slow reader: %.1f MiB", float64(growth)/(1<<20))
			if growth > 8<<20 {
				t.Fatalf("heap grew %.1f MiB through a tunnel carrying 32 MiB", float64(growth)/(1<<20))
			}
			c.Close()
			expectSlabsFreed(t, srv)
		})
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestTunnelBothWaysFloodHeld: both ends of a tunnel send faster than they read at once (the client
// writes 32 MiB while reading the echo at 10 MiB/s, the echo origin writes back everything it reads).
// Neither side can be held while bytes wait for it, so the proxy pauses reading instead (our gnet
// patch's PauseRead): every byte of the echo arrives, in order, and the proxy's heap stays flat.
func TestTunnelBothWaysFloodHeld(t *testing.T) {
	oaddr, heads := echoUpgradeOrigin(t)
	addr, srv := startProxy(t, 1, simpleConfig("io_buffer = \"64KiB\"\n", &origin{addr: oaddr}))
	c, br := openTunnel(t, addr, 30*time.Second)
	<-heads
	const size = 32 << 20
	msg := bigBody(size)
	got := make([]byte, 0, size)
	buf := make([]byte, 16<<10)
	before := settledHeap()
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(msg); wrote <- err }()
	var peak uint64
	for len(got) < size {
		n, err := br.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("after %d of %d echoed bytes: %v", len(got), size, err)
		}
		if len(got)%(1<<20) < n {
			time.Sleep(100 * time.Millisecond) // 10 MiB/s at most
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the echo came back changed")
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the client's 32 MiB write: %v", err)
	}
	// The test's own 64 MiB (msg and got) were allocated before the baseline and stay reachable.
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("heap growth while both ways were flooded: %.1f MiB", float64(growth)/(1<<20))
	if growth > 4<<20 {
		t.Fatalf("heap grew %.1f MiB: the flood was buffered, not held back", float64(growth)/(1<<20))
	}
	c.Close()
	expectSlabsFreed(t, srv)
}

// openTunnel dials addr with 64 KiB socket buffers (so that the kernel does not absorb a test's stream),
// upgrades the connection, and returns it once the 101 is read; it is closed when the test ends.
func openTunnel(t *testing.T, addr string, limit time.Duration) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
	_ = c.(*net.TCPConn).SetWriteBuffer(64 << 10)
	_ = c.SetDeadline(time.Now().Add(limit))
	br := bufio.NewReaderSize(c, 16<<10)
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, br
}
