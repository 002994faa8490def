package main

import (
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
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

// TestChartHasLabels: the chart shows each proxy's bars in its legend color, and text where a reader
// needs it: the panel titles and SwitchFlow's ratio above the bars, the scenario names under them, and a
// legend line per proxy under the panels.
func TestChartHasLabels(t *testing.T) {
	var cells []*cell
	res := &results{cells: map[string]*cell{}}
	res.Meta.Proxies = []string{"switchflow", "nginx"}
	for _, s := range []string{"hello", "json4k"} {
		for i, p := range res.Meta.Proxies {
			c := &cell{Scenario: s, Proxy: p, Samples: []sample{{Round: 1, RPS: 1000 * float64(i+1), CPUusPerReq: 30 + 10*float64(i)}}}
			cells = append(cells, c)
			res.cells[s+"/"+p] = c
		}
	}
	res.Cells = cells
	res.summarize()
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := res.writeChart(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	// count is the pixels of color want in rows [y0, y1).
	count := func(want color.RGBA, y0, y1 int) int {
		n := 0
		for y := max(y0, b.Min.Y); y < min(y1, b.Max.Y); y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == want {
					n++
				}
			}
		}
		return n
	}
	black := color.RGBA{0, 0, 0, 0xff}
	for _, p := range res.Meta.Proxies {
		if count(proxyColors[p], 0, b.Max.Y) == 0 {
			t.Errorf("no %s bars", p)
		}
	}
	// The layout: margin 20, then per panel a 42-pixel title band, 240 of bars, 18 of names.
	for _, band := range []struct {
		what   string
		y0, y1 int
	}{
		{"first panel's title and ratios", 20, 62},
		{"scenario names under the first panel", 304, 320},
		{"second panel's title and ratios", 320, 362},
		{"legend", 628 + 8, b.Max.Y},
	} {
		if n := count(black, band.y0, band.y1); n < 40 {
			t.Errorf("%s: %d black pixels in rows %d-%d, want text", band.what, n, band.y0, band.y1)
		}
	}
}
