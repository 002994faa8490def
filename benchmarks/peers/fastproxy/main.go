package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// hopHeaders are not forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:9001", "upstream address host:port")
	maxConns := flag.Int("max-conns", 256, "most connections to the upstream")
	flag.Parse()

	client := &fasthttp.HostClient{
		Addr:                          *upstream,
		MaxConns:                      *maxConns,
		MaxIdleConnDuration:           time.Minute,
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		MaxConnWaitTimeout:            5 * time.Second,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		// Bodies of any size pass; fasthttp buffers them whole, which is
		// part of what the big1m and post64k scenarios measure.
		MaxResponseBodySize: 0,
	}

	handler := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		resp := &ctx.Response
		for _, h := range hopHeaders {
			req.Header.Del(h)
		}
		req.Header.Add("X-Forwarded-For", ctx.RemoteIP().String())
		if err := client.Do(req, resp); err != nil {
			resp.Reset()
			if err == fasthttp.ErrTimeout {
				ctx.Error("Gateway Timeout", fasthttp.StatusGatewayTimeout)
			} else {
				ctx.Error("Bad Gateway", fasthttp.StatusBadGateway)
			}
			return
		}
		for _, h := range hopHeaders {
			resp.Header.Del(h)
		}
	}

	srv := &fasthttp.Server{
		Handler:                       handler,
		Name:                          "fastproxy",
		DisableHeaderNamesNormalizing: true,
		DisablePreParseMultipartForm:  true,
		MaxRequestBodySize:            64 << 20,
		Concurrency:                   256 * 1024,
		ReadTimeout:                   5 * time.Minute,
		IdleTimeout:                   5 * time.Minute,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		log.Fatalf("fastproxy: listen %s: %v", *listen, err)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = ln.Close()
	}()
	if err := srv.Serve(ln); err != nil {
		log.Fatalf("fastproxy: %v", err)
	}
}
