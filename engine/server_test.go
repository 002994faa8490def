package engine

import (
	"bufio"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSocketBuffersFixed: a backend socket's receive buffer, which fills while its client reads slowly,
// is fixed (socketBufferFor). Autotuned, it grew to megabytes after one fast transfer, and a slow reader
// later held 5.8 MB in it (ss -tm); fixed at 8 × io_buffer (the kernel doubles what is set) it holds
// about 1 MiB with the default io_buffer.
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

// TestSlowReaderSocketQueuesBounded: what one client that reads nothing holds in kernel memory while a
// large response waits for it, measured on the proxy's real sockets as the queues fill. The backend
// socket's receive queue stays within its fixed buffer (socketBufferFor); the client socket's send
// queue within its send buffer, which the proxy leaves to the kernel's autotuning and so within
// net.ipv4.tcp_wmem's maximum, as nginx does (scripts/kernelmem.sh: after fast 500 MiB downloads, a
// client reading nothing held 4.17 MB in SwitchFlow's client socket and 4.12 MB in nginx's).
func TestSlowReaderSocketQueuesBounded(t *testing.T) {
	wmem, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		t.Skipf("no tcp_wmem: %v", err)
	}
	f := strings.Fields(string(wmem))
	wmemMax, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("tcp_wmem %q", wmem)
	}
	body := bigBody(32 << 20)
	var count atomic.Int64
	addr, srv := startProxy(t, 1, upstreamConfig("io_buffer = \"64KiB\"\n", pathOrigin(t, body, 0, &count)))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	rcvFixed := 2 * socketBufferFor(64<<10) // the kernel doubles what is set
	type queues struct{ clientOut, clientSndBuf, backendIn, backendRcvBuf int }
	sample := func() (q queues, ok bool) {
		onLoops(t, srv, func(ls *loopState) {
			for n := ls.clients.head; n != nil; n = n.next {
				cc := n.owner
				if cc.exchange == nil || cc.be == nil || cc.be.gc == nil {
					continue
				}
				cfd, bfd := cc.gc.Fd(), cc.be.gc.Fd()
				q.clientOut, _ = unix.IoctlGetInt(cfd, unix.SIOCOUTQ)
				q.clientSndBuf, _ = syscall.GetsockoptInt(cfd, syscall.SOL_SOCKET, syscall.SO_SNDBUF)
				q.backendIn, _ = unix.IoctlGetInt(bfd, unix.SIOCINQ)
				q.backendRcvBuf, _ = syscall.GetsockoptInt(bfd, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
				ok = true
			}
		})
		return q, ok
	}
	// Until both queues have filled (the proxy holds the backend back), every sample within bounds.
	var last queues
	waitFor(t, "both socket queues to fill", func() bool {
		q, ok := sample()
		if !ok {
			return false
		}
		last = q
		if q.backendRcvBuf != rcvFixed || q.backendIn > q.backendRcvBuf {
			t.Fatalf("backend socket: %d bytes queued, SO_RCVBUF %d; want at most %d, fixed", q.backendIn, q.backendRcvBuf, rcvFixed)
		}
		if q.clientSndBuf > wmemMax || q.clientOut > q.clientSndBuf {
			t.Fatalf("client socket: %d bytes queued, SO_SNDBUF %d; want at most tcp_wmem's %d", q.clientOut, q.clientSndBuf, wmemMax)
		}
		return q.clientOut >= 256<<10 && q.backendIn >= 64<<10
	})
	t.Logf("a client reading nothing: %d bytes in its socket's send queue (SO_SNDBUF %d), %d in the backend socket's receive queue (SO_RCVBUF %d)",
		last.clientOut, last.clientSndBuf, last.backendIn, last.backendRcvBuf)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response: %v %v", resp, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	h := sha256.New()
	got, err := io.Copy(h, resp.Body)
	if err != nil || got != int64(len(body)) || string(h.Sum(nil)) != string(sha256Sum(body)) {
		t.Fatalf("got %d of %d bytes (%v), intact %v", got, len(body), err, got == int64(len(body)))
	}
}
