package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// slowSampleInterval is how often slowread samples the proxy's RSS.
const slowSampleInterval = 100 * time.Millisecond

// slowChunk is the most one slow client reads at once; with pacing it is
// the size of the bursts around the steady slowRate.
const slowChunk = 16 << 10

// measureSlowRead runs the slowread scenario against the proxy on addr:
// s.slow clients each GET s.path (a slowBodyMiB body), read it at slowRate
// with a slowRcvBuf receive buffer for the run's duration, then close. It
// records the proxy tree's RSS just before, its peak (sampled every
// slowSampleInterval) while the clients read, and the growth between the two.
func (r *runner) measureSlowRead(smp sample, s scenario, name, addr string, target *proc) (sample, error) {
	sleepCtx(r.ctx, 300*time.Millisecond)
	if target.exited() {
		return smp, fmt.Errorf("%s exited after the response check (%v): %s", name, target.err, target.lastLogLine())
	}
	pids := treePIDs(target.pid())
	before := sumRSS(pids)
	stopSampling, peakKiB := sampleRSS(pids, slowSampleInterval)
	cpu0 := sumTicks(pids)
	t0 := time.Now()
	end := t0.Add(r.opt.duration)

	type result struct {
		read int64
		err  error
	}
	results := make([]result, s.slow)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := slowRead(r.ctx, addr, s.path, int64(slowBodyMiB)<<20, end)
			results[i] = result{n, err}
		}()
	}
	wg.Wait()
	cpu1 := sumTicks(pids)
	elapsed := time.Since(t0)
	stopSampling()
	if err := r.ctx.Err(); err != nil {
		return smp, err
	}
	if target.exited() {
		return smp, fmt.Errorf("%s exited during the run (%v): %s", name, target.err, target.lastLogLine())
	}

	var ok, failed, read int64
	var firstErr error
	for _, res := range results {
		read += res.read
		if res.err != nil {
			failed++
			if firstErr == nil {
				firstErr = res.err
			}
			continue
		}
		ok++
	}
	if ok == 0 {
		return smp, fmt.Errorf("every slow client failed: %w", firstErr)
	}
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "bench:   %s: %d of %d slow clients failed, the first: %v\n", name, failed, s.slow, firstErr)
	}
	perClient := float64(read) / float64(s.slow) / (1 << 20)
	if expect := r.opt.duration.Seconds() * slowRate / (1 << 20); perClient < expect/2 {
		fmt.Fprintf(os.Stderr, "bench:   %s: the slow clients read %.1f MiB each, under half the %.0f MiB they asked for: the proxy held them back\n",
			name, perClient, expect)
	}
	growth := (float64(*peakKiB) - float64(before)) / 1024
	smp.Requests = ok
	smp.Errors = failed
	smp.SlowClients = s.slow
	smp.SlowReadMiB = perClient
	smp.RSSBeforeMiB = float64(before) / 1024
	smp.RSSPeakMiB = float64(*peakKiB) / 1024
	smp.RSSMiB = growth
	smp.RSSPerClientKiB = growth * 1024 / float64(s.slow)
	smp.CPUPercent = float64(cpu1-cpu0) / r.hz / elapsed.Seconds() * 100
	return smp, nil
}

// slowRead is one slow client: it connects to addr with a slowRcvBuf receive
// buffer (set before connecting, so the TCP window stays that small), sends
// one GET for path, checks the head (200, Content-Length size or none) and
// then reads the body at slowRate until end, checking every byte against
// the origin's pattern. It returns the body bytes read. Reaching end is
// success; so is reading the whole body before it.
func slowRead(ctx context.Context, addr, path string, size int64, end time.Time) (int64, error) {
	d := net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, slowRcvBuf)
			}); err != nil {
				return err
			}
			return serr
		},
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := conn.SetDeadline(end); err != nil {
		return 0, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: switchflow-bench-slowread\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, fmt.Errorf("sending the request: %w", err)
	}
	br := bufio.NewReaderSize(conn, 4<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, fmt.Errorf("reading the response head: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d, want 200", resp.StatusCode)
	}
	if resp.ContentLength != size && resp.ContentLength != -1 {
		return 0, fmt.Errorf("Content-Length %d, want %d", resp.ContentLength, size)
	}

	// want holds the pattern from any offset modulo 256 (its period) for a
	// whole chunk.
	want := pattern(slowChunk + 256)
	buf := make([]byte, slowChunk)
	start := time.Now()
	var read int64
	for {
		now := time.Now()
		if !now.Before(end) {
			return read, nil
		}
		// Pace: by now the client may have read slowRate bytes per second.
		if due := start.Add(time.Duration(float64(read) / slowRate * float64(time.Second))); due.After(now) {
			if due.After(end) {
				due = end
			}
			sleepCtx(ctx, due.Sub(now))
			if err := ctx.Err(); err != nil {
				return read, err
			}
			continue
		}
		n, err := resp.Body.Read(buf)
		if n > 0 {
			o := int(read % 256)
			if !bytes.Equal(buf[:n], want[o:o+n]) {
				return read, fmt.Errorf("body differs from the origin's pattern within bytes %d..%d", read, read+int64(n))
			}
			read += int64(n)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			if resp.ContentLength == -1 || read == size {
				return read, nil
			}
			return read, fmt.Errorf("body ended after %d of %d bytes", read, size)
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil:
			return read, nil // end came while waiting for bytes
		default:
			return read, fmt.Errorf("reading the body after %d bytes: %w", read, err)
		}
	}
}
