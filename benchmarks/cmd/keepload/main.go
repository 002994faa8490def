// keepload: N keep-alive connections (TLS or not) opened and warmed before a measured window, so that a
// counter attached to the proxy (callgrind, strace) sees requests only: "ready" once warm, then a line on
// stdin starts the window, which prints the requests answered in it and waits for a second line to close.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "")
	useTLS := flag.Bool("tls", true, "")
	conns := flag.Int("c", 64, "")
	dur := flag.Duration("d", 5*time.Second, "")
	path := flag.String("path", "/", "")
	flag.Parse()
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: localhost\r\n\r\n")
	type cl struct {
		c  net.Conn
		br *bufio.Reader
	}
	cs := make([]cl, *conns)
	one := func(x cl) error {
		if _, err := x.c.Write(req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(x.br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	for i := range cs {
		var c net.Conn
		var err error
		if *useTLS {
			c, err = tls.Dial("tcp", *addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		} else {
			c, err = net.Dial("tcp", *addr)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cs[i] = cl{c, bufio.NewReader(c)}
		for k := 0; k < 20; k++ {
			if err := one(cs[i]); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	_, _ = in.ReadString('\n')
	var n atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(*dur)
	for _, x := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if one(x) != nil {
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Println("requests", n.Load())
	_, _ = in.ReadString('\n')
}
