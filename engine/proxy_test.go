package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"switchflow/config"
	"switchflow/internal/sockettest"
)

// origin is a real fasthttp server on a loopback socket that records what reached it.
type origin struct {
	addr     string
	name     string
	hits     atomic.Int64
	mu       sync.Mutex
	lastHead []byte
	srv      *fasthttp.Server
	ln       net.Listener
}

func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

var oneMiB = bigBody(1 << 20)

func startOrigin(t *testing.T, name string) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &origin{addr: ln.Addr().String(), name: name, ln: ln}
	// ReadBufferSize: request heads up to large_header_buffer (64 KiB) reach it whole.
	o.srv = &fasthttp.Server{Handler: o.handle, DisableHeaderNamesNormalizing: true, ReadBufferSize: 80 << 10}
	go o.srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = o.srv.Shutdown() })
	return o
}

func (o *origin) handle(ctx *fasthttp.RequestCtx) {
	o.hits.Add(1)
	o.mu.Lock()
	o.lastHead = append(o.lastHead[:0], ctx.Request.Header.Header()...)
	o.mu.Unlock()
	ctx.Response.Header.Set("X-Origin", o.name)
	path := string(ctx.Path())
	switch {
	case path == "/big":
		ctx.SetBody(oneMiB)
	case path == "/chunked":
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			for i := 0; i < 16; i++ {
				_, _ = w.Write(oneMiB[i*4096 : (i+1)*4096])
				_ = w.Flush()
			}
		})
	case path == "/echo":
		ctx.SetBody(ctx.PostBody())
	case path == "/slow":
		ms, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("ms")))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		ctx.SetBodyString("slow")
	default:
		ctx.SetBodyString("Hello, World!")
		ctx.Response.Header.Set("X-Path", string(ctx.RequestURI()))
	}
}

func (o *origin) head() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.lastHead)
}

// inherit hands sk's sockets to the engine (Server.Inherit, the way a binary upgrade passes its
// listeners), which serves them from Serve on and closes them when it ends: serveEngineWith's prepare.
// The port is the engine's from the moment the test knows it (internal/sockettest).
func inherit(sk *sockettest.Set) func(*Server) {
	return func(srv *Server) {
		sk.Handed()
		srv.Inherit(&Listeners{Listen: sk.Listen, TLS: sk.TLS, Admin: sk.Admin})
	}
}

// refusedAddr is a loopback address where connections are refused, for a dead backend: a socket bound to
// it and never listening holds the port for the test. A port found free and closed again may be handed
// to the next listener (the proxy's own, which then proxies to itself until max_connections answers 503).
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// startProxy runs an engine in process on a fresh loopback port with the given TOML (the [server] listen
// and loops keys are filled in) and stops it when the test ends.
func startProxy(t *testing.T, loops int, toml string) (string, *Server) {
	t.Helper()
	return startProxyWith(t, loops, sockettest.NewSet(t), toml)
}

// startProxyWith is startProxy for a toml that names sockets of sk (an [admin] listen).
func startProxyWith(t *testing.T, loops int, sk *sockettest.Set, toml string) (string, *Server) {
	t.Helper()
	cfg, addr := proxyConfig(t, sk, loops, toml)
	srv, _ := serveEngineWith(t, cfg, testLog(), inherit(sk))
	return addr, srv
}

// proxyConfig parses toml with [server] listen (a socket of sk) and loops filled in.
func proxyConfig(t *testing.T, sk *sockettest.Set, loops int, toml string) (*config.Config, string) {
	t.Helper()
	addr := sk.AddListen()
	full := fmt.Sprintf("[server]\nlisten = %q\nloops = %d\n", addr, loops) + toml
	cfg, err := config.Parse([]byte(full))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, full)
	}
	return cfg, addr
}

// waitFor polls cond until it holds, for up to 10 s; what says what was awaited, for the failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// testLog is the log of an engine under test: discarded, or on stderr with -v.
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// serveEngine runs an engine for cfg until the test ends, once it accepts connections. done yields what
// Serve returned (and is closed after), for tests of how the engine ends.
func serveEngine(t *testing.T, cfg *config.Config, log *slog.Logger) (srv *Server, done <-chan error) {
	t.Helper()
	return serveEngineWith(t, cfg, log, nil)
}

// serveEngineWith is serveEngine with prepare, when not nil, run on the engine before it serves.
func serveEngineWith(t *testing.T, cfg *config.Config, log *slog.Logger, prepare func(*Server)) (srv *Server, done <-chan error) {
	t.Helper()
	srv, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(srv)
	}
	ch := make(chan error, 1)
	go func() { ch <- srv.Serve(); close(ch) }()
	select {
	case <-srv.Ready():
	case err := <-ch:
		t.Fatalf("serve: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("proxy did not start")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-ch
	})
	return srv, ch
}

// simpleConfig routes everything to one upstream of the given origins.
func simpleConfig(extraServer string, origins ...*origin) string {
	addrs := make([]string, len(origins))
	for i, o := range origins {
		addrs[i] = o.addr
	}
	return upstreamConfig(extraServer, addrs...)
}

// upstreamConfig is extraServer ([server] keys) plus one upstream of addrs that every path routes to.
func upstreamConfig(extraServer string, addrs ...string) string {
	var servers []string
	for _, a := range addrs {
		servers = append(servers, fmt.Sprintf("{ addr = %q }", a))
	}
	return extraServer + fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ %s ]
connect_timeout = "1s"
response_timeout = "2s"

[[route]]
path_prefix = "/"
upstream = "app"
`, strings.Join(servers, ", "))
}

// slabsInUseSettled polls until every header slab is back in the pool or 2 s pass, and returns the count
// still in use: clients' closes reach the proxy asynchronously.
func slabsInUseSettled(srv *Server) int {
	deadline := time.Now().Add(2 * time.Second)
	for srv.SlabsInUse() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return srv.SlabsInUse()
}

// expectSlabsFreed fails the test unless every header slab is back (waiting up to slabsInUseSettled's
// 2 s for the connections' closes to be processed).
func expectSlabsFreed(t *testing.T, srv *Server) {
	t.Helper()
	if n := slabsInUseSettled(srv); n != 0 {
		t.Fatalf("%d header slabs still in use", n)
	}
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) (*http.Response, []byte) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, br, strings.HasPrefix(raw, "HEAD "))
}

func readResponse(t *testing.T, br *bufio.Reader, head bool) (*http.Response, []byte) {
	t.Helper()
	method := "GET"
	if head {
		method = "HEAD"
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// keepAliveClients opens clients connections to addr at once, each sending each requests one after
// another on its connection (round writes request k of client i and checks its answer), and returns
// every error once all have ended: a client stops at its first.
func keepAliveClients(addr string, clients, each int, deadline time.Duration, round func(c net.Conn, br *bufio.Reader, i, k int) error) []error {
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(deadline))
			br := bufio.NewReader(c)
			for k := 0; k < each; k++ {
				if err := round(c, br, i, k); err != nil {
					errs <- fmt.Errorf("client %d request %d: %w", i, k, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// forLoops runs a test with one event loop and with four.
func forLoops(t *testing.T, fn func(t *testing.T, loops int)) {
	for _, n := range []int{1, 4} {
		t.Run(fmt.Sprintf("loops=%d", n), func(t *testing.T) { fn(t, n) })
	}
}

func TestGetForwardsAndSetsForwardedHeaders(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, _ := startProxy(t, loops, simpleConfig("", o))
		c, br := dial(t, addr)
		resp, body := roundTrip(t, c, br, "GET /hello?x=1 HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 10.1.2.3\r\nConnection: keep-alive, X-Drop\r\nX-Drop: secret\r\nKeep-Alive: timeout=5\r\n\r\n")
		if resp.StatusCode != 200 || string(body) != "Hello, World!" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("X-Path") != "/hello?x=1" {
			t.Fatalf("target reached origin as %q", resp.Header.Get("X-Path"))
		}
		h := o.head()
		for _, want := range []string{"Host: example.test", "X-Forwarded-For: 10.1.2.3, 127.0.0.1", "X-Forwarded-Proto: http", "X-Forwarded-Host: example.test"} {
			if !strings.Contains(h, want) {
				t.Errorf("origin head lacks %q:\n%s", want, h)
			}
		}
		for _, hop := range []string{"X-Drop", "Keep-Alive", "Connection"} {
			if strings.Contains(h, hop+":") {
				t.Errorf("hop-by-hop header %s reached the origin:\n%s", hop, h)
			}
		}
	})
}

func TestPostContentLengthAndChunked(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, _ := startProxy(t, loops, simpleConfig("", o))
		c, br := dial(t, addr)
		payload := strings.Repeat("abcdefgh", 8192) // 64 KiB: more than one read
		resp, body := roundTrip(t, c, br, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(len(payload))+"\r\n\r\n"+payload)
		if resp.StatusCode != 200 || string(body) != payload {
			t.Fatalf("CL echo: %d, %d bytes", resp.StatusCode, len(body))
		}
		var chunked strings.Builder
		for i := 0; i < len(payload); i += 5000 {
			end := min(i+5000, len(payload))
			fmt.Fprintf(&chunked, "%x;ext=1\r\n%s\r\n", end-i, payload[i:end])
		}
		chunked.WriteString("0\r\nX-Trailer: t\r\n\r\n")
		raw := "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String()
		// Send it in small pieces so chunk-size lines are split across reads.
		for i := 0; i < len(raw); i += 777 {
			_, _ = io.WriteString(c, raw[i:min(i+777, len(raw))])
		}
		resp, body = readResponse(t, br, false)
		if resp.StatusCode != 200 || string(body) != payload {
			t.Fatalf("chunked echo: %d, %d bytes", resp.StatusCode, len(body))
		}
	})
}

func TestLargeAndChunkedResponses(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, _ := startProxy(t, loops, simpleConfig("", o))
		c, br := dial(t, addr)
		for i := 0; i < 3; i++ {
			resp, body := roundTrip(t, c, br, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || !bytes.Equal(body, oneMiB) {
				t.Fatalf("/big: %d, %d bytes, equal=%v", resp.StatusCode, len(body), bytes.Equal(body, oneMiB))
			}
		}
		resp, body := roundTrip(t, c, br, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 || !bytes.Equal(body, oneMiB[:65536]) {
			t.Fatalf("/chunked: %d, %d bytes", resp.StatusCode, len(body))
		}
		if len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("/chunked reached the client as %v", resp.TransferEncoding)
		}
	})
}

func TestPipeliningAndKeepAlive(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, _ := startProxy(t, loops, simpleConfig("", o))
		c, br := dial(t, addr)
		_, _ = io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?ms=50 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
		want := []string{"Hello, World!", "slow", "Hello, World!"}
		for i, w := range want {
			resp, body := readResponse(t, br, false)
			if resp.StatusCode != 200 || string(body) != w {
				t.Fatalf("pipelined response %d: %d %q, want %q", i, resp.StatusCode, body, w)
			}
		}
		for i := 0; i < 100; i++ {
			resp, body := roundTrip(t, c, br, "GET /n/"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "Hello, World!" || resp.Header.Get("X-Path") != "/n/"+strconv.Itoa(i) {
				t.Fatalf("request %d on one connection: %d %q %q", i, resp.StatusCode, body, resp.Header.Get("X-Path"))
			}
		}
	})
}

func TestHTTP10Client(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, _ := startProxy(t, loops, simpleConfig("", o))
		c, br := dial(t, addr)
		_, _ = io.WriteString(c, "GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n")
		all, err := io.ReadAll(br) // HTTP/1.0 without keep-alive: the proxy closes after the response
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(all, []byte("\r\n\r\n"))
		if i < 0 || !bytes.HasPrefix(all, []byte("HTTP/1.1 200")) {
			t.Fatalf("bad response: %q", all[:min(len(all), 200)])
		}
		if bytes.Contains(bytes.ToLower(all[:i]), []byte("transfer-encoding")) {
			t.Fatalf("chunked framing sent to an HTTP/1.0 client:\n%s", all[:i])
		}
		if !bytes.Equal(all[i+4:], oneMiB[:65536]) {
			t.Fatalf("HTTP/1.0 body: %d bytes", len(all)-i-4)
		}
		// HTTP/1.0 with keep-alive stays open.
		c2, br2 := dial(t, addr)
		for k := 0; k < 3; k++ {
			resp, body := roundTrip(t, c2, br2, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "Hello, World!" || resp.Close {
				t.Fatalf("1.0 keep-alive %d: %d %q close=%v", k, resp.StatusCode, body, resp.Close)
			}
		}
	})
}

func TestRoundRobinWeights(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		a, b := startOrigin(t, "a"), startOrigin(t, "b")
		addr, _ := startProxy(t, loops, fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q }, { addr = %q, weight = 2 } ]
[[route]]
upstream = "app"
`, a.addr, b.addr))
		c, br := dial(t, addr)
		for i := 0; i < 300; i++ {
			resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		if a.hits.Load() != 100 || b.hits.Load() != 200 {
			t.Fatalf("weights 1:2 gave a=%d b=%d over 300 requests on one connection", a.hits.Load(), b.hits.Load())
		}
	})
}

func TestFailoverAndRefused(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		a := startOrigin(t, "a")
		dead := refusedAddr(t)
		addr, _ := startProxy(t, loops, fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q }, { addr = %q } ]
retries = 1
[[upstream]]
name = "down"
servers = [ { addr = %q } ]
retries = 0
[[route]]
path_prefix = "/"
upstream = "app"
[[route]]
path_prefix = "/down/"
upstream = "down"
`, dead, a.addr, dead))
		c, br := dial(t, addr)
		for i := 0; i < 20; i++ {
			resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || string(body) != "Hello, World!" {
				t.Fatalf("failover request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		resp, body := roundTrip(t, c, br, "GET /down/x HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 502 || !strings.Contains(string(body), "502") {
			t.Fatalf("refused upstream: %d %q, want 502", resp.StatusCode, body)
		}
	})
}

func TestNoServerUpIs503(t *testing.T) {
	dead1, dead2 := refusedAddr(t), refusedAddr(t)
	addr, _ := startProxy(t, 1, fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q }, { addr = %q } ]
retries = 1
max_fails = 1
fail_timeout = "30s"
[[route]]
upstream = "app"
`, dead1, dead2))
	c, br := dial(t, addr)
	resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 502 {
		t.Fatalf("first request to two refused servers: %d, want 502", resp.StatusCode)
	}
	resp, _ = roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 503 {
		t.Fatalf("with both servers marked down: %d, want 503", resp.StatusCode)
	}
}

func TestResponseTimeoutIs504(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, _ := startProxy(t, loops, fmt.Sprintf(`
[[upstream]]
name = "app"
servers = [ { addr = %q } ]
response_timeout = "300ms"
[[route]]
upstream = "app"
`, o.addr))
		c, br := dial(t, addr)
		start := time.Now()
		resp, _ := roundTrip(t, c, br, "GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 504 {
			t.Fatalf("status %d, want 504", resp.StatusCode)
		}
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Fatalf("504 after %v, want about 300ms", el)
		}
	})
}

func TestMaxConnectionsRefusal(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, srv := startProxy(t, loops, simpleConfig("max_connections = 3\n", o))
		var held []net.Conn
		for i := 0; i < 3; i++ {
			c, br := dial(t, addr)
			resp, _ := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("connection %d: %d", i, resp.StatusCode)
			}
			held = append(held, c)
		}
		_, br := dial(t, addr)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("connection max+1: %v", err)
		}
		if resp.StatusCode != 503 {
			t.Fatalf("connection max+1: %d, want 503", resp.StatusCode)
		}
		if _, err := br.ReadByte(); err == nil {
			// drain the body, then expect EOF
			_, _ = io.ReadAll(br)
		}
		if n := srv.SlabsInUse(); n != 3 {
			t.Fatalf("%d slabs in use, want 3", n)
		}
		held[0].Close()
		deadline := time.Now().Add(2 * time.Second)
		for srv.SlabsInUse() != 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		c2, br2 := dial(t, addr)
		resp, _ = roundTrip(t, c2, br2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("after a close, a new connection got %d", resp.StatusCode)
		}
	})
}

// TestConcurrencyBeyondKeepalive: with more requests in flight than keepalive lets the pool keep, freed
// backend connections are handed to requests waiting for a dial (handOver) and the rest are dialed;
// every request must still get its own answer, on 1 and 4 loops.
func TestConcurrencyBeyondKeepalive(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		cfg := strings.Replace(simpleConfig("", o), `connect_timeout = "1s"`, "connect_timeout = \"1s\"\nkeepalive = 2", 1)
		addr, srv := startProxy(t, loops, cfg)
		const clients, each = 64, 40
		errs := keepAliveClients(addr, clients, each, 20*time.Second, func(c net.Conn, br *bufio.Reader, i, k int) error {
			target := fmt.Sprintf("/c%d/r%d", i, k)
			if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target); err != nil {
				return err
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 || resp.Header.Get("X-Path") != target {
				return fmt.Errorf("%d for %q", resp.StatusCode, resp.Header.Get("X-Path"))
			}
			return nil
		})
		for _, err := range errs {
			t.Fatal(err)
		}
		if got := o.hits.Load(); got != clients*each {
			t.Fatalf("origin served %d requests, want %d", got, clients*each)
		}
		expectSlabsFreed(t, srv)
		// Dials that complete after their request was served by a handed-over connection find the pool
		// full: they must be closed, not left open and forgotten (at most keepalive per loop stay).
		most := int32(2 * loops)
		deadline := time.Now().Add(3 * time.Second)
		for o.srv.GetOpenConnectionsCount() > most && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := o.srv.GetOpenConnectionsCount(); n > most {
			t.Fatalf("the origin still has %d connections from the proxy, keepalive allows %d", n, most)
		}
	})
}

// TestDeepPipelining: 5,000 GETs (about 190 KiB, three times io_buffer) in one write, the way a load
// tester or a batch client pipelines. The proxy answers them in order and holds the rest back by pausing
// reads (holdClient) rather than taking them all or giving up; every response arrives.
func TestDeepPipelining(t *testing.T) {
	forLoops(t, func(t *testing.T, loops int) {
		o := startOrigin(t, "a")
		addr, _ := startProxy(t, loops, simpleConfig("io_buffer = \"64KiB\"\n", o))
		c, br := dial(t, addr)
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		const n = 5000
		var reqs bytes.Buffer
		for i := 0; i < n; i++ {
			fmt.Fprintf(&reqs, "GET /p/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
		wrote := make(chan error, 1)
		go func() { _, err := c.Write(reqs.Bytes()); wrote <- err }()
		for i := 0; i < n; i++ {
			resp, body := readResponse(t, br, false)
			if resp.StatusCode != 200 || string(body) != "Hello, World!" || resp.Header.Get("X-Path") != "/p/"+strconv.Itoa(i) {
				t.Fatalf("pipelined response %d of %d: %d %q %q", i, n, resp.StatusCode, body, resp.Header.Get("X-Path"))
			}
		}
		if err := <-wrote; err != nil {
			t.Fatalf("writing %d pipelined requests: %v", n, err)
		}
	})
}
