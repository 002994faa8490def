package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestSlowReaderHoldsBackend: a client reading a 32 MiB response slowly must not make the proxy buffer
// the response (SPEC 3.3: about 2 × io_buffer per connection). The origin writes as fast as it can; the
// proxy's heap, measured while the client is half way, must stay far below the response size, and every
// byte must arrive intact.
func TestSlowReaderHoldsBackend(t *testing.T) {
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
		// The origin copies 32 MiB before its first byte: on a loaded machine under -race that can take
		// longer than the harness's 2 s response_timeout, which this test is not about.
		cfg := strings.Replace(upstreamConfig("io_buffer = \"64KiB\"\n", ln.Addr().String()),
			`response_timeout = "2s"`, `response_timeout = "60s"`, 1)
		addr, srv := startProxy(t, loops, cfg)
		slowReaderHeldBack(t, srv, addr, "/big", body, "")
	})
}

// slowReaderHeldBack asks addr for path as a client that reads about 16 MiB/s, slower than the backend
// sends, and checks that body arrives whole, that the heap grew by at most 8 MiB meanwhile (a quarter of
// a 32 MiB body: gnet's read buffers and the test's own reads are in the same heap; without holding the
// backend back the proxy would hold most of the body), and that every header slab comes back. what says
// where the body came from, for the log.
func slowReaderHeldBack(t *testing.T, srv *Server, addr, path string, body []byte, what string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10) // keep the kernel from absorbing the test
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	br := bufio.NewReaderSize(c, 16<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response: %v %v", resp, err)
	}
	before := settledHeap()
	got, sum, peak := readSlowly(resp.Body, len(body))
	if got != len(body) || string(sum) != string(sha256Sum(body)) {
		t.Fatalf("got %d bytes (want %d), intact=%v", got, len(body), got == len(body))
	}
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("heap growth while a slow client read %d MiB%s: %.1f MiB", len(body)>>20, what, float64(growth)/(1<<20))
	if growth > 8<<20 {
		t.Fatalf("heap grew %.1f MiB while a slow client read a %d MiB response%s", float64(growth)/(1<<20), len(body)>>20, what)
	}
	c.Close()
	expectSlabsFreed(t, srv)
}

// slowBodyOrigin is a raw origin that reads each request's Content-Length body at about rate bytes per
// second, hashes it, and answers 200 with the hex SHA-256 as body. Its receive buffer is kept small so
// that the kernel does not absorb the test.
func slowBodyOrigin(t *testing.T, rate int) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReaderSize(c, 64<<10)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			h := sha256.New()
			buf := make([]byte, 64<<10)
			start := time.Now()
			var n int64
			for {
				k, err := req.Body.Read(buf)
				h.Write(buf[:k])
				n += int64(k)
				if err != nil {
					break
				}
				if ahead := time.Duration(n)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
			sum := fmt.Sprintf("%x", h.Sum(nil))
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(sum), sum)
		}
	})
}

// TestFastUploadHoldsClient: a client uploading 32 MiB as fast as it can to an origin that reads at
// 16 MiB/s must not make the proxy buffer the body (SPEC 3.3): the client's socket is held while the
// backend has io_buffer unread, and every byte reaches the origin intact.
func TestFastUploadHoldsClient(t *testing.T) {
	const size = 32 << 20
	body := bigBody(size)
	want := fmt.Sprintf("%x", sha256.Sum256(body))
	originAddr := slowBodyOrigin(t, 16<<20)
	forLoops(t, func(t *testing.T, loops int) {
		addr, srv := startProxy(t, loops, upstreamConfig("io_buffer = \"64KiB\"\n", originAddr))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.(*net.TCPConn).SetWriteBuffer(64 << 10)
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		before := settledHeap()
		done := make(chan error, 1)
		go func() {
			if _, err := fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size); err != nil {
				done <- err
				return
			}
			for off := 0; off < size; off += 1 << 20 {
				if _, err := c.Write(body[off : off+1<<20]); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		// Sample the heap until the answer is in: the proxy holds the body, if anywhere, until the origin
		// has read it, which is long after the client has written it all when nothing pushes back.
		stop := heapPeak()
		resp, got := readResponse(t, bufio.NewReader(c), false)
		peak := stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || string(got) != want {
			t.Fatalf("origin got a different body: %d %q", resp.StatusCode, got)
		}
		growth := int64(peak) - int64(before.HeapInuse)
		t.Logf("heap growth while a client uploaded 32 MiB to a slow origin: %.1f MiB", float64(growth)/(1<<20))
		if growth > 8<<20 {
			t.Fatalf("heap grew %.1f MiB while a fast client uploaded 32 MiB to a slow origin", float64(growth)/(1<<20))
		}
		c.Close()
		expectSlabsFreed(t, srv)
	})
}

// earlyOrigin reads a request head and about 1 MiB of its body, then, depending on mode, answers 413
// and closes ("answer"), closes without a word ("die"), or stops reading and holds the connection
// ("stall").
func earlyOrigin(t *testing.T, mode string) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReaderSize(c, 64<<10))
		if err != nil {
			return
		}
		_, _ = io.CopyN(io.Discard, req.Body, 1<<20)
		switch mode {
		case "answer":
			fmt.Fprintf(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!")
			time.Sleep(200 * time.Millisecond)
		case "stall":
			time.Sleep(5 * time.Second)
		}
	})
}

// TestHeldUploadEnds: a client held mid-upload is never left hanging and leaks nothing, whether the
// backend answers early, dies, or stops reading for idle_timeout.
func TestHeldUploadEnds(t *testing.T) {
	const size = 32 << 20
	body := bigBody(size)
	for _, tc := range []struct {
		mode   string
		status []int // acceptable answers; a reset before reading one is also acceptable, a hang is not
	}{
		{"answer", []int{413}},
		{"die", []int{502}},
		{"stall", []int{504}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			originAddr := earlyOrigin(t, tc.mode)
			addr, srv := startProxy(t, 1, upstreamConfig("io_buffer = \"64KiB\"\nidle_timeout = \"1s\"\n", originAddr))
			check := leakCheck(t, srv)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.(*net.TCPConn).SetWriteBuffer(64 << 10)
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			go func() {
				fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
				_, _ = c.Write(body)
			}()
			start := time.Now()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			switch {
			case err == nil:
				ok := false
				for _, s := range tc.status {
					ok = ok || resp.StatusCode == s
				}
				if !ok {
					t.Fatalf("status %d, want one of %v", resp.StatusCode, tc.status)
				}
			case time.Since(start) > 15*time.Second:
				t.Fatalf("client left hanging: %v", err)
			default:
				t.Logf("connection ended without an answer (%v): acceptable for a reset mid-upload", err)
			}
			c.Close()
			check()
		})
	}
}

// settledHeap returns the memory statistics after two collections: buffers that gnet and the test keep in
// sync.Pools survive one, and a baseline that counts them would hide a later test's growth when the
// pools hand them out again.
func settledHeap() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// TestSlowHTTP10ReaderOfChunkedResponse: a chunked response to an HTTP/1.0 client is de-chunked on the
// way (dechunkBody); a slow such client must hold the backend as any other.
func TestSlowHTTP10ReaderOfChunkedResponse(t *testing.T) {
	const size = 32 << 20
	body := bigBody(size)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	osrv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for off := 0; off < size; off += 256 << 10 {
				_, _ = w.Write(body[off : off+256<<10])
				_ = w.Flush()
			}
		})
	}}
	go osrv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = osrv.Shutdown() })
	addr, srv := startProxy(t, 1, upstreamConfig("io_buffer = \"64KiB\"\n", ln.Addr().String()))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(c, "GET /stream HTTP/1.0\r\n\r\n")
	br := bufio.NewReaderSize(c, 16<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || len(resp.TransferEncoding) != 0 {
		t.Fatalf("response: %v %v", resp, err)
	}
	before := settledHeap()
	got, sum, peak := readSlowly(resp.Body, size)
	if got != size || string(sum) != string(sha256Sum(body)) {
		t.Fatalf("got %d bytes (want %d), intact=%v", got, size, got == size)
	}
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("heap growth while a slow HTTP/1.0 client read a de-chunked 32 MiB: %.1f MiB", float64(growth)/(1<<20))
	// Without holding this grows by about 28 MiB. The race detector's own allocations along this path
	// reach 9 MiB, so its bound is wider; CI also runs this test without it (.ci/run).
	limit := int64(8 << 20)
	if raceEnabled {
		limit = 16 << 20
	}
	if growth > limit {
		t.Fatalf("heap grew %.1f MiB", float64(growth)/(1<<20))
	}
	c.Close()
	expectSlabsFreed(t, srv)
}

// serveConns listens on a loopback port and runs handle on its own goroutine for every connection,
// with a 64 KiB receive buffer so that the kernel does not absorb a test's stream; the connection is
// closed when handle returns. It returns the address.
func serveConns(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// heapPeak samples HeapInuse every 20 ms until the returned function is called, which returns the peak.
func heapPeak() (stop func() uint64) {
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var p uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				peak <- p
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				p = max(p, ms.HeapInuse)
			}
		}
	}()
	return func() uint64 { close(done); return <-peak }
}

// readSlowly reads r to its end or limit bytes at about 16 MiB/s (60 ms a MiB), as a slow client, and
// returns what it read, its SHA-256, and the peak HeapInuse sampled once a MiB.
func readSlowly(r io.Reader, limit int) (got int, sum []byte, peak uint64) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for got < limit {
		n, err := r.Read(buf)
		h.Write(buf[:n])
		got += n
		if err != nil {
			break
		}
		if got%(1<<20) < n {
			time.Sleep(60 * time.Millisecond)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	return got, h.Sum(nil), peak
}

// pathOrigin answers every request with a 200 whose body is body and whose X-Path header is the request
// target (plus a padding header of pad bytes), and counts the requests it answered.
func pathOrigin(t *testing.T, body []byte, pad int, count *atomic.Int64) string {
	t.Helper()
	padding := strings.Repeat("p", pad)
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		bw := bufio.NewWriterSize(c, 64<<10)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			count.Add(1)
			fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nX-Path: %s\r\nX-Pad: %s\r\nContent-Length: %d\r\n\r\n", req.RequestURI, padding, len(body))
			_, _ = bw.Write(body)
			if br.Buffered() == 0 {
				if err := bw.Flush(); err != nil {
					return
				}
			}
		}
	})
}

// TestPipelinedUnreadResponsesBounded guards against a client that pipelines requests and never reads
// making the proxy hold every response: one connection sending 10,000 GETs for 60 KB responses and
// reading nothing drove RSS from 10 MB to 769 MB, because the next pipelined request was taken whatever
// was queued for the client. Once about io_buffer of responses waits for a client, the proxy stops
// reading it (SPEC 3.3: about 2 × io_buffer per connection). Heap bound while the client does not read:
// the live heap (after collection) may grow by at most 16 MiB with io_buffer 64 KiB (60 KB responses),
// 4 MiB with io_buffer 16 KiB (13-byte responses): 2 × io_buffer, plus a response and the request bytes
// held back, is well under 1 MiB, the rest is slack for the loop's buffers and the test's own. Then the
// client reads: every response arrives complete and in order, and once it leaves the heap goes back down.
func TestPipelinedUnreadResponsesBounded(t *testing.T) {
	cases := []struct {
		name     string
		n        int
		body     []byte
		pad      int
		ioBuffer string
		bound    int64
	}{
		{"60 KB responses", 2000, bigBody(60000), 0, "64KiB", 16 << 20},
		{"13-byte responses", 40000, []byte("Hello, World!"), 150, "16KiB", 4 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var answered atomic.Int64
			originAddr := pathOrigin(t, tc.body, tc.pad, &answered)
			addr, srv := startProxy(t, 1, upstreamConfig(fmt.Sprintf("io_buffer = %q\n", tc.ioBuffer), originAddr))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.(*net.TCPConn).SetReadBuffer(64 << 10) // keep the kernel from absorbing the test
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			var reqs bytes.Buffer
			for i := 0; i < tc.n; i++ {
				fmt.Fprintf(&reqs, "GET /p/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
			}
			before := settledHeap()
			stop := heapPeak()
			wrote := make(chan error, 1)
			go func() { _, err := c.Write(reqs.Bytes()); wrote <- err }()

			// The client reads nothing until the proxy stops taking its requests (the origin has seen no
			// new one for 500 ms) or the origin has answered them all.
			last, since := answered.Load(), time.Now()
			for deadline := time.Now().Add(30 * time.Second); last < int64(tc.n) && time.Since(since) < 500*time.Millisecond; {
				if time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
				if n := answered.Load(); n != last {
					last, since = n, time.Now()
				}
			}
			held := int64(settledHeap().HeapInuse) - int64(before.HeapInuse)
			peak := int64(stop()) - int64(before.HeapInuse)
			t.Logf("the origin answered %d of %d pipelined requests while the client read nothing; proxy heap +%.1f MiB live (peak +%.1f MiB); bound +%.0f MiB",
				last, tc.n, float64(held)/(1<<20), float64(peak)/(1<<20), float64(tc.bound)/(1<<20))
			if held > tc.bound {
				t.Errorf("the heap grew %.1f MiB while a client pipelined %d requests and read nothing (%d answered by the origin); bound %.0f MiB",
					float64(held)/(1<<20), tc.n, last, float64(tc.bound)/(1<<20))
			}

			// Now the client reads everything: nothing lost, nothing out of order.
			br := bufio.NewReaderSize(c, 64<<10)
			for i := 0; i < tc.n; i++ {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d of %d: %v", i, tc.n, err)
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Path") != fmt.Sprintf("/p/%d", i) || !bytes.Equal(body, tc.body) {
					t.Fatalf("response %d of %d: %d for %q, %d body bytes (intact %v), err %v",
						i, tc.n, resp.StatusCode, resp.Header.Get("X-Path"), len(body), bytes.Equal(body, tc.body), err)
				}
			}
			if err := <-wrote; err != nil {
				t.Fatalf("writing the pipelined requests: %v", err)
			}
			c.Close()
			expectSlabsFreed(t, srv)
			after := int64(settledHeap().HeapInuse) - int64(before.HeapInuse)
			if after > tc.bound {
				t.Errorf("the heap is still %.1f MiB above its start after the client left", float64(after)/(1<<20))
			}
		})
	}
}

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
	expectSlabsFreed(t, srv)
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
			expectSlabsFreed(t, srv)
		})
	}
}
