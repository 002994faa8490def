package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// runWindow is -window: conns keep-alive connections, each opened and sent 20 requests before the
// window, so that what a counter attached to the proxy sees between "ready"'s two stdin lines is
// requests only, no handshake or connection setup. It prints "ready", waits for a line, sends req on
// every connection one after the other for d, prints "requests N", waits for a line and closes.
func runWindow(addr string, conf *tls.Config, req []byte, conns int, d time.Duration) {
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	one := func(x client) error {
		_ = x.c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := x.c.Write(req); err != nil {
			return err
		}
		return readAnswer(x.br)
	}
	cs := make([]client, conns)
	for i := range cs {
		c, err := dial(addr, conf)
		if err != nil {
			fatal(err)
		}
		cs[i] = client{c, bufio.NewReaderSize(c, 16<<10)}
		for k := 0; k < 20; k++ {
			if err := one(cs[i]); err != nil {
				fatal(fmt.Errorf("warming connection %d: %w", i, err))
			}
		}
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	_, _ = in.ReadString('\n')
	var n, failed atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for _, x := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if one(x) != nil {
					failed.Add(1)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Println("requests", n.Load())
	if failed.Load() > 0 {
		fmt.Fprintf(os.Stderr, "hsload: %d connections failed in the window\n", failed.Load())
	}
	_, _ = in.ReadString('\n')
	for _, x := range cs {
		_ = x.c.Close()
	}
}
