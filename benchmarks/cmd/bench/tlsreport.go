package main

import (
	"fmt"
	"strings"
)

// The HTTPS scenarios' part of the report: what was negotiated, the handshakes counted on each side,
// handshakes per second per core, ratios against nginx and HAProxy, and SwitchFlow's targets.

// medianTLS fills the HTTPS fields of the median sample m from the successful samples ok.
func medianTLS(m *sample, ok []sample) {
	m.TLS = mostCommon(ok, func(s sample) string { return s.TLS })
	m.ClientResumed = int64(median(ok, func(s sample) float64 { return float64(s.ClientResumed) }))
	m.ClientFull = int64(median(ok, func(s sample) float64 { return float64(s.ClientFull) }))
	m.LoadCPUPercent = median(ok, func(s sample) float64 { return s.LoadCPUPercent })
	m.ServerHandshakes = int64(median(ok, func(s sample) float64 { return float64(s.ServerHandshakes) }))
	m.ServerResumed = int64(median(ok, func(s sample) float64 { return float64(s.ServerResumed) }))
	m.ServerCount = mostCommon(ok, func(s sample) string { return s.ServerCount })
}

// isHTTPS tells whether the named scenario is an HTTPS one, and whether it opens a connection per
// request (a handshake scenario).
func isHTTPS(name string) (https, handshakes bool) {
	s, ok := findScenario(name)
	return ok && s.tls != "", ok && s.hsload
}

// vsHAProxy sets c.VsHAProxy, in the HTTPS scenarios, from the paired rounds with HAProxy.
func (res *results) vsHAProxy(c *cell) {
	if https, _ := isHTTPS(c.Scenario); !https || c.Median == nil || c.Proxy == "haproxy" {
		return
	}
	hp := res.cells[c.Scenario+"/haproxy"]
	if hp == nil || hp.Median == nil {
		return
	}
	cpu, lo, hi := pairedRatio(c, hp, func(s sample) float64 { return s.CPUusPerReq })
	rps, _, _ := pairedRatio(c, hp, func(s sample) float64 { return s.RPS })
	rss, _, _ := pairedRatio(c, hp, func(s sample) float64 { return s.RSSMiB })
	p99, _, _ := pairedRatio(c, hp, func(s sample) float64 { return s.P99ms })
	c.VsHAProxy = &ratios{RPS: rps, CPU: cpu, RSS: rss, P99: p99, CPULow: lo, CPUHigh: hi}
}

// perCore is handshakes (connections) per second per core: 1 / the CPU per connection.
func perCore(s sample) float64 {
	if s.CPUusPerReq <= 0 {
		return 0
	}
	return 1e6 / s.CPUusPerReq
}

// tlsMarkdown adds the HTTPS table and SwitchFlow's targets, when an HTTPS scenario ran.
func (res *results) tlsMarkdown(b *strings.Builder) {
	var scens []string
	for _, c := range res.Cells {
		if https, _ := isHTTPS(c.Scenario); https && !contains(scens, c.Scenario) {
			scens = append(scens, c.Scenario)
		}
	}
	if len(scens) == 0 {
		return
	}
	b.WriteString("HTTPS scenarios: the proxy terminates TLS and forwards plain HTTP to the origin. " +
		"Keep-alive (wrk): CPU µs/req is the proxy's CPU per HTTPS request. Handshake scenarios (hsload, a new connection per request): " +
		"CPU µs/req is the proxy's CPU per connection, handshake and one request included, and handshakes/s/core is 1 / that. " +
		"×nginx and ×HAProxy: the median over rounds of that round's ratio. negotiated: the client's view (openssl s_client for wrk, hsload's own). " +
		"resumed (client): hsload's handshakes that resumed (DidResume). server count: handshakes the proxy itself counted " +
		"(SwitchFlow: switchflow_tls_handshakes_total, which does not tell resumed ones; HAProxy: ssl_sess and ssl_reused_sess; both over the measured run, " +
		"per request; nginx: $ssl_session_reused in the warm-up's log). load CPU: hsload's own CPU (of one core).\n\n")
	b.WriteString("| scenario | proxy | negotiated | CPU µs/req | ×nginx | ×HAProxy | handshakes/s/core | ×nginx | ×HAProxy | p99 ms | p99 ×nginx | resumed (client) | server count | load CPU % |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
	for _, s := range scens {
		_, hs := isHTTPS(s)
		ng := res.cells[s+"/nginx"]
		hp := res.cells[s+"/haproxy"]
		for _, c := range res.Cells {
			if c.Scenario != s || unmeasuredRow(b, c, 14) {
				continue
			}
			m := c.Median
			cpuVs := func(ref *cell, r *ratios) string {
				if r == nil || r.CPU == 0 || ref == nil {
					return "–"
				}
				return fmt.Sprintf("%.2f", r.CPU)
			}
			perCoreVs := func(ref *cell) string {
				if ref == nil || ref.Median == nil || ref == c {
					return "–"
				}
				v, _, _ := pairedRatio(c, ref, perCore)
				if v == 0 {
					return "–"
				}
				return fmt.Sprintf("%.2f", v)
			}
			hsCol, hsNg, hsHp := "–", "–", "–"
			if hs {
				hsCol, hsNg, hsHp = fmt.Sprintf("%.0f", perCore(*m)), perCoreVs(ng), perCoreVs(hp)
			}
			p99 := "–"
			if c.VsNginx != nil && c.VsNginx.P99 != 0 {
				p99 = fmt.Sprintf("%.2f", c.VsNginx.P99)
			}
			resumed, load := "–", "–"
			if n := m.ClientResumed + m.ClientFull; n > 0 {
				resumed = fmt.Sprintf("%.1f%%", float64(m.ClientResumed)/float64(n)*100)
				load = fmt.Sprintf("%.0f", m.LoadCPUPercent)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %.2f | %s | %s | %s | %s |\n",
				c.Scenario, c.Proxy, orDash(m.TLS), m.CPUusPerReq, cpuVs(ng, c.VsNginx), cpuVs(hp, c.VsHAProxy),
				hsCol, hsNg, hsHp, m.P99ms, p99, resumed, mdEscape(serverCount(m)), load)
		}
	}
	b.WriteString("\n")
	res.tlsTargets(b, scens)
}

// serverCount describes what the proxy counted: per request over the measured run, or the resumed
// share of the warm-up.
func serverCount(m *sample) string {
	if m.ServerCount == "" || m.ServerHandshakes == 0 {
		return "–"
	}
	var parts []string
	switch perReq := float64(m.ServerHandshakes) / float64(max(m.Requests, 1)); {
	case !strings.Contains(m.ServerCount, "measured run"):
		parts = append(parts, fmt.Sprintf("warm-up: %d handshakes", m.ServerHandshakes))
	case perReq < 0.1: // keep-alive: the connections' first handshakes
		parts = append(parts, fmt.Sprintf("%d handshakes", m.ServerHandshakes))
	default:
		parts = append(parts, fmt.Sprintf("%.2f handshakes/req", perReq))
	}
	if m.ServerResumed >= 0 {
		parts = append(parts, fmt.Sprintf("%.1f%% resumed", float64(m.ServerResumed)/float64(m.ServerHandshakes)*100))
	} else {
		parts = append(parts, "resumed not counted")
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// tlsTargets states, for each HTTPS scenario SwitchFlow and nginx both ran, SwitchFlow's targets
// against nginx (issue 22): CPU per keep-alive request at most 1.0×; full handshakes per second per core
// at least 0.9×; resumed at least 1.0×; p99 no worse.
func (res *results) tlsTargets(b *strings.Builder, scens []string) {
	var lines []string
	for _, s := range scens {
		c, ng := res.cells[s+"/switchflow"], res.cells[s+"/nginx"]
		if c == nil || ng == nil || c.Median == nil || ng.Median == nil || c.VsNginx == nil {
			continue
		}
		sc, _ := findScenario(s)
		var parts []string
		verdict := func(ok bool) string {
			if ok {
				return "met"
			}
			return "NOT met"
		}
		switch {
		case !sc.hsload:
			parts = append(parts, fmt.Sprintf("CPU per request %.2f× nginx (target ≤ 1.0: %s)", c.VsNginx.CPU, verdict(c.VsNginx.CPU <= 1.0)))
		default:
			want := 0.9
			if sc.resume {
				want = 1.0
			}
			v, lo, hi := pairedRatio(c, ng, perCore)
			parts = append(parts, fmt.Sprintf("handshakes/s/core %.2f× nginx [rounds %.2f–%.2f] (target ≥ %.1f: %s)", v, lo, hi, want, verdict(v >= want)))
		}
		parts = append(parts, fmt.Sprintf("p99 %.2f× nginx (target ≤ 1.0: %s)", c.VsNginx.P99, verdict(c.VsNginx.P99 <= 1.0)))
		lines = append(lines, fmt.Sprintf("- %s: %s.", s, strings.Join(parts, "; ")))
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("SwitchFlow's HTTPS targets against nginx in this run (medians of per-round ratios):\n\n")
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n\n")
}
