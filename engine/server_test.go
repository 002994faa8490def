package engine

import (
	"io"
	"syscall"
	"testing"
	"time"
)

// TestSocketBuffersFixed: a backend socket's receive buffer, which fills while its client reads slowly,
// is fixed (socketBufferFor). Autotuned, it grew to megabytes after one fast transfer, and a slow reader
// later held 5.8 MB in it (ss -tm); fixed at 4 × io_buffer (the kernel doubles what is set) it holds
// 512 KiB.
func TestSocketBuffersFixed(t *testing.T) {
	o := startOrigin(t, "a")
	addr, srv := startProxy(t, 1, simpleConfig("io_buffer = \"32KiB\"\n", o))
	c, br := dial(t, addr)
	defer c.Close()
	if _, err := io.WriteString(c, "GET /slow?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	want := 2 * socketBufferFor(32<<10)
	deadline := time.Now().Add(3 * time.Second)
	for {
		var rcv int
		var seen bool
		onLoops(t, srv, func(ls *loopState) {
			for n := ls.clients.head; n != nil; n = n.next {
				cc := n.owner
				if cc.exchange == nil || cc.be == nil || cc.be.gc == nil {
					continue
				}
				seen = true
				rcv, _ = syscall.GetsockoptInt(cc.be.gc.Fd(), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
			}
		})
		if seen {
			if rcv != want {
				t.Fatalf("backend SO_RCVBUF %d, want %d", rcv, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no exchange in flight to look at")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if resp, _ := readResponse(t, br, false); resp.StatusCode != 200 {
		t.Fatalf("the slow request: %d", resp.StatusCode)
	}
}
