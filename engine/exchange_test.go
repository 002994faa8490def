package engine

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// exchangeCounts reports, from the loops themselves, how many client connections hold an exchange and
// how many exchanges wait on the loops' free lists.
func exchangeCounts(t *testing.T, srv *Server) (held, free, clients int) {
	t.Helper()
	type counts struct{ held, free, clients int }
	ch := make(chan counts, 16)
	n := 0
	srv.loops.Range(func(_, _ any) bool { n++; return true })
	srv.eachLoop(func(ls *loopState) {
		var c counts
		for n := ls.clients.head; n != nil; n = n.next {
			cc := n.owner
			c.clients++
			if cc.exchange != nil {
				c.held++
			}
		}
		c.free = len(ls.freeEx)
		ch <- c
	})
	for i := 0; i < n; i++ {
		select {
		case c := <-ch:
			held += c.held
			free += c.free
			clients += c.clients
		case <-time.After(2 * time.Second):
			t.Fatal("a loop did not answer")
		}
	}
	return held, free, clients
}

// TestIdleConnectionsHoldNoExchange: a keep-alive connection between requests holds only its small
// connection state; the request's state (exchange) is kept from one request to the next while the
// connection is busy, pipelined requests included, and goes back to the loop at the first sweep that
// finds the connection idle, to be taken again by the next request of any connection.
func TestIdleConnectionsHoldNoExchange(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, srv := startProxy(t, loops, simpleConfig("", o))
		const n = 40
		conns := make([]net.Conn, n)
		readers := make([]*bufio.Reader, n)
		for i := range conns {
			conns[i], readers[i] = dial(t, addr)
			resp, body := roundTrip(t, conns[i], readers[i], "GET /a/"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "Hello, World!" {
				t.Fatalf("conn %d: %d %q", i, resp.StatusCode, body)
			}
		}
		// A connection with half a head sent holds no exchange either: one is taken only for a parsed head.
		half, _ := dial(t, addr)
		_, _ = io.WriteString(half, "GET /half HTTP/1.1\r\nHo")

		var held, free, clients int
		waitFor(t, "idle connections to give their exchanges back", func() bool {
			held, free, clients = exchangeCounts(t, srv)
			return held == 0 && clients == n+1
		})
		if free < 1 || free > n {
			t.Fatalf("%d exchanges on the free lists after %d sequential requests", free, n)
		}

		// The same connections go on: two pipelined requests on each, then one more after the first
		// answers came back.
		for i, c := range conns {
			_, _ = io.WriteString(c, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n")
			for _, want := range []string{"/p1", "/p2"} {
				resp, body := readResponse(t, readers[i], false)
				if resp.StatusCode != 200 || string(body) != "Hello, World!" || resp.Header.Get("X-Path") != want {
					t.Fatalf("conn %d, pipelined %s: %d %q %q", i, want, resp.StatusCode, body, resp.Header.Get("X-Path"))
				}
			}
		}
		for i, c := range conns {
			resp, body := roundTrip(t, c, readers[i], "GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "Hello, World!" || resp.Header.Get("X-Path") != "/again" {
				t.Fatalf("conn %d again: %d %q %q", i, resp.StatusCode, body, resp.Header.Get("X-Path"))
			}
		}
		_, _ = io.WriteString(half, "st: x\r\n\r\n")
		resp, body := readResponse(t, bufio.NewReader(half), false)
		if resp.StatusCode != 200 || string(body) != "Hello, World!" {
			t.Fatalf("the half-sent head, completed: %d %q", resp.StatusCode, body)
		}
		waitFor(t, "the exchanges back after the pipelined requests", func() bool {
			held, _, _ := exchangeCounts(t, srv)
			return held == 0
		})
	})
}

// ctxConn is a gnet.Conn with only a context, for calling a callback directly.
type ctxConn struct {
	gnet.Conn
	ctx any
}

func (c ctxConn) Context() any { return c.ctx }

// TestDrainOfIdleConnection: gnet reports a drained queue (OnDrained) for any connection, most often a
// client whose last response's tail went out after its exchange ended. Such a client holds no
// exchange, and the callback must not reach through it. (TestStreamingManySlowReaders met this as a
// crash: 100 slow readers between requests.)
func TestDrainOfIdleConnection(t *testing.T) {
	s := &Server{}
	ls := &loopState{s: s}
	for _, st := range []clientState{csHead, csClosing, csTunnel} {
		s.OnDrained(ctxConn{ctx: &clientConn{ls: ls, state: st}})
	}
	s.OnDrained(ctxConn{ctx: &backendConn{ls: ls, state: bsTunnel}})
	s.OnDrained(ctxConn{ctx: nil})
}
