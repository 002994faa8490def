package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what the harness takes from wrk's --latency report.
type wrkResult struct {
	requests  int64
	rps       float64
	p50, p99  float64 // milliseconds
	sockErrs  int64
	non2xx3xx int64
}

// runWrk runs wrk pinned to cpu against url and parses its report. The
// report is also written to rawPath when that is not empty. env is added to
// wrk's environment (OPENSSL_CONF for a TLS 1.2 scenario; nil otherwise).
func runWrk(ctx context.Context, cpu, url string, s scenario, script string, d time.Duration, rawPath string, env []string) (wrkResult, error) {
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	args := []string{"-c", cpu, "wrk", "-t1", "-c" + strconv.Itoa(s.conns), "-d" + strconv.Itoa(secs) + "s", "--latency", "--timeout", "5s"}
	for _, h := range s.headers {
		args = append(args, "-H", h)
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if rawPath != "" {
		_ = os.WriteFile(rawPath, append([]byte(strings.Join(append(append([]string{}, env...), cmd.Args...), " ")+"\n\n"), out...), 0o644)
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v: %s", err, lastLine(string(out)))
	}
	return parseWrk(string(out))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// parseWrk reads the parts of wrk's output the harness records:
//
//	  Latency Distribution
//	     50%  1.23ms
//	     99%  3.45ms
//	  123456 requests in 3.00s, 12.34MB read
//	  Socket errors: connect 0, read 0, write 0, timeout 0
//	  Non-2xx or 3xx responses: 12
//	Requests/sec:  41152.00
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveReq, haveRPS, have50, have99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "50%":
			v, err := parseDuration(f[1])
			r.p50, have50 = v, err == nil
		case len(f) == 2 && f[0] == "99%":
			v, err := parseDuration(f[1])
			r.p99, have99 = v, err == nil
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			r.requests, haveReq = n, err == nil
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			r.rps, haveRPS = v, err == nil
		case strings.HasPrefix(line, "Socket errors:"):
			// connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				r.sockErrs += n
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 4:
			n, _ := strconv.ParseInt(f[3], 10, 64)
			r.non2xx3xx = n
		}
	}
	if !haveReq || !haveRPS || !have50 || !have99 {
		return r, errors.New("wrk: could not parse its report: " + lastLine(out))
	}
	return r, nil
}

// parseDuration turns wrk's "812.00us", "1.23ms", "2.00s", "1.00m" into
// milliseconds.
func parseDuration(s string) (float64, error) {
	units := []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return f * u.ms, nil
		}
	}
	return 0, fmt.Errorf("unknown duration %q", s)
}
