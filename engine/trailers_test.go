package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchflow/codec"
)

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
