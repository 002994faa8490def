package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address host:port")
	n := flag.Int("n", 10000, "connections to open")
	path := flag.String("path", "/", "request path sent on each connection")
	workers := flag.Int("workers", 64, "connections opened in parallel")
	hold := flag.Duration("hold", 10*time.Minute, "longest time to hold the connections")
	timeout := flag.Duration("timeout", 10*time.Second, "dial plus first response timeout, per connection")
	flag.Parse()

	raiseFileLimit(uint64(*n) + 256)

	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *addr + "\r\nUser-Agent: idleconns\r\n\r\n")
	conns := make([]net.Conn, *n)
	var failed atomic.Int64
	var firstErr sync.Once
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < max(*workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				c, err := openOne(*addr, req, *timeout)
				if err != nil {
					failed.Add(1)
					firstErr.Do(func() { log.Printf("idleconns: connection %d: %v", i, err) })
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	fmt.Printf("ready ok=%d failed=%d\n", int64(*n)-failed.Load(), failed.Load())

	stdinEOF := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinEOF)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-stdinEOF:
	case <-sig:
	case <-time.After(*hold):
	}
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// openOne dials, sends req and reads one complete response, leaving the
// connection idle and open.
func openOne(addr string, req []byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		_ = c.Close()
		return nil, err
	}
	// A small reader: the response is tiny, and a big buffer per
	// connection would inflate this process, not the proxy measured.
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_ = c.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if resp.Close {
		_ = c.Close()
		return nil, fmt.Errorf("server closed the connection (Connection: close)")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// raiseFileLimit lifts RLIMIT_NOFILE toward want, as far as the hard limit
// allows.
func raiseFileLimit(want uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
