// Command hsload is the benchmarks' HTTP load tool, over TLS or plain TCP (-plain), in three modes.
//
// The default mode is the load of the benchmark's HTTPS handshake scenarios (benchmarks/cmd/bench,
// https-full-* and https-resumed-*): -conns workers each open a connection, send one "GET -path" with
// "Connection: close", read the answer and close, again and again for -duration. With
// -requests-per-conn N each connection carries N requests, the last asking to close: keep-alive in
// which the server, not the client, ends every connection (scripts/counts.sh uses it). With -resume each
// worker keeps its own session cache (one client resuming its own tickets: TLS 1.3 PSK with ECDHE, or a
// TLS 1.2 ticket), so every connection after a worker's first resumes; without it every connection is a
// full handshake. With -pid the proxy's CPU time over the run (utime + stime from /proc) is divided by
// the requests answered: its CPU per request, or per connection with -requests-per-conn 1.
//
// wrk cannot do the full case: it keeps its OpenSSL session across reconnects (SSL_clear keeps it), so
// wrk with "Connection: close" measures resumed handshakes. hsload reports from the client's side how many
// handshakes really resumed (tls.ConnectionState.DidResume: true only when the server accepted the
// ticket), and the version, cipher suite and key exchange group negotiated, so a run that did not do
// what its name says is visible.
//
// It prints one JSON object on stdout when done (hsreport.Result). Latencies run from the dial to the last
// byte of the body. Exit status 1 when nothing succeeded.
//
// -window: -conns keep-alive connections are opened and warmed (20 requests each) before a measured
// window, so that a counter attached to the proxy (callgrind, strace) sees requests only: it prints
// "ready" once warm; a line on stdin starts the window, which runs for -duration and prints
// "requests N"; a second line closes the connections (window.go).
//
// -slow: -conns connections each send "GET -path" and read nothing for -duration; the growth of -pid's
// resident memory is printed (slow.go).
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"switchflow/benchmarks/hsreport"
)

// clientConfig is the TLS client: SNI serverName, verifying against the root in caFile (none when
// empty), offering TLS 1.2 to maxVersion ("1.2" or "1.3").
func clientConfig(serverName, caFile, maxVersion string) (*tls.Config, error) {
	conf := &tls.Config{
		ServerName: serverName,
		NextProtos: []string{"http/1.1"},
		MinVersion: tls.VersionTLS12,
		MaxVersion: tls.VersionTLS13,
		// X25519 first: what OpenSSL 3.0 (wrk, nginx, HAProxy here) offers and picks first. Go's default
		// would put X25519MLKEM768 first, which a Go server (SwitchFlow) accepts and OpenSSL 3.0 does not:
		// the proxies would not do the same key exchange. P-256 second, because a TLS 1.2 server with an
		// ECDSA P-256 certificate refuses a client that does not list the certificate's curve (RFC 4492).
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	switch maxVersion {
	case "1.2":
		conf.MaxVersion = tls.VersionTLS12
	case "1.3":
	default:
		return nil, fmt.Errorf("-max-version %q: want 1.2 or 1.3", maxVersion)
	}
	if caFile == "" {
		conf.InsecureSkipVerify = true
		return conf, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// dial opens a connection to addr: TLS with conf, its handshake done, or plain TCP when conf is nil.
func dial(addr string, conf *tls.Config) (net.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil || conf == nil {
		return raw, err
	}
	c := tls.Client(raw, conf)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return c, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "the proxy's TLS address")
	serverName := flag.String("server-name", "bench.example", "SNI and the name the certificate is verified for")
	caFile := flag.String("ca", "", "PEM file of the root the proxy's chain leads to; empty: no verification")
	plain := flag.Bool("plain", false, "plain HTTP over TCP, no TLS")
	pid := flag.Int("pid", 0, "the proxy's process id: its CPU time per request joins the report")
	window := flag.Bool("window", false, "keep-alive connections opened and warmed first, then a window started and ended on stdin")
	slow := flag.Bool("slow", false, "slow readers: each connection asks for -path and reads nothing; the proxy's (-pid) RSS growth is printed")
	conns := flag.Int("conns", 64, "concurrent connections (workers)")
	dur := flag.Duration("duration", 10*time.Second, "how long to run")
	path := flag.String("path", "/", "request target")
	resume := flag.Bool("resume", false, "resume sessions: each worker keeps its own session cache")
	maxVersion := flag.String("max-version", "1.3", "highest TLS version offered: 1.2 or 1.3")
	perConn := flag.Int("requests-per-conn", 1, "requests on each connection before the one that asks to close "+
		"(Connection: close); more than 1 is keep-alive whose connections the server closes, never the client")
	var headers headerList
	flag.Var(&headers, "H", "an extra request header, \"Name: value\" (repeatable)")
	flag.Parse()

	conf, err := clientConfig(*serverName, *caFile, *maxVersion)
	if err != nil {
		fatal(err)
	}
	if *plain {
		conf = nil
	}
	if *perConn < 1 {
		fatal(fmt.Errorf("-requests-per-conn %d: want 1 or more", *perConn))
	}
	keep := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *serverName + "\r\n")
	for _, h := range headers {
		keep = append(keep, h+"\r\n"...)
	}
	req := append(append([]byte{}, keep...), "Connection: close\r\n\r\n"...)
	keep = append(keep, "\r\n"...)
	switch {
	case *window:
		runWindow(*addr, conf, keep, *conns, *dur)
		return
	case *slow:
		runSlow(*addr, conf, keep, *conns, *dur, *pid)
		return
	}

	cpu0 := cpuTime(*pid)
	ru0 := rusage()
	t0 := time.Now()
	deadline := t0.Add(*dur)
	workers := make([]*worker, *conns)
	var wg sync.WaitGroup
	for i := range workers {
		c := conf.Clone() // nil with -plain
		if *resume && c != nil {
			c.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		}
		w := &worker{addr: *addr, conf: c, req: req, keep: keep, perConn: *perConn, deadline: deadline}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				w.one()
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	ru1 := rusage()
	cpu1 := cpuTime(*pid)

	var r hsreport.Result
	var lat []time.Duration
	for _, w := range workers {
		r.Requests += w.ok
		r.Errors += w.errs
		r.Resumed += w.resumed
		r.Full += w.full
		lat = append(lat, w.lat...)
		if w.lastErr != nil {
			r.LastError = w.lastErr.Error()
		}
		if w.state.Version != 0 {
			r.Version = versionName(w.state.Version)
			r.Cipher = tls.CipherSuiteName(w.state.CipherSuite)
			r.Group = w.state.CurveID.String()
			if w.state.Version == tls.VersionTLS12 && w.state.DidResume {
				r.Group = "no key exchange" // a TLS 1.2 resumption reuses the master secret
			}
		}
	}
	r.Seconds = el.Seconds()
	r.RPS = float64(r.Requests) / el.Seconds()
	slices.Sort(lat)
	r.P50ms = percentile(lat, 0.50)
	r.P99ms = percentile(lat, 0.99)
	r.ClientCPUPercent = (ru1 - ru0).Seconds() / el.Seconds() * 100
	if *pid > 0 && r.Requests > 0 {
		r.ProxyCPUusPerReq = float64(cpu1-cpu0) / 1e3 / float64(r.Requests)
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	if r.Requests == 0 {
		os.Exit(1)
	}
}

// worker is one client: a connection at a time, perConn requests on each (the last, or the first after
// the deadline, with Connection: close).
type worker struct {
	addr     string
	conf     *tls.Config
	req      []byte // the request that asks the server to close
	keep     []byte // the one that does not
	perConn  int
	deadline time.Time
	buf      *bufio.Reader
	ok       int64
	errs     int64
	resumed  int64
	full     int64
	lat      []time.Duration
	state    tls.ConnectionState
	lastErr  error
}

// one opens a connection, sends its requests one after the other, reading each answer to its end,
// and waits for the server to close. A connection's first request's latency includes the dial and
// the handshake.
func (w *worker) one() {
	start := time.Now()
	answered := 0
	err := w.exchange(func() {
		answered++
		w.ok++
		w.lat = append(w.lat, time.Since(start))
		start = time.Now()
	})
	if answered > 0 && w.conf != nil {
		if w.state.DidResume {
			w.resumed++
		} else {
			w.full++
		}
	}
	if err != nil {
		w.errs++
		w.lastErr = err
		// A refused or reset connection would otherwise spin.
		time.Sleep(time.Millisecond)
	}
}

// exchange runs one connection, calling answered after each whole 200 answer.
func (w *worker) exchange(answered func()) error {
	c, err := dial(w.addr, w.conf)
	if err != nil {
		return err
	}
	defer c.Close()
	tc, _ := c.(*tls.Conn)
	if tc != nil {
		w.state = tc.ConnectionState()
	}
	if w.buf == nil {
		w.buf = bufio.NewReaderSize(c, 16<<10)
	} else {
		w.buf.Reset(c)
	}
	for i := 1; ; i++ {
		last := i >= w.perConn || time.Now().After(w.deadline)
		req := w.keep
		if last {
			req = w.req
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			return err
		}
		if err := readAnswer(w.buf); err != nil {
			return err
		}
		answered()
		if last {
			break
		}
	}
	// The server closes after the answer (Connection: close); wait for it, as wrk does, so that the
	// server's side of the close is part of what is measured and TIME_WAIT stays on the client. In TLS
	// 1.3 the session tickets may also arrive only now: Read processes them.
	var one [1]byte
	if _, err := w.buf.Read(one[:]); err == nil {
		return errors.New("bytes after the answer")
	}
	if tc != nil {
		w.state = tc.ConnectionState()
	}
	return nil
}

// readAnswer reads one response to its end and checks that it is a whole 200.
func readAnswer(br *bufio.Reader) error {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("body of %d bytes, Content-Length %d", n, resp.ContentLength)
	}
	return nil
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i]) / float64(time.Millisecond)
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

type headerList []string

func (h *headerList) String() string     { return fmt.Sprint(*h) }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "hsload:", err)
	os.Exit(2)
}
