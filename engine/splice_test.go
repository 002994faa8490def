package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// onLoops runs fn on each loop's own goroutine, one loop after the other, and returns when all have run
// (loop state may be read only there).
func onLoops(t *testing.T, srv *Server, fn func(ls *loopState)) {
	t.Helper()
	srv.loops.Range(func(_, v any) bool {
		ls := v.(*loopState)
		done := make(chan struct{})
		err := ls.loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			fn(ls)
			close(done)
			return nil
		}))
		if err == nil {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("a loop did not answer in 5 s")
			}
		}
		return true
	})
}

// splices sums the response bodies the loops handed to gnet to splice.
func splices(t *testing.T, srv *Server) int64 {
	t.Helper()
	var n int64
	onLoops(t, srv, func(ls *loopState) { n += ls.splices })
	return n
}

// TestSpliceOrderAndFraming: large Content-Length bodies go from backend to client by splice(2), and
// everything around them stays in order: pipelined requests whose small responses are copied behind a
// spliced body still in the pipe, a spliced body right after another, a close after a spliced body
// (Connection: close, HTTP/1.0) that must not cut it short. Every body is checked byte for byte.
func TestSpliceOrderAndFraming(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startStreamOrigin(t)
		addr, srv := startProxy(t, loops, fmt.Sprintf("io_buffer = \"%dKiB\"\n", streamIOBuffer>>10)+faultConfig(0, "5s", o.addr))
		sizes := []int64{1<<20 + 7, 100, 3 << 20, 0, 200<<10 + 1, 2 << 20}
		c := slowDial(t, addr)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		var reqs []byte
		for i, n := range sizes {
			conn := ""
			if i == len(sizes)-1 {
				conn = "Connection: close\r\n"
			}
			reqs = fmt.Appendf(reqs, "GET /dl?size=%d HTTP/1.1\r\nHost: stream.test\r\n%s\r\n", n, conn)
		}
		if _, err := c.Write(reqs); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReaderSize(c, 64<<10)
		for i, n := range sizes {
			if i == 1 {
				time.Sleep(50 * time.Millisecond) // let the first body fill the pipe before reading on
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d (size %d): %v", i, n, err)
			}
			if resp.StatusCode != 200 || resp.ContentLength != n {
				t.Fatalf("response %d: status %d, length %d, want 200 and %d", i, resp.StatusCode, resp.ContentLength, n)
			}
			v := newPatternCheck()
			if _, err := io.Copy(v, resp.Body); err != nil || !v.intact(n) {
				t.Fatalf("response %d: read %d of %d bytes, first difference at %d, err %v", i, v.n, n, v.bad, err)
			}
		}
		if k, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("after Connection: close: read %q, %v; want EOF", k, err)
		}

		// HTTP/1.0: the proxy closes after the body; the close must wait for the pipe.
		c2 := slowDial(t, addr)
		defer c2.Close()
		_ = c2.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c2, "GET /dl?size=%d HTTP/1.0\r\nHost: stream.test\r\n\r\n", 5<<20)
		time.Sleep(50 * time.Millisecond)
		resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
		if err != nil {
			t.Fatal(err)
		}
		v := newPatternCheck()
		if _, err := io.Copy(v, resp.Body); err != nil || !v.intact(5<<20) {
			t.Fatalf("HTTP/1.0: read %d bytes, first difference at %d, err %v", v.n, v.bad, err)
		}
		// 1 MiB+7, 3 MiB, 200 KiB+1, 2 MiB and 5 MiB are over spliceMin; what came in the first read
		// with the head may already finish the 200 KiB one, so at least four.
		if got := splices(t, srv); got < 4 {
			t.Errorf("%d bodies spliced, want at least 4", got)
		}
	})
}

// TestSpliceStalledClient: a client that stops reading a spliced body must not hold its backend
// connection forever: idle_timeout after its queue last shrank, the proxy closes both sides.
func TestSpliceStalledClient(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startStreamOrigin(t)
		addr, srv := startProxy(t, loops, fmt.Sprintf("io_buffer = \"%dKiB\"\nidle_timeout = \"1s\"\n", streamIOBuffer>>10)+
			faultConfig(0, "5s", o.addr))
		c := slowDial(t, addr)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, _, err := download(c, fmt.Sprintf("/dl?size=%d", 64<<20))
		if err != nil {
			t.Fatal(err)
		}
		oc := o.nextRequest(t)
		start := time.Now()
		end := oc.waitEnd(t, "stalled client")
		if end.err == nil || end.written >= 64<<20 {
			t.Errorf("origin connection ended with %v after %s; want a failed write", end.err, mib(end.written))
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("the backend was closed %v after the request, before idle_timeout (1s)", d)
		}
		if splices(t, srv) != 1 {
			t.Errorf("the body was not spliced")
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); isTimeout(err) {
			t.Errorf("the client connection was still open 5 s after the backend closed")
		}
	})
}

// TestSpliceThenProxyAnswer: a response the proxy builds itself for the next pipelined request (here a
// 400 for a request with two Content-Lengths) is written the moment the spliced body has been read from
// the backend, while the pipe still holds its tail for a client that reads slowly: it must go out after
// the tail, never into the middle of the body.
func TestSpliceThenProxyAnswer(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startStreamOrigin(t)
		addr, srv := startProxy(t, loops, fmt.Sprintf("io_buffer = \"%dKiB\"\n", streamIOBuffer>>10)+faultConfig(0, "5s", o.addr))
		for round := 0; round < 5; round++ {
			c := slowDial(t, addr)
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			const size = 600<<10 + 3
			fmt.Fprintf(c, "GET /dl?size=%d HTTP/1.1\r\nHost: stream.test\r\n\r\n"+
				"GET /x HTTP/1.1\r\nHost: stream.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", size)
			br := bufio.NewReaderSize(c, 4<<10)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			v := newPatternCheck()
			// Slow and uneven: the socket keeps some room while the pipe holds bytes.
			if _, err := pacedCopy(v, resp.Body, 4<<20, size, 1500); err != nil || !v.intact(size) {
				t.Fatalf("round %d: read %d of %d bytes, first difference at %d, err %v", round, v.n, size, v.bad, err)
			}
			resp, err = http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 400 {
				t.Fatalf("round %d: after the body: %v, %v; want the 400", round, resp, err)
			}
			c.Close()
		}
		if splices(t, srv) < 5 {
			t.Errorf("the bodies were not spliced")
		}
	})
}

// TestSpliceMixedLoad: many clients at once, each looping over spliced downloads of random sizes read at
// full speed, read slowly, pipelined two at a time, or abandoned mid-body with a close or a reset. Every
// body read to the end must be intact; afterwards the proxy must still serve, hold no header slab, and
// keep no more pipes than its loops' pools allow (an abandoned transfer's pipe is closed, not leaked).
// (Goroutines and descriptors in general are not compared here: the idle pool and the in-process
// origin legitimately grow with 16 clients at once; the death tests check those one client at a time.)
func TestSpliceMixedLoad(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startStreamOrigin(t)
		addr, srv := startProxy(t, loops, fmt.Sprintf("io_buffer = \"%dKiB\"\n", streamIOBuffer>>10)+faultConfig(0, "5s", o.addr))
		warmUp(t, addr)
		pipesBefore := pipeFDs(t)
		var intact, aborted atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(2 * time.Second)
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, 7))
				for time.Now().Before(stop) {
					size := int64(70<<10 + rng.IntN(3<<20))
					c := slowDial(t, addr)
					_ = c.SetDeadline(time.Now().Add(15 * time.Second))
					br := bufio.NewReaderSize(c, 32<<10)
					n := 1
					if rng.IntN(4) == 0 {
						n = 2 // pipelined: the second request waits behind a spliced body
					}
					for i := 0; i < n; i++ {
						fmt.Fprintf(c, "GET /dl?size=%d HTTP/1.1\r\nHost: stream.test\r\n\r\n", size)
					}
					ok := true
					for i := 0; i < n && ok; i++ {
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							t.Errorf("size %d, response %d: %v", size, i, err)
							ok = false
							break
						}
						v := newPatternCheck()
						switch mode := rng.IntN(5); {
						case mode == 0: // abandon mid-body
							_, _ = io.CopyN(v, resp.Body, int64(rng.IntN(int(size))))
							if rng.IntN(2) == 0 {
								resetConn(c)
							}
							aborted.Add(1)
							ok = false
						case mode == 1: // slow reader
							if _, err := pacedCopy(v, resp.Body, 8<<20, size, 4<<10); err != nil || !v.intact(size) {
								t.Errorf("slow read of %d: got %d, first difference at %d, %v", size, v.n, v.bad, err)
								ok = false
							}
						default:
							if _, err := io.Copy(v, resp.Body); err != nil || !v.intact(size) {
								t.Errorf("read of %d: got %d, first difference at %d, %v", size, v.n, v.bad, err)
								ok = false
							}
						}
						if ok {
							intact.Add(1)
						}
					}
					c.Close()
				}
			}(uint64(w))
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		t.Logf("%d bodies intact, %d abandoned, %d spliced", intact.Load(), aborted.Load(), splices(t, srv))
		if splices(t, srv) < intact.Load()/2 {
			t.Errorf("only %d of %d bodies were spliced", splices(t, srv), intact.Load())
		}
		stillServes(t, addr)
		expectSlabsFreed(t, srv)
		if n, most := pipeFDs(t), pipesBefore+2*16*loops; n > most {
			t.Errorf("%d pipe descriptors open, at most %d expected (16 idle pipes per loop)", n, most)
		}
	})
}

// pipeFDs counts the process's open pipe descriptors.
func pipeFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list descriptors: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// TestSpliceIdleWhileBackendPauses: a spliced body whose backend pauses after the client has caught up
// must leave the loop idle. The pipe went full once (the client read nothing at first), so the client
// was watched for writability; once the pipe is empty that watch has to go, or level-triggered epoll
// reports the writable client on every poll and the loop spins until the backend sends again.
func TestSpliceIdleWhileBackendPauses(t *testing.T) {
	const first, rest = 16 << 20, 1 << 20 // first: more than the kernel buffers between the proxy and the client hold
	resume := make(chan struct{})
	oaddr := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", first+rest)
		var sent atomic.Int64
		_ = writePattern(c, first, 32<<10, false, &sent)
		<-resume
		_ = writePatternFrom(c, first, rest)
	})
	addr, srv := startProxy(t, 1, faultConfig(0, "5s", oaddr))
	c := slowDial(t, addr)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /dl HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(300 * time.Millisecond) // the pipe fills: the proxy watches the client for writability
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := newPatternCheck()
	if _, err := io.CopyN(v, resp.Body, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the pipe is empty, the backend silent
	before := cpuTime(t)
	time.Sleep(500 * time.Millisecond)
	busy := cpuTime(t) - before
	t.Logf("CPU while the backend paused: %v", busy)
	close(resume)
	if _, err := io.Copy(v, resp.Body); err != nil || !v.intact(first+rest) {
		t.Fatalf("read %d bytes, first difference at %d, %v", v.n, v.bad, err)
	}
	if splices(t, srv) != 1 {
		t.Fatalf("the body was not spliced")
	}
	if busy > 150*time.Millisecond {
		t.Errorf("the process used %v of CPU in 500 ms while the backend paused: the loop spins", busy)
	}
}

// writePatternFrom writes the stream's n bytes from off.
func writePatternFrom(w io.Writer, off, n int64) error {
	for end := off + n; off < end; {
		p := patternAt(off, int(min(end-off, 32<<10)))
		if _, err := w.Write(p); err != nil {
			return err
		}
		off += int64(len(p))
	}
	return nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSpliceCutShortLogsBytesSent: a spliced body that the backend cuts short is logged with the body
// bytes the client got, not those known when the splice began (the engine's count of the body stands
// still while gnet moves it). The origin declares 4 MiB, sends 1,000,000 bytes after a pause (so that
// the proxy has the head alone and splices the rest) and closes.
func TestSpliceCutShortLogsBytesSent(t *testing.T) {
	const sent = 1_000_000
	oaddr := serveConns(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
		chunk := []byte(strings.Repeat("x", 10_000))
		for i := 0; i < sent/len(chunk); i++ {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	})
	path := filepath.Join(t.TempDir(), "access.log")
	addr, srv := startProxy(t, 1, fmt.Sprintf(`
[log]
access = %q
access_format = "json"

[[upstream]]
name = "app"
servers = [ { addr = %q } ]

[[route]]
path_prefix = "/"
upstream = "app"
`, path, oaddr))
	c, br := dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /cut HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n != sent {
		t.Fatalf("client got %d body bytes ending with %v; want %d and a truncated body", n, err, sent)
	}
	if splices(t, srv) != 1 {
		t.Fatalf("the body was not spliced")
	}
	line := readLines(t, path, 1)[0]
	if want := fmt.Sprintf(`"status":200,"body_bytes_sent":%d,`, sent); !strings.Contains(line, want) {
		t.Errorf("access log line %s\nwant it to hold %s", line, want)
	}
}
