package engine

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestSlowReaderParksBackend: a client reading a 32 MiB response slowly must not make the proxy buffer
// the response (SPEC 3.3: about 2 × io_buffer per connection). The origin writes as fast as it can; the
// proxy's heap, measured while the client is half way, must stay far below the response size, and every
// byte must arrive intact.
func TestSlowReaderParksBackend(t *testing.T) {
	const size = 32 << 20
	body := bigBody(size)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	osrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) }}
	go osrv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = osrv.Shutdown() })

	forLoops(t, func(t *testing.T, loops int) {
		addr, srv := startProxy(t, loops, upstreamConfig("io_buffer = \"64KiB\"\n", ln.Addr().String()))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.(*net.TCPConn).SetReadBuffer(64 << 10) // keep the kernel from absorbing the test
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReaderSize(c, 16<<10)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response: %v %v", resp, err)
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)

		h := sha256.New()
		buf := make([]byte, 64<<10)
		var got int
		var peak uint64
		for got < size {
			n, err := resp.Body.Read(buf)
			h.Write(buf[:n])
			got += n
			if err != nil {
				break
			}
			if got%(1<<20) < n { // about 16 MiB/s: slow enough for the origin to outrun the client
				time.Sleep(60 * time.Millisecond)
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak {
					peak = ms.HeapInuse
				}
			}
		}
		if got != size || fmt.Sprintf("%x", h.Sum(nil)) != fmt.Sprintf("%x", sha256.Sum256(body)) {
			t.Fatalf("got %d bytes (want %d), intact=%v", got, size, got == size)
		}
		growth := int64(peak) - int64(before.HeapInuse)
		t.Logf("heap growth while a slow client read 32 MiB: %.1f MiB", float64(growth)/(1<<20))
		// gnet's read buffers and the test's own reads are in the same heap: allow 8 MiB, a quarter of the
		// response; without parking the proxy holds most of the 32 MiB.
		if growth > 8<<20 {
			t.Fatalf("heap grew %.1f MiB while a slow client read a 32 MiB response", float64(growth)/(1<<20))
		}
		c.Close()
		if n := slabsInUseSettled(srv); n != 0 {
			t.Fatalf("%d slabs in use", n)
		}
		_, _ = io.Copy(io.Discard, br)
	})
}
