package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"switchflow/benchmarks/hsreport"
)

// otherKind is the certificate kind that is not kind: its root is the wrong root of checkChain.
func otherKind(kind string) string {
	for _, k := range certKinds {
		if k != kind {
			return k
		}
	}
	return kind
}

// newTLSRun chooses the addresses of one HTTPS run of the named proxy.
func (r *runner) newTLSRun(name string, s scenario) (*tlsRun, error) {
	cf, ok := r.certs[s.tls]
	if !ok {
		return nil, fmt.Errorf("no %q certificate (have %s)", s.tls, strings.Join(certKinds, ", "))
	}
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	tr := &tlsRun{Listen: listen, Cert: cf}
	dir := filepath.Join(r.outDir, "run", name)
	switch name {
	case "switchflow":
		if tr.Admin, err = freePort(); err != nil {
			return nil, err
		}
	case "haproxy":
		tr.StatsSocket = filepath.Join(dir, "haproxy.sock")
		if len(tr.StatsSocket) > 100 { // a Unix socket's path has room for 107 bytes
			tr.StatsSocket = filepath.Join(os.TempDir(), "switchflow-bench-haproxy-"+strconv.Itoa(os.Getpid())+".sock")
		}
		_ = os.Remove(tr.StatsSocket)
	case "nginx":
		if s.hsload {
			tr.ProbeLog = filepath.Join(dir, "tls-probe.log")
			if err := os.Remove(tr.ProbeLog); err != nil && !os.IsNotExist(err) {
				return nil, err
			}
		}
	}
	return tr, nil
}

// measureTLS is measure for an HTTPS scenario, once the proxy runs: the response is checked over TLS,
// then a warm-up and the measured run go to the proxy's TLS listener, with wrk (keep-alive) or hsload
// (a connection per request). Besides what measure records, it records what was negotiated and the
// handshakes that the client and the proxy counted.
func (r *runner) measureTLS(smp sample, s scenario, name string, tr *tlsRun, target *proc) (sample, error) {
	tc, err := tlsClientConfig(tr.Cert, s.tlsMax)
	if err != nil {
		return smp, err
	}
	if err := s.checkVia("https://"+tr.Listen, tc); err != nil {
		return smp, fmt.Errorf("response check over TLS through %s failed: %w", name, err)
	}
	if err := checkChain(tr.Listen, tr.Cert, r.certs[otherKind(s.tls)].CA); err != nil {
		return smp, fmt.Errorf("certificate chain of %s: %w", name, err)
	}
	env := wrkEnv(s, tr.Cert)
	if !s.hsload {
		// What wrk's OpenSSL negotiates; hsload reports its own.
		if smp.TLS, err = opensslProbe(r.ctx, tr.Listen, tr.Cert.CA, env); err != nil {
			return smp, fmt.Errorf("TLS probe of %s: %w", name, err)
		}
	}
	url := "https://" + tr.Listen + s.path
	load := func(d time.Duration, raw string, probe bool) (wrkResult, *hsreport.Result, error) {
		if s.hsload {
			h, err := r.runHsload(s, tr.Listen, d, raw, probe)
			return wrkResult{}, h, err
		}
		w, err := runWrk(r.ctx, r.opt.loadCPU, url, s, "", d, raw, env)
		return w, nil, err
	}
	if r.opt.warmup > 0 {
		if _, _, err := load(r.opt.warmup, "", true); err != nil {
			return smp, fmt.Errorf("warm-up: %w", err)
		}
	}
	if tr.ProbeLog != "" && r.opt.warmup > 0 {
		c, negotiated, err := nginxProbeLog(tr.ProbeLog)
		if err != nil {
			return smp, fmt.Errorf("nginx probe log: %w", err)
		}
		smp.ServerHandshakes, smp.ServerResumed, smp.ServerCount = c.Total, c.Resumed, c.By+" ("+negotiated+")"
	}
	sleepCtx(r.ctx, 200*time.Millisecond)
	if target.exited() {
		return smp, fmt.Errorf("%s exited during warm-up (%v): %s", name, target.err, target.lastLogLine())
	}

	hs0, counted, err := serverHandshakes(name, tr)
	if err != nil {
		return smp, fmt.Errorf("%s's handshake counters: %w", name, err)
	}
	pids := treePIDs(target.pid())
	stopSampling, peakKiB := sampleRSS(pids, 200*time.Millisecond)
	cpu0 := sumTicks(pids)
	t0 := time.Now()
	raw := filepath.Join(r.outDir, "raw", fmt.Sprintf("r%d-%s-%s.txt", smp.Round, s.name, name))
	w, h, err := load(r.opt.duration, raw, false)
	cpu1 := sumTicks(pids)
	elapsed := time.Since(t0)
	stopSampling()
	if err != nil {
		return smp, err
	}
	if target.exited() {
		return smp, fmt.Errorf("%s exited during the run (%v): %s", name, target.err, target.lastLogLine())
	}
	if counted {
		hs1, _, err := serverHandshakes(name, tr)
		if err != nil {
			return smp, fmt.Errorf("%s's handshake counters: %w", name, err)
		}
		d := hs1.minus(hs0)
		smp.ServerHandshakes, smp.ServerResumed, smp.ServerCount = d.Total, d.Resumed, d.By
	}
	if h != nil {
		w = wrkResult{requests: h.Requests, rps: h.RPS, p50: h.P50ms, p99: h.P99ms, sockErrs: h.Errors}
		smp.TLS = strings.TrimSpace("TLSv" + h.Version + " " + h.Cipher + " " + h.Group)
		smp.ClientResumed, smp.ClientFull = h.Resumed, h.Full
		smp.LoadCPUPercent = h.ClientCPUPercent
	}
	r.record(&smp, w, cpu1-cpu0, elapsed, *peakKiB)
	return smp, nil
}

// runHsload runs benchmarks/cmd/hsload pinned to the load CPU against the TLS address for d, verifying
// the proxy's chain against the scenario's root, and returns its report, also written to rawPath when that is not empty. probe adds probeHeader to its
// requests.
func (r *runner) runHsload(s scenario, addr string, d time.Duration, rawPath string, probe bool) (*hsreport.Result, error) {
	args := []string{"-c", r.opt.loadCPU, r.bins["hsload"], "-addr", addr, "-server-name", tlsServerName,
		"-conns", strconv.Itoa(s.conns), "-duration", d.String(), "-path", s.path, "-ca", r.certs[s.tls].CA}
	if s.resume {
		args = append(args, "-resume")
	}
	if s.tlsMax != "" {
		args = append(args, "-max-version", s.tlsMax)
	}
	if probe {
		args = append(args, "-H", probeHeader)
	}
	ctx, cancel := context.WithTimeout(r.ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if rawPath != "" {
		_ = os.WriteFile(rawPath, []byte(strings.Join(cmd.Args, " ")+"\n\n"+string(out)+stderr.String()), 0o644)
	}
	var h hsreport.Result
	if jerr := json.Unmarshal([]byte(lastLine(string(out))), &h); jerr != nil {
		if err == nil {
			err = jerr
		}
		return nil, fmt.Errorf("hsload: %v: %s", err, lastLine(stderr.String()))
	}
	if err != nil {
		return nil, fmt.Errorf("hsload: %v (%d errors; last: %s)", err, h.Errors, h.LastError)
	}
	return &h, nil
}
