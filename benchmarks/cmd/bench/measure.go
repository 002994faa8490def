package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// measure runs one scenario once against a fresh instance of one proxy.
func (r *runner) measure(round int, s scenario, name string) (sample, error) {
	smp := sample{Round: round}
	addr := r.originAddr
	if name != "direct" {
		var err error
		if addr, err = freePort(); err != nil {
			return smp, err
		}
	}
	var tr *tlsRun
	if s.tls != "" {
		var err error
		if tr, err = r.newTLSRun(name, s); err != nil {
			return smp, err
		}
	}
	p, cleanup, err := r.startProxy(name, addr, s.cache, tr)
	defer cleanup() // deferred first: runs after the proxy is stopped
	if err != nil {
		return smp, err
	}
	defer r.sup.stop(p)
	target := p
	if target == nil {
		target = r.origin // direct: the origin is the process under test
	}
	if tr != nil {
		return r.measureTLS(smp, s, name, tr, target)
	}
	if err := s.check(addr); err != nil {
		return smp, fmt.Errorf("response check through %s failed: %w", name, err)
	}
	if s.idle > 0 {
		return r.measureIdle(smp, s, name, addr, target)
	}
	if s.slow > 0 {
		return r.measureSlowRead(smp, s, name, addr, target)
	}

	script, err := s.luaScript(r.outDir)
	if err != nil {
		return smp, err
	}
	url := "http://" + addr + s.path
	if r.opt.warmup > 0 {
		if _, err := runWrk(r.ctx, r.opt.loadCPU, url, s, script, r.opt.warmup, "", nil); err != nil {
			return smp, fmt.Errorf("warm-up: %w", err)
		}
	}
	if s.cache {
		// Two GETs in a row: the second should come from the cache.
		if smp.XCache, err = s.cacheProbe(addr); err != nil {
			return smp, fmt.Errorf("cache probe: %w", err)
		}
		if smp.XCache == "" {
			smp.XCache = "none"
		}
	}
	sleepCtx(r.ctx, 200*time.Millisecond)
	if target.exited() {
		return smp, fmt.Errorf("%s exited during warm-up (%v): %s", name, target.err, target.lastLogLine())
	}
	var origin0 int64
	if s.cache {
		if origin0, err = originCount(r.originAddr, s.path); err != nil {
			return smp, err
		}
	}

	pids := treePIDs(target.pid())
	stopSampling, peakKiB := sampleRSS(pids, 200*time.Millisecond)
	cpu0 := sumTicks(pids)
	t0 := time.Now()
	raw := filepath.Join(r.outDir, "raw", fmt.Sprintf("r%d-%s-%s.txt", round, s.name, name))
	res, err := runWrk(r.ctx, r.opt.loadCPU, url, s, script, r.opt.duration, raw, nil)
	cpu1 := sumTicks(pids)
	elapsed := time.Since(t0)
	stopSampling()
	if err != nil {
		return smp, err
	}
	if s.cache {
		origin1, err := originCount(r.originAddr, s.path)
		if err != nil {
			return smp, err
		}
		// One key (s.path): the origin's requests per second for it.
		smp.OriginRequests = origin1 - origin0
		smp.OriginRPSPerKey = float64(smp.OriginRequests) / elapsed.Seconds()
	}
	if target.exited() {
		return smp, fmt.Errorf("%s exited during the run (%v): %s", name, target.err, target.lastLogLine())
	}
	r.record(&smp, res, cpu1-cpu0, elapsed, *peakKiB)
	return smp, nil
}

// record fills smp from a run of the load: the load's figures, and the proxy's CPU (ticks over the run,
// which lasted elapsed) per request and per second, and its peak RSS.
func (r *runner) record(smp *sample, w wrkResult, ticks uint64, elapsed time.Duration, peakKiB uint64) {
	smp.RPS = w.rps
	smp.P50ms = w.p50
	smp.P99ms = w.p99
	smp.Requests = w.requests
	smp.Errors = w.sockErrs + w.non2xx3xx
	if w.requests > 0 {
		smp.CPUusPerReq = float64(ticks) / r.hz * 1e6 / float64(w.requests)
	}
	smp.CPUPercent = float64(ticks) / r.hz / elapsed.Seconds() * 100
	smp.RSSMiB = float64(peakKiB) / 1024
}

// measureIdle opens s.idle idle keep-alive connections through addr and
// records how much the process tree of target grew.
func (r *runner) measureIdle(smp sample, s scenario, name, addr string, target *proc) (sample, error) {
	// Warm-up, the same for every proxy: a few hundred connections opened, served and closed, so that what
	// is measured is the cost of holding connections, not of running the accept and proxy code for the
	// first time (code pages, worker threads or goroutines, the first upstream connections).
	if err := r.runIdleconns(s, addr, idleWarmup, nil); err != nil {
		return smp, fmt.Errorf("warm-up: %w", err)
	}
	sleepCtx(r.ctx, time.Second)
	pids := treePIDs(target.pid())
	before := rssKiB(target.pid())
	cpu0 := sumTicks(pids)
	var ok, failed int64
	var after, cpu1 uint64
	err := r.runIdleconns(s, addr, s.idle, func(o, f int64) error {
		ok, failed = o, f
		// Measure connections that are idle, not just-served: give every proxy a few seconds to finish lazy
		// per-connection work and settle (SwitchFlow hands an idle connection's header page back after 2 s).
		sleepCtx(r.ctx, 3*time.Second)
		if target.exited() {
			return fmt.Errorf("%s exited holding idle connections (%v): %s", name, target.err, target.lastLogLine())
		}
		pids = treePIDs(target.pid())
		after = rssKiB(target.pid())
		cpu1 = sumTicks(pids)
		return nil
	})
	if err != nil {
		return smp, err
	}
	smp.Requests = ok
	smp.Errors = failed
	smp.RSSBeforeMiB = float64(before) / 1024
	smp.RSSMiB = (float64(after) - float64(before)) / 1024
	if ok > 0 {
		smp.CPUusPerReq = float64(cpu1-cpu0) / r.hz * 1e6 / float64(ok)
	}
	return smp, nil
}

// idleWarmup is how many connections measureIdle opens and closes before it reads the starting RSS.
const idleWarmup = 500

// runIdleconns opens n keep-alive connections through addr with one GET each and, once they are all open,
// calls hold (if any) while they are held; they are closed when it returns.
func (r *runner) runIdleconns(s scenario, addr string, n int, hold func(ok, failed int64) error) error {
	logPath := filepath.Join(r.outDir, "run", "idleconns.log")
	ic, out, closeStdin, err := r.sup.startPiped("idleconns", r.opt.loadCPU, logPath, r.bins["idleconns"],
		"-addr", addr, "-n", strconv.Itoa(n), "-path", s.path, "-hold", "5m")
	if err != nil {
		return err
	}
	defer r.sup.stop(ic)
	defer closeStdin()

	lines := make(chan string, 1)
	go func() {
		line, _ := out.ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(3 * time.Minute):
		return fmt.Errorf("idleconns did not open %d connections within 3 minutes", n)
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	var ok, failed int64
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "ready ok=%d failed=%d", &ok, &failed); err != nil {
		return fmt.Errorf("idleconns: unexpected output %q: %s", line, ic.lastLogLine())
	}
	if hold == nil {
		if failed > 0 {
			return fmt.Errorf("idleconns: %d of %d connections failed: %s", failed, n, ic.lastLogLine())
		}
		return nil
	}
	return hold(ok, failed)
}

func sumTicks(pids []int) uint64 {
	var sum uint64
	for _, p := range pids {
		if st, err := readStat(p); err == nil {
			sum += st.utime + st.stime
		}
	}
	return sum
}

func sumRSS(pids []int) uint64 {
	var sum uint64
	for _, p := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					n, _ := strconv.ParseUint(f[0], 10, 64)
					sum += n
				}
				break
			}
		}
	}
	return sum
}

// sampleRSS records the peak of the summed VmRSS of pids every interval
// until the returned stop function is called; stop returns after the last
// sample, so *peak is final then.
func sampleRSS(pids []int, interval time.Duration) (stop func(), peak *uint64) {
	peak = new(uint64)
	*peak = sumRSS(pids)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				*peak = max(*peak, sumRSS(pids))
				return
			case <-t.C:
				*peak = max(*peak, sumRSS(pids))
			}
		}
	}()
	return func() { close(quit); wg.Wait() }, peak
}
