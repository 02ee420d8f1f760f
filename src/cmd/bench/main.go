// Command bench measures the pipeline against its baselines, each measured in
// the same run, and prints every figure beside its baseline as a ratio. It is
// what `make bench` runs; it needs MariaDB, the mariadb client and MinIO
// (started by .ci/services.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
)

// figure is one measured number and, when it has one, its baseline.
type figure struct {
	Section  string
	Name     string
	Value    float64
	Unit     string
	Baseline float64 // 0: none
	BaseName string
	Ratio    float64 // how many times better than the baseline (>1 is better)
	Target   string  // the target, in words, e.g. ">= 4x"
	Met      *bool   // nil: no target
}

// section is one group of measurements.
type section struct {
	name string
	run  func(ctx context.Context, out io.Writer) ([]figure, error)
}

func sections() []section {
	return []section{
		{"crawl", benchCrawl},
		{"transform", benchTransform},
		{"load", benchLoad},
		{"export", benchExport},
		{"binaries", benchBinaries},
		{"coldstart", benchColdStart},
	}
}

func main() {
	only := flag.String("only", "", "comma-separated sections to run (crawl,transform,load,export,binaries,coldstart)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var all []figure
	failed := false
	for _, s := range sections() {
		if *only != "" && !strings.Contains(","+*only+",", ","+s.name+",") {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", s.name)
		figs, err := s.run(ctx, os.Stderr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", s.name, err)
			failed = true
		}
		all = append(all, figs...)
	}
	print(os.Stdout, all)
	if failed {
		os.Exit(1)
	}
}

func print(w io.Writer, figs []figure) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tFIGURE\tVALUE\tBASELINE\tRATIO\tTARGET\tMET")
	for _, f := range figs {
		base, ratio, met := "-", "-", "-"
		if f.Baseline != 0 {
			base = fmt.Sprintf("%s %s (%s)", num(f.Baseline), f.Unit, f.BaseName)
			ratio = fmt.Sprintf("%.2fx", f.Ratio)
		}
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", f.Section, f.Name, num(f.Value), f.Unit, base, ratio, orDash(f.Target), met)
	}
	tw.Flush()
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func met(ok bool) *bool { return &ok }
