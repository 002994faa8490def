package main

import (
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:9001", "upstream address host:port")
	idle := flag.Int("idle", 2048, "idle connections kept to the upstream")
	flag.Parse()

	target, err := url.Parse("http://" + *upstream)
	if err != nil {
		log.Fatalf("stdproxy: -upstream: %v", err)
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          *idle,
		MaxIdleConnsPerHost:   *idle, // the default of 2 would close and redial under any concurrency
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		Transport: transport,
		// FlushInterval stays 0: fixed-length bodies go out through the
		// server's buffered writer, and ReverseProxy itself flushes each
		// write of a body of unknown length (chunked) at once.
		ErrorLog: log.New(io.Discard, "", 0),
	}

	srv := &http.Server{
		Handler:           proxy,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		log.Fatalf("stdproxy: listen %s: %v", *listen, err)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("stdproxy: %v", err)
	}
}
