package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// runSlow is -slow: conns connections each send req and read nothing for d, while the proxy (pid)
// holds what it could not send; it prints the growth of the proxy's resident memory, in all and per
// connection. With a large answer (-path "/huge?mb=64" on benchmarks/origin) that is what backpressure
// bounds: about 2 × io_buffer per connection plus, over TLS, the record buffers.
func runSlow(addr string, conf *tls.Config, req []byte, conns int, d time.Duration, pid int) {
	rss0 := rss(pid)
	var held []net.Conn
	for i := 0; i < conns; i++ {
		c, err := dial(addr, conf)
		if err != nil {
			fatal(err)
		}
		_ = c.SetDeadline(time.Time{})
		if _, err := c.Write(req); err != nil {
			fatal(err)
		}
		held = append(held, c)
	}
	time.Sleep(d) // the measured state is a time span of not reading: nothing to wait on
	rss1 := rss(pid)
	fmt.Printf("%d slow readers: proxy RSS %d -> %d KiB, %.0f KiB each\n", conns, rss0, rss1, float64(rss1-rss0)/float64(conns))
	for _, c := range held {
		_ = c.Close()
	}
}
