package engine

// An upload that arrived with its head goes to the backend in one write: the head and the body bytes,
// whether they sit in the header slab or still in gnet's buffer, leave in one sendmsg and so in one TCP
// segment. The test reads the backend socket's count of data segments received (TCP_INFO's
// tcpi_data_segs_in), which one write per piece (head, slab, buffer) makes 2 or 3.

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// segmentOrigin is a rawOrigin (smuggling_test.go) that, for every request it reads whole, sends on
// segs the number of data segments its connection had received by then.
func segmentOrigin(t *testing.T) (string, <-chan uint32) {
	t.Helper()
	segs := make(chan uint32, 16)
	o := startRawOrigin(t, func(c net.Conn, _ int64, _ *rawReq) bool {
		segs <- dataSegsIn(c)
		_, err := io.WriteString(c, okResponse)
		return err == nil
	})
	return o.addr, segs
}

// dataSegsIn is the number of segments with data that c has received (0 when it cannot be read).
func dataSegsIn(c net.Conn) uint32 {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0
	}
	var n uint32
	_ = rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = info.Data_segs_in
		}
	})
	return n
}

func TestUploadHeadAndBodyInOneWrite(t *testing.T) {
	backend, segs := segmentOrigin(t)
	// header_buffer 1 KiB: a 5,000-byte body is partly in the slab and partly in gnet's buffer.
	for _, hb := range []string{"8KiB", "1KiB"} {
		t.Run("header_buffer="+hb, func(t *testing.T) {
			addr, _ := startProxy(t, 1, upstreamConfig(fmt.Sprintf("header_buffer = %q\n", hb), backend))
			c, br := dial(t, addr)
			for i, body := range []string{`{"a":1}`, strings.Repeat("u", 5000)} {
				// Head and body in one write, as clients send a small upload.
				raw := fmt.Sprintf("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				resp, got := roundTrip(t, c, br, raw)
				if resp.StatusCode != 200 || string(got) != "ok" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, got)
				}
				var n uint32
				select {
				case n = <-segs:
				case <-time.After(5 * time.Second):
					t.Fatal("backend saw no request")
				}
				// The backend connection is pooled: its count grows by one per request.
				if want := uint32(i + 1); n != want {
					t.Errorf("request %d (%d-byte body): backend connection has %d data segments in, want %d (one write per request)", i, len(body), n, want)
				}
			}
		})
	}
}
