package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sample is one measured run of one proxy in one scenario.
type sample struct {
	Round       int     `json:"round"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	CPUusPerReq float64 `json:"cpu_us_per_req"`
	// CPUPercent is the proxy's CPU time over the wall time of the measured
	// run: near 100 the proxy was the bottleneck, well below it the load
	// side (wrk and the origin, sharing one CPU) was.
	CPUPercent float64 `json:"cpu_percent"`
	// RSSMiB is the peak summed VmRSS during the measured run; for idle10k
	// it is the growth over RSSBeforeMiB while the idle connections are held,
	// for slowread the growth from RSSBeforeMiB to RSSPeakMiB.
	RSSMiB       float64 `json:"rss_mib"`
	RSSBeforeMiB float64 `json:"rss_before_mib,omitempty"`
	// slowread only: the peak summed VmRSS while the slow clients read
	// (sampled every 100 ms), the growth per slow client (KiB), how many
	// slow clients ran and how much of the body each read on average (MiB).
	RSSPeakMiB      float64 `json:"rss_peak_mib,omitempty"`
	RSSPerClientKiB float64 `json:"rss_growth_per_client_kib,omitempty"`
	SlowClients     int     `json:"slow_clients,omitempty"`
	SlowReadMiB     float64 `json:"slow_read_mib_per_client,omitempty"`
	Requests        int64   `json:"requests"`
	Errors          int64   `json:"errors"`
	// Cache scenarios only. OriginRequests is how many requests for the
	// scenario's one key reached the origin during the measured run, and
	// OriginRPSPerKey that per second; XCache is the X-Cache header of the
	// second of two back-to-back GETs after the warm-up ("none": absent).
	OriginRequests  int64   `json:"origin_requests,omitempty"`
	OriginRPSPerKey float64 `json:"origin_rps_per_key,omitempty"`
	XCache          string  `json:"x_cache,omitempty"`
	// HTTPS scenarios only. TLS is what the client negotiated ("TLSv1.3 TLS_AES_128_GCM_SHA256
	// X25519"): openssl s_client's view for wrk's scenarios, hsload's own in the handshake ones.
	// ClientResumed and ClientFull are hsload's handshakes that resumed (DidResume) or not;
	// LoadCPUPercent is hsload's own CPU over the run (of one core). ServerHandshakes and
	// ServerResumed are what the proxy itself counted (ServerResumed -1: it does not tell), and
	// ServerCount says where the counts come from and over which run.
	TLS              string  `json:"tls,omitempty"`
	ClientResumed    int64   `json:"client_resumed,omitempty"`
	ClientFull       int64   `json:"client_full,omitempty"`
	LoadCPUPercent   float64 `json:"load_cpu_percent,omitempty"`
	ServerHandshakes int64   `json:"server_handshakes,omitempty"`
	ServerResumed    int64   `json:"server_resumed,omitempty"`
	ServerCount      string  `json:"server_count,omitempty"`
	Failed           string  `json:"failed,omitempty"`
}

// ratios compare a proxy's medians with nginx's in the same scenario:
// above 1 means more requests/s, or more CPU, memory, latency.
// ratios against nginx are paired: each round's sample over nginx's sample of the same round (taken
// seconds apart), and the median of those, so that the machine's drift between rounds cancels. Without
// a round in common, the ratio of the medians.
type ratios struct {
	RPS float64 `json:"rps"`
	CPU float64 `json:"cpu_us_per_req"`
	RSS float64 `json:"rss"`
	P99 float64 `json:"p99"`
	// CPULow and CPUHigh are the smallest and largest per-round CPU ratios.
	CPULow  float64 `json:"cpu_us_per_req_low,omitempty"`
	CPUHigh float64 `json:"cpu_us_per_req_high,omitempty"`
}

type cell struct {
	Scenario string   `json:"scenario"`
	Proxy    string   `json:"proxy"`
	Skipped  string   `json:"skipped,omitempty"`
	Samples  []sample `json:"samples"`
	Median   *sample  `json:"median,omitempty"`
	VsNginx  *ratios  `json:"vs_nginx,omitempty"`
	// VsHAProxy is VsNginx against HAProxy, in the HTTPS scenarios only.
	VsHAProxy *ratios `json:"vs_haproxy,omitempty"`
}

type meta struct {
	Date        string            `json:"date"`
	Host        map[string]string `json:"host"`
	Versions    map[string]string `json:"versions"`
	Rounds      int               `json:"rounds"`
	Duration    string            `json:"duration"`
	Warmup      string            `json:"warmup"`
	ProxyCPU    string            `json:"proxy_cpu"`
	LoadCPU     string            `json:"load_cpu"`
	Loops       int               `json:"switchflow_loops"`
	Scenarios   map[string]string `json:"scenarios"`
	Proxies     []string          `json:"proxies"`
	MedianOver  string            `json:"median_over"`
	CPUMethod   string            `json:"cpu_method"`
	RSSMethod   string            `json:"rss_method"`
	ErrorMethod string            `json:"error_method"`
	CacheMethod string            `json:"cache_method,omitempty"`
	SlowMethod  string            `json:"slowread_method,omitempty"`
}

type results struct {
	Meta  meta    `json:"meta"`
	Cells []*cell `json:"results"`
	cells map[string]*cell
}

func (r *runner) meta(scens []scenario) meta {
	m := meta{
		Date:        time.Now().UTC().Format(time.RFC3339),
		Host:        map[string]string{},
		Versions:    map[string]string{"go": runtime.Version()},
		Rounds:      r.opt.rounds,
		Duration:    r.opt.duration.String(),
		Warmup:      r.opt.warmup.String(),
		ProxyCPU:    r.opt.proxyCPU,
		LoadCPU:     r.opt.loadCPU,
		Loops:       r.opt.loops,
		Scenarios:   map[string]string{},
		Proxies:     r.opt.proxies,
		MedianOver:  "rounds; each metric's median is taken on its own",
		CPUMethod:   "utime+stime of the proxy's process tree (/proc/PID/stat), delta over the measured run, divided by requests completed",
		RSSMethod:   "peak of summed VmRSS of the proxy's process tree, sampled every 200ms during the measured run; idle10k: growth while holding the idle connections, from the RSS after a warm-up of 500 connections opened and closed (rss_before_mib); slowread: peak (sampled every 100ms) minus the RSS just before the slow clients connect",
		ErrorMethod: "wrk socket errors (connect, read, write, timeout) plus non-2xx/3xx responses; idle10k: connections that failed to open; slowread: slow clients that failed (connect, status, framing, a byte differing from the origin's, a read error before the end of the run)",
	}
	for _, s := range scens {
		m.Scenarios[s.name] = s.desc
		if s.slow > 0 {
			m.SlowMethod = fmt.Sprintf("slowread: no wrk and no warm-up; %d clients connect at once, each with SO_RCVBUF %d KiB set before connecting, "+
				"send one GET %s (%d MiB, Content-Length) and read the body at %g MiB/s, checking every byte, for the run's duration, then close; "+
				"rss_before_mib is the proxy tree's VmRSS just before they connect, rss_peak_mib the largest sampled every %v while they read, "+
				"rss_mib the growth between the two and rss_growth_per_client_kib that over the clients; requests counts the clients that succeeded; "+
				"cpu_percent is the proxy's CPU over the run",
				s.slow, slowRcvBuf>>10, s.path, slowBodyMiB, float64(slowRate)/(1<<20), slowSampleInterval)
		}
		if s.cache {
			m.CacheMethod = "cache scenarios: every proxy caches " + cachePrefix + " for " + cacheTTL.String() +
				" (configs in OUT/run/); origin_requests is the origin's own count (GET /stats) of requests for the scenario's one key, " +
				"read just before and after the measured run; origin_rps_per_key divides it by the run's wall time; " +
				"x_cache is the X-Cache header of the second of two back-to-back GETs after the warm-up"
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Host["kernel"] = strings.TrimSpace(string(b))
	}
	// runtime.NumCPU would count only the CPU the harness is pinned to.
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				n++
				m.Host["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
		}
		m.Host["cpus"] = fmt.Sprint(n)
	}
	version := func(name string, args ...string) {
		bin := r.bins[name]
		if bin == "" {
			return
		}
		out, _ := exec.Command(bin, args...).CombinedOutput() // wrk -v exits 1
		m.Versions[name] = firstLine(strings.TrimSpace(string(out)))
	}
	version("nginx", "-v")
	version("haproxy", "-v")
	version("wrk", "-v")
	if hasHTTPS(scens) {
		// The TLS library of nginx, HAProxy and wrk, as this machine runs it.
		if out, err := exec.Command("openssl", "version").Output(); err == nil {
			m.Versions["openssl"] = firstLine(strings.TrimSpace(string(out)))
		}
	}
	return m
}

// summarize fills each cell's medians and its ratios against nginx.
func (res *results) summarize() {
	for _, c := range res.Cells {
		var ok []sample
		for _, s := range c.Samples {
			if s.Failed == "" {
				ok = append(ok, s)
			}
		}
		if len(ok) == 0 {
			continue
		}
		m := &sample{
			RPS:             median(ok, func(s sample) float64 { return s.RPS }),
			P50ms:           median(ok, func(s sample) float64 { return s.P50ms }),
			P99ms:           median(ok, func(s sample) float64 { return s.P99ms }),
			CPUusPerReq:     median(ok, func(s sample) float64 { return s.CPUusPerReq }),
			CPUPercent:      median(ok, func(s sample) float64 { return s.CPUPercent }),
			RSSMiB:          median(ok, func(s sample) float64 { return s.RSSMiB }),
			RSSBeforeMiB:    median(ok, func(s sample) float64 { return s.RSSBeforeMiB }),
			RSSPeakMiB:      median(ok, func(s sample) float64 { return s.RSSPeakMiB }),
			RSSPerClientKiB: median(ok, func(s sample) float64 { return s.RSSPerClientKiB }),
			SlowClients:     int(median(ok, func(s sample) float64 { return float64(s.SlowClients) })),
			SlowReadMiB:     median(ok, func(s sample) float64 { return s.SlowReadMiB }),
			Requests:        int64(median(ok, func(s sample) float64 { return float64(s.Requests) })),
			Errors:          int64(median(ok, func(s sample) float64 { return float64(s.Errors) })),
			OriginRequests:  int64(median(ok, func(s sample) float64 { return float64(s.OriginRequests) })),
			OriginRPSPerKey: median(ok, func(s sample) float64 { return s.OriginRPSPerKey }),
			XCache:          mostCommon(ok, func(s sample) string { return s.XCache }),
		}
		medianTLS(m, ok)
		c.Median = m
	}
	for _, c := range res.Cells {
		ng := res.cells[c.Scenario+"/nginx"]
		if c.Median == nil || ng == nil || ng.Median == nil {
			continue
		}
		cpu, lo, hi := pairedRatio(c, ng, func(s sample) float64 { return s.CPUusPerReq })
		rps, _, _ := pairedRatio(c, ng, func(s sample) float64 { return s.RPS })
		rss, _, _ := pairedRatio(c, ng, func(s sample) float64 { return s.RSSMiB })
		p99, _, _ := pairedRatio(c, ng, func(s sample) float64 { return s.P99ms })
		c.VsNginx = &ratios{RPS: rps, CPU: cpu, RSS: rss, P99: p99, CPULow: lo, CPUHigh: hi}
		if c.Proxy == "direct" {
			// The origin lives through the whole run, so its RSS holds
			// every earlier scenario's buffers: no fair comparison.
			c.VsNginx.RSS = 0
		}
	}
	for _, c := range res.Cells {
		res.vsHAProxy(c)
	}
}

// unmeasuredRow writes the table row of a cell that has no median (skipped, or every run failed, with
// the last failure) across cols columns, and reports whether it did.
func unmeasuredRow(b *strings.Builder, c *cell, cols int) bool {
	var what string
	switch {
	case c.Skipped != "":
		what = "skipped: " + c.Skipped
	case c.Median == nil:
		what = "failed: no successful run"
		if len(c.Samples) > 0 {
			what = "failed: " + c.Samples[len(c.Samples)-1].Failed
		}
	default:
		return false
	}
	fmt.Fprintf(b, "| %s | %s | %s %s\n", c.Scenario, c.Proxy, mdEscape(what), strings.Repeat("|", cols-2))
	return true
}

// pairedRatio is the median over the rounds both cells measured of f(c's sample) / f(nginx's sample),
// with the smallest and largest of those; the ratio of the medians when they share no round.
func pairedRatio(c, ng *cell, f func(sample) float64) (med, lo, hi float64) {
	byRound := map[int]sample{}
	for _, s := range ng.Samples {
		if s.Failed == "" {
			byRound[s.Round] = s
		}
	}
	var rs []float64
	for _, s := range c.Samples {
		if n, ok := byRound[s.Round]; ok && s.Failed == "" {
			if r := ratio(f(s), f(n)); r != 0 {
				rs = append(rs, r)
			}
		}
	}
	if len(rs) == 0 {
		return ratio(f(*c.Median), f(*ng.Median)), 0, 0
	}
	return medianOf(rs), slices.Min(rs), slices.Max(rs)
}

func median(ss []sample, f func(sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return medianOf(v)
}

// medianOf returns the median of v, which it sorts.
func medianOf(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// mostCommon returns the value of f seen most often over ss (the earliest
// on ties).
func mostCommon(ss []sample, f func(sample) string) string {
	n := map[string]int{}
	best := ""
	for _, s := range ss {
		v := f(s)
		n[v]++
		if n[v] > n[best] {
			best = v
		}
	}
	return best
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (res *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nMedians of %d round(s), %s each; proxy on CPU %s, wrk and origin on CPU %s. ×nginx: the median over rounds of the ratio to nginx in the same round (for CPU, the lowest and highest round in brackets).\n",
		res.Meta.Rounds, res.Meta.Duration, res.Meta.ProxyCPU, res.Meta.LoadCPU)
	b.WriteString("idle10k: RSS is the growth (MiB) while holding the idle connections, after a warm-up of " +
		strconv.Itoa(idleWarmup) + " connections opened and closed (in brackets: the whole RSS then); CPU is per connection opened.\n")
	b.WriteString("slowread: RSS is the peak growth (MiB) while slow clients download large responses; details in the slow-reader table below.\n\n")
	b.WriteString("CPU %: the proxy's CPU use during the run; well under 100 means wrk and the origin, not the proxy, set req/s.\n\n")
	b.WriteString("| scenario | proxy | req/s | ×nginx | p50 ms | p99 ms | CPU µs/req | ×nginx | CPU % | RSS MiB | ×nginx | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range res.Cells {
		if unmeasuredRow(&b, c, 12) {
			continue
		}
		m := c.Median
		rr := func(f func(*ratios) float64) string {
			if c.VsNginx == nil || f(c.VsNginx) == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", f(c.VsNginx))
		}
		cpuR := rr(func(r *ratios) float64 { return r.CPU })
		if v := c.VsNginx; v != nil && v.CPU != 0 && v.CPUHigh > v.CPULow {
			cpuR = fmt.Sprintf("%.2f (%.2f–%.2f)", v.CPU, v.CPULow, v.CPUHigh)
		}
		if strings.HasPrefix(c.Scenario, "idle") {
			fmt.Fprintf(&b, "| %s | %s | – | – | – | – | %.1f | %s | – | +%.1f (%.1f) | %s | %d |\n",
				c.Scenario, c.Proxy, m.CPUusPerReq, cpuR,
				m.RSSMiB, m.RSSBeforeMiB+m.RSSMiB, rr(func(r *ratios) float64 { return r.RSS }), m.Errors)
			continue
		}
		failed := ""
		if n := len(c.Samples) - countOK(c.Samples); n > 0 {
			failed = fmt.Sprintf(" (%d run(s) failed)", n)
		}
		if isSlowRead(c.Scenario) {
			fmt.Fprintf(&b, "| %s | %s | – | – | – | – | – | – | %.0f | %+.1f | %s | %d%s |\n",
				c.Scenario, c.Proxy, m.CPUPercent, m.RSSMiB, rr(func(r *ratios) float64 { return r.RSS }), m.Errors, failed)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %.2f | %.2f | %.1f | %s | %.0f | %.1f | %s | %d%s |\n",
			c.Scenario, c.Proxy, m.RPS, rr(func(r *ratios) float64 { return r.RPS }),
			m.P50ms, m.P99ms, m.CPUusPerReq, cpuR,
			m.CPUPercent, m.RSSMiB, rr(func(r *ratios) float64 { return r.RSS }), m.Errors, failed)
	}
	b.WriteString("\n")
	res.slowMarkdown(&b)
	res.cacheMarkdown(&b)
	res.tlsMarkdown(&b)
	return b.String()
}

// isSlowRead tells whether the named scenario is a slow-reader memory
// scenario (slowread).
func isSlowRead(name string) bool {
	sc, ok := findScenario(name)
	return ok && sc.slow > 0
}

// slowMarkdown adds, for slowread, the RSS before, the peak while the slow
// clients read, the growth, the growth per client and the ratio to nginx.
func (res *results) slowMarkdown(b *strings.Builder) {
	var scens []string
	for _, c := range res.Cells {
		if isSlowRead(c.Scenario) && !contains(scens, c.Scenario) {
			scens = append(scens, c.Scenario)
		}
	}
	if len(scens) == 0 {
		return
	}
	fmt.Fprintf(b, "Slow readers: %d clients each GET a %d MiB body and read it at %g MiB/s with a %d KiB receive buffer for %s, then close. "+
		"RSS before: the proxy's, just before they connect; peak: the largest sampled every %v while they read; growth: peak − before. "+
		"read MiB/client: how much of the body each client got on average (%.0f if the proxy kept up). ×nginx: growth over nginx's growth.\n\n",
		slowClients, slowBodyMiB, float64(slowRate)/(1<<20), slowRcvBuf>>10, res.Meta.Duration, slowSampleInterval,
		slowRate/float64(1<<20)*durationSeconds(res.Meta.Duration))
	b.WriteString("| scenario | proxy | clients | read MiB/client | RSS before MiB | peak RSS MiB | growth MiB | growth KiB/client | ×nginx | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range scens {
		for _, c := range res.Cells {
			if c.Scenario != s {
				continue
			}
			if unmeasuredRow(b, c, 10) {
				continue
			}
			m := c.Median
			vs := "–"
			if c.VsNginx != nil && c.VsNginx.RSS != 0 {
				vs = fmt.Sprintf("%.2f", c.VsNginx.RSS)
			}
			fmt.Fprintf(b, "| %s | %s | %d | %.1f | %.1f | %.1f | %+.1f | %.0f | %s | %d |\n",
				c.Scenario, c.Proxy, m.SlowClients, m.SlowReadMiB, m.RSSBeforeMiB, m.RSSPeakMiB, m.RSSMiB, m.RSSPerClientKiB, vs, m.Errors)
		}
	}
	b.WriteString("\n")
}

// durationSeconds parses a time.Duration's String form; 0 if it cannot.
func durationSeconds(s string) float64 {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return d.Seconds()
}

// cacheMarkdown adds, for the cache scenarios, how many requests reached the
// origin and each proxy's CPU per hit against the origin's own CPU per
// request (the direct row of the same scenario).
func (res *results) cacheMarkdown(b *strings.Builder) {
	var scens []string
	for _, c := range res.Cells {
		if sc, ok := findScenario(c.Scenario); ok && sc.cache && !contains(scens, c.Scenario) {
			scens = append(scens, c.Scenario)
		}
	}
	if len(scens) == 0 {
		return
	}
	fmt.Fprintf(b, "Cache scenarios (every proxy caches %s for %s). origin req/s per key: the requests for the one cached key that reached the origin "+
		"during the measured run, per second (target: about 1 per TTL, whatever the client concurrency). X-Cache: the header on the second of two "+
		"back-to-back GETs after the warm-up (none: no X-Cache header). ×origin: the proxy's CPU per request (nearly all hits) over the origin's own "+
		"CPU per request (direct); below 1 means a hit costs the proxy less than the origin spends producing the response.\n\n", cachePrefix, cacheTTL)
	b.WriteString("| scenario | proxy | X-Cache | origin req/s per key | origin requests | share of client requests | CPU µs/req | ×origin |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, s := range scens {
		direct := res.cells[s+"/direct"]
		var originCPU float64
		if direct != nil && direct.Median != nil {
			originCPU = direct.Median.CPUusPerReq
		}
		for _, c := range res.Cells {
			if c.Scenario != s {
				continue
			}
			if unmeasuredRow(b, c, 8) {
				continue
			}
			m := c.Median
			share := "–"
			if m.Requests > 0 {
				share = strconv.FormatFloat(float64(m.OriginRequests)/float64(m.Requests)*100, 'g', 3, 64) + "%"
			}
			vsOrigin := "–"
			if c.Proxy != "direct" && originCPU > 0 {
				vsOrigin = fmt.Sprintf("%.2f", m.CPUusPerReq/originCPU)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %.1f | %d | %s | %.1f | %s |\n",
				c.Scenario, c.Proxy, m.XCache, m.OriginRPSPerKey, m.OriginRequests, share, m.CPUusPerReq, vsOrigin)
		}
	}
	b.WriteString("\n")
	for _, s := range scens {
		direct := res.cells[s+"/direct"]
		if direct == nil || direct.Median == nil || direct.Median.CPUusPerReq == 0 {
			fmt.Fprintf(b, "%s: no direct run, so no origin CPU per request to compare with (add direct to -proxies).\n", s)
			continue
		}
		originCPU := direct.Median.CPUusPerReq
		var parts []string
		for _, c := range res.Cells {
			if c.Scenario != s || c.Proxy == "direct" || c.Median == nil {
				continue
			}
			cpu := c.Median.CPUusPerReq
			if c.Median.XCache != "HIT" {
				parts = append(parts, fmt.Sprintf("%s %.1f µs per request, but not served from a cache (X-Cache: %s)", c.Proxy, cpu, c.Median.XCache))
				continue
			}
			verdict := "below"
			if cpu >= originCPU {
				verdict = "NOT below"
			}
			parts = append(parts, fmt.Sprintf("%s %.1f µs per hit (%.2f×, %s)", c.Proxy, cpu, cpu/originCPU, verdict))
		}
		fmt.Fprintf(b, "%s: the origin's own CPU is %.1f µs per request (direct); %s.\n", s, originCPU, strings.Join(parts, "; "))
	}
	b.WriteString("\n")
}

func countOK(ss []sample) int {
	n := 0
	for _, s := range ss {
		if s.Failed == "" {
			n++
		}
	}
	return n
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// reprint prints the table for a results.json written earlier, summarized again, and, when chart is
// not empty, draws its chart there.
func reprint(path, chart string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	res.cells = map[string]*cell{}
	for _, c := range res.Cells {
		res.cells[c.Scenario+"/"+c.Proxy] = c
	}
	res.summarize()
	fmt.Print(res.markdown())
	if chart != "" {
		root, err := findRepoRoot()
		if err != nil {
			return err
		}
		return writeChart(root, path, chart)
	}
	return nil
}

func (res *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeChart draws the chart of results.json (jsonPath) to path with benchmarks/chart, a module of its
// own so that the plotting library stays out of the proxy's module: a panel per scenario and measure,
// bars at the median over rounds and whiskers over the rounds' range.
func writeChart(repoRoot, jsonPath, path string) error {
	in, err := filepath.Abs(jsonPath)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "run", ".", "-in", in, "-out", out)
	cmd.Dir = filepath.Join(repoRoot, "benchmarks", "chart")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("benchmarks/chart: %v: %s", err, strings.TrimSpace(string(msg)))
	}
	return nil
}
