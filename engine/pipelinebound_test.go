package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

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
			if n := slabsInUseSettled(srv); n != 0 {
				t.Errorf("%d slabs in use after the client left", n)
			}
			after := int64(settledHeap().HeapInuse) - int64(before.HeapInuse)
			if after > tc.bound {
				t.Errorf("the heap is still %.1f MiB above its start after the client left", float64(after)/(1<<20))
			}
		})
	}
}
