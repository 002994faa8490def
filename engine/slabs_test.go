package engine

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// bigHead is a GET whose head is about size bytes: a browser's cookie jar (cookies of under 4 KB each)
// and one long header, as a visitor with many cookies sends.
func bigHead(path string, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: x\r\nX-Long: %s\r\n", path, strings.Repeat("v", 700))
	for i := 0; b.Len() < size-100; i++ {
		fmt.Fprintf(&b, "Cookie: c%d=%s\r\n", i, strings.Repeat("k", min(3500, size-100-b.Len())))
	}
	b.WriteString("\r\n")
	return b.String()
}

// waitLargeSlabs polls until n large slabs are lent (closes and ends reach the loops asynchronously).
func waitLargeSlabs(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for srv.LargeSlabsInUse() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d large header slabs lent, want %d", srv.LargeSlabsInUse(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLargeHeadsBorrowLargeSlabs: SPEC 3.3's two tiers. A head larger than header_buffer (8 KiB) borrows
// one of the preallocated large slabs and is served whether it comes in one write or in pieces; one
// larger than large_header_buffer (64 KiB) gets 431; with every large slab lent, a large head gets 431
// while ordinary heads are still served; a lent slab comes back when its exchange ends, also with a
// pipelined request behind the large head.
func TestLargeHeadsBorrowLargeSlabs(t *testing.T) {
	o := startOrigin(t, "a")
	addr, srv := startProxy(t, 1, simpleConfig("large_header_buffers = 2\n", o))

	for _, size := range []int{7600, 8400, 24 << 10, 60 << 10} {
		for _, pieces := range []int{1, 50} {
			t.Run(fmt.Sprintf("%d bytes in %d pieces", size, pieces), func(t *testing.T) {
				head := bigHead("/x", size)
				c, br := dial(t, addr)
				defer c.Close()
				step := (len(head) + pieces - 1) / pieces
				for i := 0; i < len(head); i += step {
					if _, err := io.WriteString(c, head[i:min(i+step, len(head))]); err != nil {
						t.Fatal(err)
					}
					if pieces > 1 {
						time.Sleep(time.Millisecond)
					}
				}
				resp, body := readResponse(t, br, false)
				if resp.StatusCode != 200 {
					t.Fatalf("%d-byte head: %d %q, want 200", len(head), resp.StatusCode, body)
				}
				// The connection goes on with an ordinary request, and the large slab is back.
				resp, _ = roundTrip(t, c, br, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
				if resp.StatusCode != 200 {
					t.Fatalf("request after a large head: %d", resp.StatusCode)
				}
				waitLargeSlabs(t, srv, 0)
			})
		}
	}

	t.Run("larger than large_header_buffer", func(t *testing.T) {
		c, br := dial(t, addr)
		defer c.Close()
		if _, err := io.WriteString(c, bigHead("/huge", 80<<10)); err != nil {
			t.Fatal(err)
		}
		resp, _ := readResponse(t, br, false)
		if resp.StatusCode != 431 {
			t.Fatalf("80 KiB head: %d, want 431", resp.StatusCode)
		}
		waitLargeSlabs(t, srv, 0)
	})

	t.Run("every large slab lent", func(t *testing.T) {
		// Two clients hold the two large slabs with heads that never end.
		var holders []net.Conn
		for i := 0; i < 2; i++ {
			c, _ := dial(t, addr)
			defer c.Close()
			head := bigHead("/hold", 20<<10)
			if _, err := io.WriteString(c, head[:len(head)-4]); err != nil {
				t.Fatal(err)
			}
			holders = append(holders, c)
		}
		waitLargeSlabs(t, srv, 2)
		c, br := dial(t, addr)
		defer c.Close()
		if _, err := io.WriteString(c, bigHead("/third", 12<<10)); err != nil {
			t.Fatal(err)
		}
		if resp, _ := readResponse(t, br, false); resp.StatusCode != 431 {
			t.Fatalf("a large head with no large slab free: %d, want 431", resp.StatusCode)
		}
		c2, br2 := dial(t, addr)
		defer c2.Close()
		if resp, _ := roundTrip(t, c2, br2, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("an ordinary head while the large slabs are lent: %d", resp.StatusCode)
		}
		for _, h := range holders {
			h.Close()
		}
		waitLargeSlabs(t, srv, 0)
	})

	t.Run("pipelined behind a large head", func(t *testing.T) {
		c, br := dial(t, addr)
		defer c.Close()
		if _, err := io.WriteString(c, bigHead("/one", 30<<10)+"GET /two HTTP/1.1\r\nHost: x\r\n\r\n"+bigHead("/three", 20<<10)); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"/one", "/two", "/three"} {
			resp, _ := readResponse(t, br, false)
			if resp.StatusCode != 200 || resp.Header.Get("X-Path") != want {
				t.Fatalf("pipelined %s: %d for %q", want, resp.StatusCode, resp.Header.Get("X-Path"))
			}
		}
		waitLargeSlabs(t, srv, 0)
	})
}
