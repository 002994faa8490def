package engine

import (
	"fmt"
	"io"
	"math/rand"
	"net"
	"sync"
	"testing"
	"time"
)

// TestClientGoneDuringWrite is named for a crash found by the benchmark harness: gnet closes a client
// whose Write fails inside the Write call, so OnClose ran under the response loop, which then went on
// with a client whose slab was already back in the pool (slice bounds out of range in finishClient).
// Clients that read part of a 1 MiB response and hang up, many times over, must leave the proxy
// serving and every slab returned.
func TestClientGoneDuringWrite(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, srv := startProxy(t, loops, simpleConfig("", o))
		var wg sync.WaitGroup
		deadline := time.Now().Add(2 * time.Second)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				r := rand.New(rand.NewSource(int64(g)))
				for time.Now().Before(deadline) {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						return
					}
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					for k := 0; k < 1+r.Intn(3); k++ {
						fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
						io.CopyN(io.Discard, c, int64(r.Intn(1000000))) // always short of the response: a partial read, then a hang-up
					}
					if tc, ok := c.(*net.TCPConn); ok && r.Intn(2) == 0 {
						_ = tc.SetLinger(0) // a reset, so the proxy's next write fails at once
					}
					c.Close()
				}
			}(g)
		}
		wg.Wait()
		c, br := dial(t, addr)
		resp, body := roundTrip(t, c, br, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 || len(body) != len(oneMiB) {
			t.Fatalf("after the hang-ups: %d, %d bytes", resp.StatusCode, len(body))
		}
		c.Close()
		expectSlabsFreed(t, srv)
	})
}
