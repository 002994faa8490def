package engine

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// What a TLS client that stops reading, or keeps uploading, costs the proxy (tlsconn.go, tlsrec):
// SPEC 3.3's bound for a plain client, plus the TLS record buffers.

// countingOrigin answers GET with size bytes, written as fast as the proxy takes them, and reads a
// POST's body only after readAfter is closed; written counts the bytes its connections have sent.
type countingOrigin struct {
	addr      string
	written   atomic.Int64
	readAfter chan struct{}
}

func startCountingOrigin(t *testing.T, size int) *countingOrigin {
	co := &countingOrigin{readAfter: make(chan struct{})}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	co.addr = serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.Method == http.MethodPost {
				<-co.readAfter
				n, _ := io.Copy(io.Discard, req.Body)
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d", len(strconv.FormatInt(n, 10)), n)
				continue
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			for left := size; left > 0; {
				k, err := c.Write(chunk[:min(left, len(chunk))])
				co.written.Add(int64(k))
				if err != nil {
					return
				}
				left -= k
			}
		}
	})
	return co
}

// settle polls f until its value has not changed for a while (the streams have stopped against full
// buffers) and returns it.
func settle(t *testing.T, f func() int64) int64 {
	t.Helper()
	last, since := f(), time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for time.Since(since) < 500*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatal("the streams did not stop")
		}
		time.Sleep(20 * time.Millisecond)
		if v := f(); v != last {
			last, since = v, time.Now()
		}
	}
	return last
}

// TestTLSSlowReadersAndUploadersBounded: TLS clients that ask for 32 MiB and read nothing, and TLS
// clients that upload 32 MiB to an origin that reads nothing, cost the proxy a bounded heap each once
// every stream has stopped against full buffers: the plain client's queue (about 2 × io_buffer, SPEC
// 3.3; a TLS body cannot be spliced, so a slow reader's queue is in the heap) plus the TLS record
// buffers (crypto/tls's input record buffer and its state). The heap is the test's too: its clients' TLS state is in the baseline, taken after their
// handshakes, but a blocked client writer holds a record buffer of crypto/tls's pool, so the uploaders'
// figure has one 16 KiB record of the test's own per client in it.
func TestTLSSlowReadersAndUploadersBounded(t *testing.T) {
	const ioBuffer = 64 << 10
	plainRead, plainUp := streamCosts(t, false)
	tlsRead, tlsUp := streamCosts(t, true)
	t.Logf("heap per stopped stream, io_buffer 64 KiB: slow reader plain %d KiB, TLS %d KiB; fast uploader plain %d KiB, TLS %d KiB",
		plainRead>>10, tlsRead>>10, plainUp>>10, tlsUp>>10)
	// crypto/tls's input record buffer (one record: about 17 KiB) and its connection state; a blocked
	// writer of the test holds one more record buffer of its own (testRecord).
	const recordBuffers, testRecord = 32 << 10, 17 << 10
	if tlsRead > 2*ioBuffer+recordBuffers {
		t.Errorf("a slow TLS reader costs %d KiB of heap, over 2 × io_buffer + %d KiB (a plain one: %d KiB, its body spliced)",
			tlsRead>>10, recordBuffers>>10, plainRead>>10)
	}
	// A plain uploader measures 2–2.6 × io_buffer here (the client's unread bytes in gnet's ring buffer,
	// which grows by doubling, and the backend's queue), and varies by tens of KiB between runs with
	// where the streams stop: the bound is on the TLS one's total.
	if tlsUp > 3*ioBuffer+recordBuffers+testRecord {
		t.Errorf("a fast TLS uploader costs %d KiB of heap, over 3 × io_buffer + %d KiB (a plain one: %d KiB)",
			tlsUp>>10, (recordBuffers+testRecord)>>10, plainUp>>10)
	}
}

// streamCosts runs 32 slow readers, then 32 fast uploaders, through a fresh proxy (io_buffer 64 KiB)
// over TLS or plain HTTP, and returns the heap each costs once the streams have stopped.
func streamCosts(t *testing.T, useTLS bool) (reader, uploader int64) {
	const size, n = 32 << 20, 32
	co := startCountingOrigin(t, size)
	ts := startTLSProxy(t, 1, fmt.Sprintf("io_buffer = %q", "64KiB"), "", upstreamConfig("", co.addr))
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	dialAll := func() []client {
		cs := make([]client, n)
		for i := range cs {
			addr := ts.plain
			if useTLS {
				addr = ts.tlsAddr
			}
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Close() })
			_ = raw.(*net.TCPConn).SetReadBuffer(64 << 10)
			_ = raw.(*net.TCPConn).SetWriteBuffer(64 << 10)
			_ = raw.SetDeadline(time.Now().Add(60 * time.Second))
			if !useTLS {
				cs[i] = client{raw, bufio.NewReader(raw)}
				continue
			}
			c := tls.Client(raw, ts.clientConfig("a.example"))
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			cs[i] = client{c, bufio.NewReader(c)}
		}
		return cs
	}
	perClient := func(before, after uint64) int64 { return (int64(after) - int64(before)) / n }

	readers := dialAll()
	before := settledHeap()
	for _, c := range readers {
		fmt.Fprintf(c.c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	settle(t, co.written.Load)
	reader = perClient(before.HeapInuse, settledHeap().HeapInuse)
	for _, c := range readers {
		c.c.Close()
	}
	if n := slabsInUseSettled(ts.srv); n != 0 {
		t.Fatalf("%d header slabs in use", n)
	}

	uploaders := dialAll()
	before = settledHeap()
	var sent atomic.Int64
	var wg sync.WaitGroup
	body := bigBody(1 << 20)
	for _, c := range uploaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(c.c, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size)
			for left := size; left > 0; left -= len(body) {
				k, err := c.c.Write(body)
				sent.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
	}
	settle(t, sent.Load)
	uploader = perClient(before.HeapInuse, settledHeap().HeapInuse)
	close(co.readAfter)
	for _, c := range uploaders {
		resp, b := readResponse(t, c.br, false)
		if resp.StatusCode != 200 || string(b) != strconv.Itoa(size) {
			t.Fatalf("upload: %d %q", resp.StatusCode, b)
		}
	}
	wg.Wait()
	return reader, uploader
}
