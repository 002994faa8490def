// Command chart draws the benchmark chart from a results JSON that benchmarks/cmd/bench wrote: one
// panel per scenario and measure, a bar per proxy at the median over rounds, and a whisker from the
// smallest to the largest round, so the spread of the rounds shows beside the median.
//
//	go run . -in ../results/2026-11-24-full-results.json -out ../results/2026-11-24-full-chart.png
//
// It is a module of its own so that the plotting library and its dependencies stay out of the proxy's
// module (make chart runs it from the repository root).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

func main() {
	in := flag.String("in", "", "results JSON written by benchmarks/cmd/bench")
	out := flag.String("out", "chart.png", "PNG file to write")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "chart: -in is required")
		os.Exit(2)
	}
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	return drawChart(&res, out)
}
