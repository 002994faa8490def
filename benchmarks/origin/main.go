package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

const (
	bigSize       = 1 << 20
	chunkedSize   = 64 << 10
	chunkSize     = 4 << 10
	jsonSize      = 4 << 10
	maxSlowMillis = 60_000

	// hugeDefaultMiB and hugeMaxMiB bound /huge?mb=N, the large streamed
	// body of the benchmark's slowread scenario.
	hugeDefaultMiB = 64
	hugeMaxMiB     = 1024

	// cachedPrefix is the path prefix of the cacheable responses of the
	// benchmark's cache scenarios; cachedMaxAge is their Cache-Control.
	cachedPrefix = "/cached/"
	cachedMaxAge = "max-age=1"
)

var (
	helloBody = []byte("Hello, World!")
	bigBody   = pattern(bigSize)
	jsonBody  = buildJSON(jsonSize)
)

// pattern returns n bytes where byte i is byte(i*7+3); tests recompute it to
// check that a proxied body arrived unchanged.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// patternReader yields n bytes of pattern's sequence without holding them:
// /huge streams it, so the origin's memory does not grow with the body or
// with the number of clients downloading it.
type patternReader struct {
	off, n int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	total := 0
	for len(p) > 0 && r.off < r.n {
		// bigBody repeats with period 256, as the pattern does, so byte
		// off of the stream is bigBody[off % bigSize].
		i := int(r.off % bigSize)
		k := copy(p, bigBody[i:min(int64(bigSize), int64(i)+r.n-r.off)])
		p = p[k:]
		r.off += int64(k)
		total += k
	}
	return total, nil
}

// buildJSON returns a valid JSON document of exactly size bytes, the same on
// every run.
func buildJSON(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := 0; ; i++ {
		item := fmt.Sprintf(`{"id":%d,"name":"item-%04d","active":%t,"score":%d}`, i, i, i%2 == 0, (i*37)%1000)
		// Room left for the item, a comma, and the closing `],"pad":""}`.
		if b.Len()+len(item)+1+len(`],"pad":""}`) > size {
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(item)
	}
	b.WriteString(`],"pad":"`)
	for b.Len() < size-2 {
		b.WriteByte('x')
	}
	b.WriteString(`"}`)
	return b.Bytes()
}

func main() {
	addrs := flag.String("addr", "127.0.0.1:9001", "listen address; a comma-separated list listens on each")
	name := flag.String("name", "origin", "value of the X-Origin response header")
	flag.Parse()

	h := handler(*name)
	srv := &fasthttp.Server{
		Handler:                       h,
		Name:                          "origin",
		DisableHeaderNamesNormalizing: true,
		MaxRequestBodySize:            64 << 20,
		ReadBufferSize:                16 << 10,
		Concurrency:                   256 * 1024,
		ReadTimeout:                   5 * time.Minute,
		IdleTimeout:                   5 * time.Minute,
	}

	var lns []net.Listener
	for _, a := range strings.Split(*addrs, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		ln, err := net.Listen("tcp4", a)
		if err != nil {
			log.Fatalf("origin: listen %s: %v", a, err)
		}
		lns = append(lns, ln)
	}
	if len(lns) == 0 {
		log.Fatal("origin: -addr names no address")
	}

	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func(ln net.Listener) { errc <- srv.Serve(ln) }(ln)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		for _, ln := range lns {
			_ = ln.Close()
		}
	case err := <-errc:
		if err != nil {
			log.Fatalf("origin: %v", err)
		}
	}
}

// counters counts the requests for each path under cachedPrefix, so that a
// benchmark can tell how many requests a proxy's cache let through.
type counters struct {
	mu sync.RWMutex
	m  map[string]*atomic.Int64
}

func (c *counters) inc(path []byte) {
	c.mu.RLock()
	n := c.m[string(path)] // no allocation for the lookup
	c.mu.RUnlock()
	if n == nil {
		c.mu.Lock()
		if n = c.m[string(path)]; n == nil {
			n = new(atomic.Int64)
			c.m[string(path)] = n
		}
		c.mu.Unlock()
	}
	n.Add(1)
}

// snapshot returns the counts so far, path → requests since start.
func (c *counters) snapshot() map[string]int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]int64, len(c.m))
	for k, n := range c.m {
		out[k] = n.Load()
	}
	return out
}

func handler(name string) fasthttp.RequestHandler {
	nameBytes := []byte(name)
	cached := &counters{m: map[string]*atomic.Int64{}}
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetBytesV("X-Origin", nameBytes)
		path := ctx.Path()
		if bytes.HasPrefix(path, []byte(cachedPrefix)) {
			cached.inc(path)
			ctx.Response.Header.Set("Cache-Control", cachedMaxAge)
			ctx.SetContentType("application/json")
			ctx.SetBody(jsonBody)
			return
		}
		switch string(path) {
		case "/stats":
			b, _ := json.Marshal(map[string]any{"cached": cached.snapshot()})
			ctx.Response.Header.Set("Cache-Control", "no-store")
			ctx.SetContentType("application/json")
			ctx.SetBody(b)
		case "/json":
			ctx.SetContentType("application/json")
			ctx.SetBody(jsonBody)
		case "/big":
			ctx.SetContentType("application/octet-stream")
			ctx.SetBody(bigBody)
		case "/huge":
			mb := hugeDefaultMiB
			if v := ctx.QueryArgs().Peek("mb"); len(v) > 0 {
				n, err := strconv.Atoi(string(v))
				if err != nil || n < 1 || n > hugeMaxMiB {
					ctx.SetStatusCode(fasthttp.StatusBadRequest)
					ctx.SetContentType("text/plain")
					ctx.SetBodyString("mb must be 1.." + strconv.Itoa(hugeMaxMiB))
					return
				}
				mb = n
			}
			ctx.SetContentType("application/octet-stream")
			// Content-Length framing; fasthttp copies the reader to the
			// socket as the peer reads.
			size := int64(mb) << 20
			ctx.SetBodyStream(&patternReader{n: size}, int(size))
		case "/chunked":
			ctx.SetContentType("application/octet-stream")
			ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
				for off := 0; off < chunkedSize; off += chunkSize {
					if _, err := w.Write(bigBody[off : off+chunkSize]); err != nil {
						return
					}
					// Each flush ends one chunk on the wire.
					if err := w.Flush(); err != nil {
						return
					}
				}
			})
		case "/echo":
			if ct := ctx.Request.Header.ContentType(); len(ct) > 0 {
				ctx.Response.Header.SetContentTypeBytes(ct)
			} else {
				ctx.SetContentType("application/octet-stream")
			}
			ctx.SetBody(ctx.Request.Body())
		case "/slow":
			ms, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("ms")))
			if ms > 0 {
				time.Sleep(time.Duration(min(ms, maxSlowMillis)) * time.Millisecond)
			}
			ctx.SetContentType("text/plain")
			ctx.SetBody(helloBody)
		case "/status":
			code, err := strconv.Atoi(string(ctx.QueryArgs().Peek("code")))
			if err != nil || code < 200 || code > 599 {
				code = fasthttp.StatusBadRequest
			}
			ctx.SetStatusCode(code)
			ctx.SetContentType("text/plain")
			ctx.SetBodyString(fasthttp.StatusMessage(code))
		default:
			ctx.SetContentType("text/plain")
			ctx.SetBody(helloBody)
		}
	}
}
