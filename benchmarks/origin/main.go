package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
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

func handler(name string) fasthttp.RequestHandler {
	nameBytes := []byte(name)
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetBytesV("X-Origin", nameBytes)
		switch string(ctx.Path()) {
		case "/json":
			ctx.SetContentType("application/json")
			ctx.SetBody(jsonBody)
		case "/big":
			ctx.SetContentType("application/octet-stream")
			ctx.SetBody(bigBody)
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
