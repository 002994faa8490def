package main

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// results is the part of the bench's results JSON that the chart reads.
type results struct {
	Meta struct {
		Date    string            `json:"date"`
		Host    map[string]string `json:"host"`
		Rounds  int               `json:"rounds"`
		Proxies []string          `json:"proxies"`
	} `json:"meta"`
	Cells []cell `json:"results"`
}

type cell struct {
	Scenario string   `json:"scenario"`
	Proxy    string   `json:"proxy"`
	Samples  []sample `json:"samples"`
	VsNginx  *struct {
		RPS float64 `json:"rps"`
		CPU float64 `json:"cpu_us_per_req"`
		RSS float64 `json:"rss"`
	} `json:"vs_nginx"`
}

type sample struct {
	RPS         float64 `json:"rps"`
	CPUusPerReq float64 `json:"cpu_us_per_req"`
	RSSMiB      float64 `json:"rss_mib"`
	Failed      string  `json:"failed"`
}

// measure is one panel's quantity: its axis label (with the unit), how a sample gives it, and SwitchFlow's
// paired ratio to nginx from the results (the table's ×nginx).
type measure struct {
	label   string
	value   func(sample) float64
	vsNginx func(c *cell) float64
}

var (
	throughput = measure{"requests/s", func(s sample) float64 { return s.RPS },
		func(c *cell) float64 { return c.VsNginx.RPS }}
	cpu = measure{"CPU µs per request", func(s sample) float64 { return s.CPUusPerReq },
		func(c *cell) float64 { return c.VsNginx.CPU }}
	rss = measure{"RSS growth, MiB", func(s sample) float64 { return s.RSSMiB },
		func(c *cell) float64 { return c.VsNginx.RSS }}
)

// measuresOf lists the panels of a scenario: idle10k and slowread measure memory, not throughput, and
// slowread has no CPU per request.
func measuresOf(scenario string) []measure {
	switch scenario {
	case "idle10k":
		return []measure{rss, cpu}
	case "slowread":
		return []measure{rss}
	}
	return []measure{throughput, cpu}
}

// proxyColors are the bars' colors, the same in every panel.
var proxyColors = map[string]color.RGBA{
	"switchflow": {0xd6, 0x27, 0x28, 0xff}, // red
	"nginx":      {0x2c, 0xa0, 0x2c, 0xff}, // green
	"haproxy":    {0x1f, 0x77, 0xb4, 0xff}, // blue
	"fastproxy":  {0xff, 0x7f, 0x0e, 0xff}, // orange
	"stdproxy":   {0x94, 0x67, 0xbd, 0xff}, // purple
	"direct":     {0x7f, 0x7f, 0x7f, 0xff}, // grey
	"gnetfwd":    {0x8c, 0x56, 0x4b, 0xff}, // brown
}

// spread is the median and the range of one proxy's rounds.
type spread struct{ median, low, high float64 }

func spreadOf(ss []sample, f func(sample) float64) (spread, bool) {
	var v []float64
	for _, s := range ss {
		if s.Failed == "" && f(s) > 0 {
			v = append(v, f(s))
		}
	}
	if len(v) == 0 {
		return spread{}, false
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{m, v[0], v[len(v)-1]}, true
}

// whiskers are error bars from each bar's lowest round to its highest.
type whiskers struct {
	plotter.XYs
	plotter.YErrors
}

const columns = 4 // panels per row: two scenarios, each with its two measures

// drawChart writes the chart: a grid of panels, each with its own linear axis, since the scenarios' figures
// differ by orders of magnitude.
func drawChart(res *results, path string) error {
	var scenarios []string
	byKey := map[string]*cell{}
	for i := range res.Cells {
		c := &res.Cells[i]
		if !slices.Contains(scenarios, c.Scenario) {
			scenarios = append(scenarios, c.Scenario)
		}
		byKey[c.Scenario+"/"+c.Proxy] = c
	}
	proxies := res.Meta.Proxies
	var panels []*plot.Plot
	for _, s := range scenarios {
		for _, m := range measuresOf(s) {
			p, err := panel(s, m, proxies, byKey)
			if err != nil {
				return err
			}
			panels = append(panels, p)
		}
	}
	if len(panels) == 0 {
		return fmt.Errorf("no measured scenario")
	}
	rows := (len(panels) + columns - 1) / columns
	const panelW, panelH, headH = 3.2 * vg.Inch, 2.4 * vg.Inch, 0.6 * vg.Inch
	width, height := columns*panelW, vg.Length(rows)*panelH+headH
	img := vgimg.New(width, height)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	head := draw.Crop(dc, 0, 0, vg.Length(rows)*panelH, 0)
	title := fmt.Sprintf("SwitchFlow against its peers, %s, %s (%s CPUs), %d rounds: bars at the median, whiskers from the lowest round to the highest; ×nginx is SwitchFlow's paired ratio",
		dateOf(res.Meta.Date), res.Meta.Host["cpu"], res.Meta.Host["cpus"], res.Meta.Rounds)
	sty := draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, 11), XAlign: draw.XLeft, YAlign: draw.YCenter, Handler: plot.DefaultTextHandler}
	head.FillText(sty, vg.Point{X: 0.15 * vg.Inch, Y: head.Min.Y + headH*0.65}, title)
	x := 0.15 * vg.Inch
	for _, name := range proxies {
		head.SetColor(proxyColors[name])
		head.Fill(vg.Rectangle{Min: vg.Point{X: x, Y: head.Min.Y + headH*0.15}, Max: vg.Point{X: x + 10, Y: head.Min.Y + headH*0.15 + 10}}.Path())
		head.FillText(sty, vg.Point{X: x + 14, Y: head.Min.Y + headH*0.15 + 5}, name)
		x += vg.Length(len(name))*6 + 30
	}

	body := draw.Crop(dc, 0, 0, 0, -headH)
	tiles := draw.Tiles{Rows: rows, Cols: columns, PadX: 0.1 * vg.Inch, PadY: 0.1 * vg.Inch,
		PadTop: 0.05 * vg.Inch, PadBottom: 0.05 * vg.Inch, PadLeft: 0.05 * vg.Inch, PadRight: 0.05 * vg.Inch}
	for i, p := range panels {
		p.Draw(tiles.At(body, i%columns, i/columns))
	}
	return saveImage(img, path)
}

// panel draws one scenario's measure: a bar per proxy at the median over rounds, a whisker over the
// rounds' range.
func panel(scenario string, m measure, proxies []string, byKey map[string]*cell) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = scenario
	if sf := byKey[scenario+"/switchflow"]; sf != nil && sf.VsNginx != nil {
		if r := m.vsNginx(sf); r > 0 {
			p.Title.Text = fmt.Sprintf("%s: SwitchFlow %.2f×nginx", scenario, r)
		}
	}
	p.Y.Label.Text = m.label
	p.Y.Min = 0
	p.NominalX(proxies...)
	p.Add(plotter.NewGrid())
	var w whiskers
	for i, name := range proxies {
		c := byKey[scenario+"/"+name]
		if c == nil {
			continue
		}
		sp, ok := spreadOf(c.Samples, m.value)
		if !ok {
			continue
		}
		bar, err := plotter.NewBarChart(plotter.Values{sp.median}, vg.Points(18))
		if err != nil {
			return nil, err
		}
		bar.XMin = float64(i)
		bar.Color = proxyColors[name]
		bar.LineStyle.Width = 0
		p.Add(bar)
		w.XYs = append(w.XYs, plotter.XY{X: float64(i), Y: sp.median})
		w.YErrors = append(w.YErrors, struct{ Low, High float64 }{sp.median - sp.low, sp.high - sp.median})
		p.Y.Max = math.Max(p.Y.Max, sp.high*1.1)
	}
	if len(w.XYs) > 0 {
		eb, err := plotter.NewYErrorBars(w)
		if err != nil {
			return nil, err
		}
		eb.LineStyle.Width = vg.Points(1.2)
		eb.CapWidth = vg.Points(8)
		p.Add(eb)
	}
	return p, nil
}

func dateOf(rfc3339 string) string {
	if d, _, ok := strings.Cut(rfc3339, "T"); ok {
		return d
	}
	return rfc3339
}
