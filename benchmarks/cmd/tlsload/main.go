// Command tlsload measures the proxy's CPU per request over TLS or plain HTTP (issue 22, the comparison in
// docs/ARCHITECTURE.md, "TLS termination"): -conns keep-alive connections each send one GET after another
// for -dur; the proxy's CPU time (utime + stime of -pid, from /proc) is divided by the requests answered.
// With -handshake each request opens a new connection (no resumption): the CPU per full handshake.
// -origin ADDR serves a 13-byte answer ("Hello, World!") there, for the proxy to cache or forward.
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "proxy address")
	useTLS := flag.Bool("tls", true, "speak TLS")
	conns := flag.Int("conns", 16, "connections")
	dur := flag.Duration("dur", 10*time.Second, "duration")
	path := flag.String("path", "/", "request target")
	pid := flag.Int("pid", 0, "proxy process id, for its CPU time")
	handshake := flag.Bool("handshake", false, "a new connection (full handshake) per request")
	version := flag.String("version", "1.3", "TLS version: 1.2 or 1.3")
	origin := flag.String("origin", "", "serve the 13-byte origin on this address and wait (and 64 MiB on /big)")
	slow := flag.Bool("slow", false, "slow readers: each connection asks for -path and reads nothing; the proxy's RSS growth is reported")
	flag.Parse()
	if *origin != "" {
		big := make([]byte, 64<<20)
		_ = http.ListenAndServe(*origin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/big" {
				_, _ = w.Write(big)
				return
			}
			_, _ = io.WriteString(w, "Hello, World!")
		}))
		return
	}
	conf := &tls.Config{InsecureSkipVerify: true, ServerName: "a.example", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if *version == "1.2" {
		conf.MaxVersion = tls.VersionTLS12
	}
	dial := func() (net.Conn, error) {
		if *useTLS {
			return tls.Dial("tcp", *addr, conf)
		}
		return net.Dial("tcp", *addr)
	}
	req := "GET " + *path + " HTTP/1.1\r\nHost: a.example\r\n\r\n"
	if *slow {
		rss0 := rss(*pid)
		var held []net.Conn
		for i := 0; i < *conns; i++ {
			c, err := dial()
			if err != nil {
				fmt.Println("dial:", err)
				return
			}
			_, _ = io.WriteString(c, req)
			held = append(held, c)
		}
		time.Sleep(*dur)
		rss1 := rss(*pid)
		fmt.Printf("%d slow readers: proxy RSS %d -> %d KiB, %.0f KiB each\n", *conns, rss0, rss1, float64(rss1-rss0)/float64(*conns))
		for _, c := range held {
			c.Close()
		}
		return
	}
	var done, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	cpu0 := cpuTime(*pid)
	t0 := time.Now()
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			for {
				select {
				case <-stop:
					if c != nil {
						c.Close()
					}
					return
				default:
				}
				if c == nil {
					var err error
					if c, err = dial(); err != nil {
						failed.Add(1)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					br = bufio.NewReader(c)
				}
				if _, err := io.WriteString(c, req); err != nil {
					failed.Add(1)
					c.Close()
					c = nil
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					c.Close()
					c = nil
					continue
				}
				done.Add(1)
				if *handshake {
					c.Close()
					c = nil
				}
			}
		}()
	}
	time.Sleep(*dur)
	cpu1 := cpuTime(*pid)
	el := time.Since(t0)
	close(stop)
	wg.Wait()
	n := done.Load()
	fmt.Printf("requests %d (%.0f/s), failed %d", n, float64(n)/el.Seconds(), failed.Load())
	if *pid > 0 && n > 0 {
		fmt.Printf(", proxy CPU %.2f µs/request (%.2f cores)", float64(cpu1-cpu0)/float64(n)/1e3, float64(cpu1-cpu0)/float64(el.Nanoseconds()))
	}
	fmt.Println()
}

// rss is the process's resident set in KiB.
func rss(pid int) int64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime is the process's utime + stime in ns (0 without a pid).
func cpuTime(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * int64(time.Second) / 100 // USER_HZ 100
}
