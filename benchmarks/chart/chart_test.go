package main

import (
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestChartShowsEveryProxy: the chart of a small run decodes as a PNG and shows each proxy's bars in its
// color, the black of the axes, labels and whiskers beside them.
func TestChartShowsEveryProxy(t *testing.T) {
	res := &results{}
	res.Meta.Date = "2026-11-24T13:29:58Z"
	res.Meta.Rounds = 2
	res.Meta.Proxies = []string{"switchflow", "nginx"}
	for _, s := range []string{"hello", "slowread"} {
		for i, p := range res.Meta.Proxies {
			f := float64(i + 1)
			res.Cells = append(res.Cells, cell{Scenario: s, Proxy: p, Samples: []sample{
				{RPS: 1000 * f, CPUusPerReq: 30 * f, RSSMiB: f},
				{RPS: 1100 * f, CPUusPerReq: 33 * f, RSSMiB: 1.2 * f},
			}})
		}
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := drawChart(res, path); err != nil {
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
	seen := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			seen[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	for _, p := range res.Meta.Proxies {
		if seen[proxyColors[p]] == 0 {
			t.Errorf("no %s bars", p)
		}
	}
	if seen[color.RGBA{0, 0, 0, 0xff}] < 100 {
		t.Error("no axes or labels")
	}
}

func TestSpreadIsMedianAndRange(t *testing.T) {
	sp, ok := spreadOf([]sample{{RPS: 3}, {RPS: 1}, {RPS: 2}, {RPS: 9, Failed: "exited"}}, throughput.value)
	if !ok || sp != (spread{2, 1, 3}) {
		t.Fatalf("spread = %+v, %v; want median 2 over 1..3, the failed round left out", sp, ok)
	}
}
