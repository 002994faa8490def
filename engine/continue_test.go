package engine

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// continueOrigin is a fasthttp origin that answers Expect: 100-continue itself: it accepts uploads to
// /accept and rejects the others with 417 before any body byte is sent.
func continueOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBody(ctx.PostBody()) },
		ContinueHandler: func(h *fasthttp.RequestHeader) bool {
			return strings.HasPrefix(string(h.RequestURI()), "/accept")
		},
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

func TestExpect100Continue(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := &origin{addr: continueOrigin(t)}
		addr, srv := startProxy(t, loops, simpleConfig("", o))

		// Accepted: the client waits for 100 Continue before it sends the body, as curl does.
		c, br := dial(t, addr)
		body := strings.Repeat("u", 10000)
		io.WriteString(c, "POST /accept HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10000\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("interim response: %q %v", line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("100 Continue not followed by an empty line: %q", blank)
		}
		io.WriteString(c, body)
		resp, got := readResponse(t, br, false)
		if resp.StatusCode != 200 || string(got) != body {
			t.Fatalf("accepted upload: %d, %d bytes", resp.StatusCode, len(got))
		}

		// Rejected: the final status comes back before any body, and the connection is closed after it,
		// since the unsent body can no longer be told apart from a next request.
		c2, br2 := dial(t, addr)
		io.WriteString(c2, "POST /reject HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10000\r\n\r\n")
		resp, err = http.ReadResponse(br2, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 417 {
			t.Fatalf("rejected upload: %d, want the origin's 417", resp.StatusCode)
		}
		_ = c2.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := bufio.NewReader(br2).ReadByte(); err != io.EOF {
			t.Fatalf("connection after a rejected 100-continue: %v, want EOF", err)
		}
		c.Close()
		if n := slabsInUseSettled(srv); n != 0 {
			t.Fatalf("%d slabs still in use", n)
		}
	})
}
