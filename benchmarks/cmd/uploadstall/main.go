// Command uploadstall measures how smoothly a proxy takes a large upload: it sends one POST of -size
// bytes in -write-byte writes and counts the writes that blocked longer than -stall (a proxy that holds a
// fast uploader back in long steps shows as many; one that keeps the bytes flowing, as few). With -serve
// it is instead the origin: it reads each request's body as fast as it can and answers 200.
//
//	uploadstall -serve 127.0.0.1:9101                      # the sink origin
//	uploadstall -addr 127.0.0.1:8080 -size 100MiB -runs 3  # the client, through a proxy to the sink
//
// Each run prints one line: writes, stalls over -stall, the longest write, seconds and MB/s.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	serve := flag.String("serve", "", "run the sink origin on this address instead of the client")
	addr := flag.String("addr", "127.0.0.1:8080", "proxy (or origin) address for the client")
	size := flag.String("size", "100MiB", "body size: bytes, or with KiB/MiB/GiB")
	write := flag.Int("write", 64<<10, "bytes per write")
	stall := flag.Duration("stall", 30*time.Millisecond, "a write blocked longer than this is a stall")
	runs := flag.Int("runs", 1, "uploads, one after another on fresh connections")
	label := flag.String("label", "", "printed at the start of each line")
	flag.Parse()
	if *serve != "" {
		log.Fatal(sink(*serve))
	}
	n, err := parseSize(*size)
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *runs; i++ {
		r, err := upload(*addr, n, *write, *stall)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s writes=%d stalls_over_%v=%d longest=%v seconds=%.2f MBps=%.0f\n",
			*label, r.writes, *stall, r.stalls, r.longest.Round(time.Millisecond), r.total.Seconds(),
			float64(n)/r.total.Seconds()/1e6)
	}
}

type result struct {
	writes, stalls int
	longest, total time.Duration
}

func upload(addr string, n int64, size int, stall time.Duration) (result, error) {
	var r result
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return r, err
	}
	defer c.Close()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	start := time.Now()
	if _, err := fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: upload\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", n); err != nil {
		return r, err
	}
	for left := n; left > 0; {
		b := buf[:min(int64(len(buf)), left)]
		t := time.Now()
		if _, err := c.Write(b); err != nil {
			return r, fmt.Errorf("after %d bytes: %w", n-left, err)
		}
		d := time.Since(t)
		r.writes++
		if d > stall {
			r.stalls++
		}
		r.longest = max(r.longest, d)
		left -= int64(len(b))
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return r, err
	}
	body, _ := io.ReadAll(resp.Body)
	r.total = time.Since(start)
	if resp.StatusCode != 200 || string(body) != strconv.FormatInt(n, 10) {
		return r, fmt.Errorf("answer %d %q, want 200 and the byte count", resp.StatusCode, body)
	}
	return r, nil
}

// sink answers every request with the number of body bytes it read, read as fast as they come.
func sink(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func(c net.Conn) {
			defer c.Close()
			br := bufio.NewReaderSize(c, 256<<10)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				got, err := io.CopyBuffer(io.Discard, req.Body, make([]byte, 256<<10))
				if err != nil {
					return
				}
				s := strconv.FormatInt(got, 10)
				if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(s), s); err != nil {
					return
				}
			}
		}(c)
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "size:", err)
	}
	return v * mult, err
}
