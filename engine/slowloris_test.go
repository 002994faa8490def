package engine

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSlowlorisMemoryFlat opens 5,000 connections that each drip a partial request head, one byte per
// second (SPEC 3.3: memory stays bounded whatever the clients do; 3.2: 408 at read_header_timeout).
//
// Bound: a waiting head costs its connection's header slab, allocated (not touched) at start for all of
// max_connections, so at most header_buffer (8 KiB) of newly resident pages each, plus gnet's per
// connection state and, since the clients live in this process too, a client net.Conn: well under
// 12 KiB a connection, 5,000 × 12 KiB ≈ 59 MiB. The test asserts RSS growth < 64 MiB and logs the
// figure per connection.
//
// Skipped with -short and under -race (unless SWITCHFLOW_SLOWLORIS=1, which also doubles the bound);
// SWITCHFLOW_SLOWLORIS_CONNS overrides the count (e.g. 500 for a quick run).
func TestSlowlorisMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 descriptors; skipped with -short")
	}
	if raceEnabled && os.Getenv("SWITCHFLOW_SLOWLORIS") == "" {
		// Under -race the shadow memory alone is about 16 KiB a connection (RSS +80 MiB measured) and
		// 5,000 connections take 5 s to open on 2 cores; run it with SWITCHFLOW_SLOWLORIS=1 to force.
		t.Skip("memory figure is meaningless under the race detector; set SWITCHFLOW_SLOWLORIS=1 to run")
	}
	n := 5000
	if v := os.Getenv("SWITCHFLOW_SLOWLORIS_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("SWITCHFLOW_SLOWLORIS_CONNS=%q", v)
		}
	}
	// Both ends of every connection live in this process.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	need := uint64(2*n + 200)
	if lim.Cur < need {
		old := lim
		lim.Cur = min(need, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("setrlimit: %v", err)
		}
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
		if lim.Cur < need {
			t.Skipf("RLIMIT_NOFILE hard limit %d < %d needed", lim.Max, need)
		}
	}

	o := startRawOrigin(t, nil)
	// read_header_timeout 6s rather than 1s: opening 5,000 connections under -race on a loaded 2-core machine
	// takes up to about 3 s, and the memory figure must be taken while every one of them is still held.
	const timeout = 6 * time.Second
	addr, srv := startProxy(t, 2, simpleRawConfig("max_connections = "+strconv.Itoa(n+100)+"\nread_header_timeout = \"6s\"\n", o))
	rss0, heap0 := memNow(t)

	head := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("z", 64) // never completed
	conns := make([]net.Conn, n)
	opened := make([]time.Time, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const dialers = 16
	for d := 0; d < dialers; d++ {
		wg.Add(1)
		go func(d int) {
			defer wg.Done()
			for i := d; i < n; i += dialers {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				opened[i] = time.Now()
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte{head[0]}); err != nil {
					errs <- err
				}
				conns[i] = c
			}
		}(d)
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	close(errs)
	for err := range errs {
		t.Fatalf("opening slowloris connections: %v", err)
	}
	allOpen := time.Now()

	// Drip: one more byte per connection per second, from one goroutine, until the proxy answers.
	stop := make(chan struct{})
	dripDone := make(chan struct{})
	go func() {
		defer close(dripDone)
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for k := 1; k < len(head); k++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			for _, c := range conns {
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
				_, _ = c.Write([]byte{head[k]}) // fails once the proxy has answered and closed
			}
		}
	}()
	defer func() { close(stop); <-dripDone }()

	// gnet may still be accepting the last connections or reading their first byte.
	for w := 0; w < 50 && srv.SlabsInUse() < n; w++ {
		time.Sleep(10 * time.Millisecond)
	}
	held := srv.SlabsInUse()
	rss1, heap1 := memNow(t)
	if time.Since(opened[0]) >= timeout {
		t.Logf("warning: the first connection may already have timed out before the measurement")
	}
	grow := int64(rss1) - int64(rss0)
	t.Logf("%d slowloris connections (opened in %v, %d header slabs held): RSS %d -> %d KiB (+%.1f MiB, %.1f KiB/conn), HeapInuse %.1f -> %.1f MiB",
		n, allOpen.Sub(opened[0]).Round(time.Millisecond), held, rss0>>10, rss1>>10, float64(grow)/(1<<20),
		float64(grow)/1024/float64(n), float64(heap0)/(1<<20), float64(heap1)/(1<<20))
	if held < n*9/10 {
		t.Errorf("only %d of %d connections hold a slab at the measurement", held, n)
	}
	limit := int64(64<<20) * int64(n) / 5000
	if raceEnabled {
		limit *= 2
	}
	if grow > limit {
		t.Errorf("RSS grew %d bytes for %d connections, bound %d", grow, n, limit)
	}

	// Every one gets 408 and the close, about read_header_timeout after it opened.
	got408 := 0
	for i, c := range conns {
		_ = c.SetReadDeadline(opened[i].Add(timeout + 5*time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Errorf("conn %d: no response: %v", i, err)
			if t.Failed() && i-got408 > 10 {
				t.FailNow()
			}
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 408 {
			t.Errorf("conn %d: status %d, want 408", i, resp.StatusCode)
			continue
		}
		got408++
	}
	if got408 != n {
		t.Errorf("%d of %d connections got 408", got408, n)
	}
	for _, c := range conns {
		c.Close()
	}
	waitSlabs(t, srv, 0)
	if o.bytesRead() != 0 {
		t.Errorf("origin received %d bytes", o.bytesRead())
	}
}

// memNow returns VmRSS (bytes) and HeapInuse after a GC.
func memNow(t *testing.T) (rss, heap uint64) {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(v)), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10, ms.HeapInuse
		}
	}
	t.Skip("no VmRSS")
	return 0, 0
}
