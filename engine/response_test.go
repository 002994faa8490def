package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"switchflow/codec"
	"sync"
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
		expectSlabsFreed(t, srv)
	})
}

// floodResult is how an origin's flood of interim responses ended.
type floodResult struct {
	sent int64 // bytes written
	err  error // nil when it wrote all it meant to: nobody closed the connection
}

// interimFloodOrigin answers each request with "HTTP/1.1 100 Continue" heads back to back, 64 KiB of them
// a write, as fast as it can, until limit bytes are written or a write fails, and reports how it ended.
func interimFloodOrigin(t *testing.T, limit int64) (string, chan floodResult) {
	t.Helper()
	done := make(chan floodResult, 4)
	batch := bytes.Repeat([]byte("HTTP/1.1 100 Continue\r\n\r\n"), (64<<10)/25)
	addr := serveConns(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		var sent int64
		for sent < limit {
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Write(batch)
			sent += int64(n)
			if err != nil {
				done <- floodResult{sent, err}
				return
			}
		}
		done <- floodResult{sent, nil}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c) // hold the connection until the proxy closes it
	})
	return addr, done
}

// TestInterimResponsesBounded guards against a backend's interim (1xx) responses being relayed or queued
// without bound: a backend flooding "100 Continue" heads to a client that reads nothing held GBs of RSS.
// Interim responses count against the same queue bound as the rest of the response, and a backend that
// sends more than 8 of them for one request has failed: its connection is closed and the client gets 502.
// A few interim responses before the final one (100, 102, 103 with a Link header) still pass, and the
// final response arrives intact.
func TestInterimResponsesBounded(t *testing.T) {
	const final = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	interims := []string{
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 102 Processing\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n",
	}
	// readFinal reads responses until a final (non-1xx) one, counting the interim ones; it gives up past
	// limit interim responses.
	readFinal := func(t *testing.T, br *bufio.Reader, limit int) (*http.Response, []byte, int) {
		t.Helper()
		for n := 0; ; n++ {
			resp, body := readResponse(t, br, false)
			if resp.StatusCode >= 200 || resp.StatusCode == 101 {
				return resp, body, n
			}
			if n >= limit {
				return resp, body, n + 1
			}
		}
	}

	t.Run("a: three interim responses, then the final one", func(t *testing.T) {
		for _, split := range []bool{false, true} {
			o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
				if !split {
					return writeOr(c, strings.Join(interims, "")+final)
				}
				for _, h := range append(interims, final) {
					if !writeOr(c, h) {
						return false
					}
					time.Sleep(5 * time.Millisecond)
				}
				return true
			})
			addr, _ := startProxy(t, 1, faultConfig(0, "2s", o.addr))
			c, br := dial(t, addr)
			for i := 0; i < 3; i++ {
				if _, err := io.WriteString(c, "GET /hints HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, body, n := readFinal(t, br, 8)
				if resp.StatusCode != 200 || string(body) != "hello" || n > 3 {
					t.Fatalf("split=%v request %d: %d %q after %d interim responses, want 200 \"hello\" after at most 3",
						split, i, resp.StatusCode, body, n)
				}
			}
		}
	})

	t.Run("a2: relayed with their headers to HTTP/1.1 clients, to no HTTP/1.0 client", func(t *testing.T) {
		o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
			return writeOr(c, strings.Join(interims, "")+final)
		})
		addr, _ := startProxy(t, 1, faultConfig(0, "2s", o.addr))
		for _, minor := range []int{1, 0} {
			c, br := dial(t, addr)
			if _, err := fmt.Fprintf(c, "GET /hints HTTP/1.%d\r\nHost: x\r\n\r\n", minor); err != nil {
				t.Fatal(err)
			}
			var statuses []int
			var link string
			for {
				resp, body := readResponse(t, br, false)
				statuses = append(statuses, resp.StatusCode)
				if resp.StatusCode == 103 {
					link = resp.Header.Get("Link")
				}
				if resp.StatusCode >= 200 {
					if string(body) != "hello" {
						t.Fatalf("HTTP/1.%d: final body %q", minor, body)
					}
					break
				}
			}
			want := []int{100, 102, 103, 200}
			if minor == 0 {
				want = []int{200}
			}
			if fmt.Sprint(statuses) != fmt.Sprint(want) || (minor == 1 && link != "</style.css>; rel=preload; as=style") {
				t.Fatalf("HTTP/1.%d client got %v (103 Link %q), want %v with the Link header", minor, statuses, link, want)
			}
			c.Close()
		}
	})

	t.Run("b: a flood to a client that reads nothing", func(t *testing.T) {
		const limit = 24 << 20
		originAddr, done := interimFloodOrigin(t, limit)
		addr, srv := startProxy(t, 1, upstreamConfig("io_buffer = \"64KiB\"\n", originAddr))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.(*net.TCPConn).SetReadBuffer(64 << 10) // keep the kernel from absorbing the test
		before := settledHeap()
		stop := heapPeak()
		if _, err := io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		var res floodResult
		select {
		case res = <-done:
		case <-time.After(15 * time.Second):
			stop()
			t.Fatalf("the origin's flood neither ended nor was cut off within 15s")
		}
		held := int64(settledHeap().HeapInuse) - int64(before.HeapInuse)
		growth := int64(stop()) - int64(before.HeapInuse)
		t.Logf("origin wrote %.1f MiB of 100 Continue heads (%v); proxy heap peak +%.1f MiB, +%.1f MiB live after",
			float64(res.sent)/(1<<20), res.err, float64(growth)/(1<<20), float64(held)/(1<<20))
		// Bound: about 2 × io_buffer per connection by rule; 8 MiB leaves room for the loop's read buffers
		// and the collector's lag, and is a third of the flood.
		if growth > 8<<20 || held > 8<<20 {
			t.Errorf("proxy heap grew %.1f MiB (peak), %.1f MiB live, while a backend flooded interim responses to a client reading nothing; bound 8 MiB",
				float64(growth)/(1<<20), float64(held)/(1<<20))
		}
		if res.err == nil {
			t.Errorf("the proxy took all %.1f MiB of interim responses and kept the backend connection: it must close it after 8",
				float64(res.sent)/(1<<20))
		}
		c.Close()
		expectSlabsFreed(t, srv)
	})

	t.Run("c: a flood to a client that reads", func(t *testing.T) {
		originAddr, done := interimFloodOrigin(t, 24<<20)
		addr, _ := startProxy(t, 1, upstreamConfig("", originAddr))
		c, br := dial(t, addr)
		if _, err := io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, body, n := readFinal(t, br, 8)
		if resp.StatusCode != 502 || n > 8 {
			t.Errorf("a backend flooding interim responses: %d %q after %d interim responses relayed, want 502 after at most 8",
				resp.StatusCode, body[:min(len(body), 80)], n)
		}
		c.Close()
		select {
		case res := <-done:
			if res.err == nil {
				t.Errorf("the backend connection stayed open through %.1f MiB of interim responses", float64(res.sent)/(1<<20))
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the flooding backend's connection was not closed within 10s")
		}
	})
}

// TestLateBytesPastResponseEndNeverAnswerTheNextRequest guards against bytes a backend sends past the end
// of a response becoming the next client's response. A 204 or a 304 with "Content-Length: 6", or a HEAD
// answered with "Content-Length: 6", ends at its head; a backend that means the 6 bytes anyway sends them
// after it, and they may arrive late: here they arrive only when the next request is on the same backend
// connection, and they are a whole fake response, "EVIL". (TestFaultExtraBytesAfterResponse and
// TestFaultBodyAfterHeadResponse cover such bytes arriving with the response, or while the connection is
// idle.) Whatever request follows, on the same client connection or another, must get the backend's real
// answer, never EVIL: a connection whose response declared a body it must not have is not reused.
func TestLateBytesPastResponseEndNeverAnswerTheNextRequest(t *testing.T) {
	const (
		fake = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
		good = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"
	)
	cases := []struct {
		name, request, answer string
		status                int
	}{
		{"204 with Content-Length", "GET /204 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n", 204},
		{"304 with Content-Length", "GET /304 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nContent-Length: 6\r\n\r\n", 304},
		{"HEAD with Content-Length", "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", 200},
	}
	forLoops(t, func(t *testing.T, loops int) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var mu sync.Mutex
				owed := map[net.Conn]bool{} // connections whose backend still "owes" the 6 bytes
				o := startRawOrigin(t, func(c net.Conn, n int64, req *rawReq) bool {
					mu.Lock()
					late := owed[c]
					delete(owed, c)
					mu.Unlock()
					if late && !writeOr(c, fake) { // the 6 bytes, arriving late, and more
						return false
					}
					if req.method == "HEAD" || req.target == "/204" || req.target == "/304" {
						mu.Lock()
						owed[c] = true
						mu.Unlock()
						return writeOr(c, tc.answer)
					}
					return writeOr(c, good)
				})
				addr, srv := startProxy(t, loops, faultConfig(0, "2s", o.addr))
				check := leakCheck(t, srv)
				c, br := dial(t, addr)
				for round := 0; round < 2; round++ {
					resp, body := roundTrip(t, c, br, tc.request)
					if resp.StatusCode != tc.status || len(body) != 0 {
						t.Fatalf("round %d: %s: %d %q, want %d without a body", round, tc.name, resp.StatusCode, body, tc.status)
					}
					expectGood(t, c, br, 2, "on the same client after a "+tc.name)
				}
				resp, body := roundTrip(t, c, br, tc.request)
				if resp.StatusCode != tc.status || len(body) != 0 {
					t.Fatalf("%s: %d %q", tc.name, resp.StatusCode, body)
				}
				c2, br2 := dial(t, addr)
				expectGood(t, c2, br2, 2, "on another client after a "+tc.name)
				c.Close()
				c2.Close()
				check()
			})
		}
	})
}

// The chunked body of issue 21: trailer fields that must never travel in trailers between kept ones.
const (
	trailerBody = "5\r\nhello\r\n6\r\n world\r\n0\r\n" +
		"X-Ok: 1\r\nContent-Length: 5\r\nHost: evil\r\nTransfer-Encoding: chunked\r\nX-Also-Ok: 2\r\n\r\n"
	trailerBodyFiltered = "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Ok: 1\r\nX-Also-Ok: 2\r\n\r\n"
)

// readChunkedRaw reads one chunked body from br byte by byte, returning its bytes as they came.
func readChunkedRaw(br *bufio.Reader) ([]byte, error) {
	var d codec.ChunkedReader
	var raw []byte
	for !d.Done() {
		b, err := br.ReadByte()
		if err != nil {
			return raw, err
		}
		raw = append(raw, b)
		if _, _, _, err := d.Next([]byte{b}); err != nil {
			return raw, err
		}
	}
	return raw, nil
}

// readHeadRaw reads a message head up to its empty line.
func readHeadRaw(br *bufio.Reader) (string, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return head.String(), err
		}
		head.WriteString(line)
		if line == "\r\n" {
			return head.String(), nil
		}
	}
}

// writeInPieces writes s in pieces of step bytes (all of it when step <= 0), pausing between them so
// that each piece is a read of its own at the proxy.
func writeInPieces(w io.Writer, s string, step int) error {
	if step <= 0 {
		step = len(s)
	}
	for i := 0; i < len(s); i += step {
		if i > 0 {
			time.Sleep(time.Millisecond)
		}
		if _, err := io.WriteString(w, s[i:min(i+step, len(s))]); err != nil {
			return err
		}
	}
	return nil
}

// TestRequestTrailersFiltered: the origin gets a chunked request body whose trailer section lacks the
// fields that must not travel in trailers (Content-Length, Transfer-Encoding, Host) and keeps the rest,
// however the body's bytes arrive: with the head (in the client's slab), after it, one byte at a time,
// or split anywhere, a trailer line straddling the slab and gnet's buffer included.
func TestRequestTrailersFiltered(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		origin := serveConns(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for {
				if _, err := readHeadRaw(br); err != nil {
					return
				}
				body, err := readChunkedRaw(br)
				if err != nil {
					return
				}
				if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
					return
				}
			}
		})
		addr, _ := startProxy(t, loops, upstreamConfig("", origin))
		head := "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		raw := head + trailerBody
		check := func(t *testing.T, c net.Conn, br *bufio.Reader, how string) {
			t.Helper()
			resp, body := readResponse(t, br, false)
			if resp.StatusCode != 200 || string(body) != trailerBodyFiltered {
				t.Fatalf("%s: %d, the origin got\n%q\nwant\n%q", how, resp.StatusCode, body, trailerBodyFiltered)
			}
		}
		c, br := dial(t, addr)
		for _, step := range []int{0, 1, 2, 3, 5, 7, 16} {
			if err := writeInPieces(c, raw, step); err != nil {
				t.Fatal(err)
			}
			check(t, c, br, "pieces of "+strconv.Itoa(step))
		}
		// Split once at every position from the last chunk on, on a fresh connection each time (a dial:
		// the second part may land in gnet's buffer while the first waits in the slab) and on a kept one.
		from := len(head) + strings.Index(trailerBody, "0\r\n")
		for at := from; at < len(raw); at++ {
			for _, fresh := range []bool{true, false} {
				cc, cbr := c, br
				if fresh {
					cc, cbr = dial(t, addr)
				}
				if _, err := io.WriteString(cc, raw[:at]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
				if _, err := io.WriteString(cc, raw[at:]); err != nil {
					t.Fatal(err)
				}
				check(t, cc, cbr, fmt.Sprintf("split at %d (fresh %v)", at, fresh))
				if fresh {
					cc.Close()
				}
			}
		}
	})
}

// TestResponseTrailersFiltered: a client gets a chunked response whose trailer section lacks the fields
// that must not travel in trailers, whether the head is rebuilt or forwarded as it came (a Date: nothing
// to change), and however the origin's bytes arrive.
func TestResponseTrailersFiltered(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		origin := serveConns(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				q := req.URL.Query()
				step, _ := strconv.Atoi(q.Get("step"))
				head := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
				if q.Get("date") != "" {
					head += "Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n"
				}
				resp := head + "\r\n" + trailerBody
				if at := q.Get("at"); at != "" {
					n, _ := strconv.Atoi(at)
					n = min(n, len(resp))
					if _, err := io.WriteString(c, resp[:n]); err != nil {
						return
					}
					time.Sleep(time.Millisecond)
					resp = resp[n:]
				}
				if err := writeInPieces(c, resp, step); err != nil {
					return
				}
			}
		})
		addr, _ := startProxy(t, loops, upstreamConfig("", origin))
		c, br := dial(t, addr)
		get := func(t *testing.T, query string) {
			t.Helper()
			if _, err := io.WriteString(c, "GET /t?"+query+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			head, err := readHeadRaw(br)
			if err != nil || !strings.HasPrefix(head, "HTTP/1.1 200 ") || !strings.Contains(head, "Transfer-Encoding: chunked\r\n") {
				t.Fatalf("%s: head %q, %v", query, head, err)
			}
			body, err := readChunkedRaw(br)
			if err != nil || string(body) != trailerBodyFiltered {
				t.Fatalf("%s: the client got\n%q (%v)\nwant\n%q", query, body, err, trailerBodyFiltered)
			}
		}
		for _, date := range []string{"", "&date=1"} {
			for _, step := range []int{0, 1, 2, 3, 5, 7, 16} {
				get(t, "step="+strconv.Itoa(step)+date)
			}
			for at := 0; at < 60+len(trailerBody); at++ {
				get(t, "at="+strconv.Itoa(at)+date)
			}
		}
	})
}

// TestTrailerSectionTooLong: a trailer section past codec.MaxTrailerBytes is refused like any bad chunked
// framing: a request gets 400 and the origin never a complete request; a response not yet started is a
// 502.
func TestTrailerSectionTooLong(t *testing.T) {
	long := "0\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 9) + "\r\n"
	origin := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			head, err := readHeadRaw(br)
			if err != nil {
				return
			}
			if strings.HasPrefix(head, "POST") {
				if _, err := readChunkedRaw(br); err != nil {
					return // the proxy closed the half-sent request
				}
				_, _ = io.WriteString(c, okResponse)
				continue
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+long); err != nil {
				return
			}
		}
	})
	addr, _ := startProxy(t, 1, upstreamConfig("", origin))
	c, br := dial(t, addr)
	resp, _ := roundTrip(t, c, br, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+long)
	if resp.StatusCode != 400 {
		t.Errorf("request with a %d-byte trailer section: %d, want 400", len(long)-3, resp.StatusCode)
	}
	c, br = dial(t, addr)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	head, err := readHeadRaw(br)
	if err != nil {
		t.Fatalf("response with a long trailer section: %v", err)
	}
	if strings.HasPrefix(head, "HTTP/1.1 200") {
		// The head went out before the trailers came: the client sees the body cut short.
		if body, err := readChunkedRaw(br); err == nil {
			t.Fatalf("response with a %d-byte trailer section reached the client whole: %q", len(long)-3, body)
		}
	} else if !strings.HasPrefix(head, "HTTP/1.1 502") {
		t.Fatalf("response with a long trailer section: %q, want 502 or a cut body", head)
	}
}
