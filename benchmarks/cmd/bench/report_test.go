package main

import (
	"math"
	"strings"
	"testing"
)

// TestPairedRatios: ratios against nginx pair samples by round, so a round where the whole machine ran
// slow moves both sides together; the median and the range of the per-round ratios are reported, and the
// ratio of the medians when the cells share no round.
func TestPairedRatios(t *testing.T) {
	sf := &cell{Scenario: "hello", Proxy: "switchflow", Samples: []sample{
		{Round: 1, CPUusPerReq: 20, RPS: 100}, {Round: 2, CPUusPerReq: 40, RPS: 100}, {Round: 3, CPUusPerReq: 27, RPS: 100},
	}}
	ng := &cell{Scenario: "hello", Proxy: "nginx", Samples: []sample{
		{Round: 1, CPUusPerReq: 25, RPS: 100}, {Round: 2, CPUusPerReq: 50, RPS: 100}, {Round: 3, CPUusPerReq: 30, RPS: 100},
	}}
	// A failed round of SwitchFlow's counts for neither side.
	sf.Samples = append(sf.Samples, sample{Round: 4, CPUusPerReq: 1, Failed: "boom"})
	ng.Samples = append(ng.Samples, sample{Round: 4, CPUusPerReq: 30})
	lone := &cell{Scenario: "hello", Proxy: "haproxy", Samples: []sample{{Round: 9, CPUusPerReq: 60}}}
	res := &results{Cells: []*cell{sf, ng, lone}, cells: map[string]*cell{
		"hello/switchflow": sf, "hello/nginx": ng, "hello/haproxy": lone,
	}}
	res.summarize()

	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	v := sf.VsNginx
	// Per round: 0.8, 0.8, 0.9. The ratio of the medians would be 27/30 = 0.9.
	if v == nil || !near(v.CPU, 0.8) || !near(v.CPULow, 0.8) || !near(v.CPUHigh, 0.9) || !near(v.RPS, 1) {
		t.Fatalf("switchflow against nginx: %+v, want CPU 0.8 (0.8-0.9), RPS 1", v)
	}
	if w := lone.VsNginx; w == nil || !near(w.CPU, 2) || w.CPULow != 0 {
		t.Fatalf("no round in common: %+v, want CPU 60/30 = 2 from the medians, no range", w)
	}
	res.Meta.Rounds = 3
	if md := res.markdown(); !strings.Contains(md, "0.80 (0.80–0.90)") {
		t.Fatalf("the table does not show the CPU ratio with its range:\n%s", md)
	}
}

// TestUnmeasuredRow: a skipped or failed cell still fills every column of its table, and says why.
func TestUnmeasuredRow(t *testing.T) {
	for _, c := range []*cell{
		{Scenario: "cachehit", Proxy: "haproxy", Skipped: "no cache | here"},
		{Scenario: "hello", Proxy: "nginx", Samples: []sample{{Round: 1, Failed: "exited"}}},
	} {
		var b strings.Builder
		if !unmeasuredRow(&b, c, 12) {
			t.Fatalf("%s/%s: no row written", c.Scenario, c.Proxy)
		}
		row := b.String()
		// 12 columns: 13 unescaped pipes.
		if n := strings.Count(row, "|") - strings.Count(row, `\|`); n != 13 {
			t.Fatalf("row %q has %d column separators, want 13", row, n)
		}
		if !strings.Contains(row, "skipped: no cache") && !strings.Contains(row, "failed: exited") {
			t.Fatalf("row %q does not say why", row)
		}
	}
	var b strings.Builder
	if unmeasuredRow(&b, &cell{Median: &sample{}}, 12) || b.Len() != 0 {
		t.Fatal("a measured cell got an unmeasured row")
	}
}
