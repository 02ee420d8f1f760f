package dashboard

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
)

// Run is what one `pipeline run` did, as its report shows it.
type Run struct {
	Started  time.Time
	Finished time.Time
	Source   string
	Bucket   string
	Folder   string
	Database string
	Nothing  bool     // no page changed, so nothing ran downstream
	Failures []string // why the run failed; empty when it succeeded
	Stages   []StageRow
	Tables   []TableRows
	// Invocations are every function invocation of the run, the chain's
	// and the schedule's (Extract, Export).
	Invocations []localrun.Invocation
	Delivery    []localrun.Stats
	Problems    []Problem
	Exports     []ExportFile
}

// StageRow is one line of the summary: a stage, its time, what went in and
// what came out.
type StageRow struct {
	Stage   string
	Seconds float64
	In      string
	Out     string
}

// TableRows are one warehouse table's figures in a run.
type TableRows struct {
	Table       string
	Transformed int64 // rows written to processed/
	Loaded      int64 // rows read from the files loaded
	Total       int64 // rows in the table afterwards
	Exported    int64 // rows exported
}

// ExportFile is one file an export run stored.
type ExportFile struct {
	Table  string
	Key    string
	Format string // bucket.CSV or bucket.Parquet
	Rows   int64  // -1 when the table's rows are split over several files of this format
}

// ExportFiles lists the files of an export run with their row counts: every
// format of a table holds all the rows its run exported.
func ExportFiles(r export.Result) []ExportFile {
	var out []ExportFile
	for _, t := range r.Tables {
		perFormat := map[string]int{}
		var files []ExportFile
		for _, k := range t.Files {
			f := ExportFile{Table: t.Table, Key: k, Rows: t.Rows}
			for _, format := range []string{bucket.CSV, bucket.Parquet} {
				if strings.HasSuffix(k, "."+format) {
					f.Format = format
				}
			}
			perFormat[f.Format]++
			files = append(files, f)
		}
		for i := range files {
			if perFormat[files[i].Format] > 1 {
				files[i].Rows = -1
			}
		}
		out = append(out, files...)
	}
	return out
}

// WriteReport writes r as one self-contained HTML file: its style inline,
// no script, nothing loaded from anywhere (a Content-Security-Policy says
// so to the browser).
func WriteReport(w io.Writer, r Run) error {
	css, err := assets.ReadFile("assets/report.css")
	if err != nil {
		return err
	}
	tpl, err := template.New("report.html").Funcs(template.FuncMap{
		"secs":  func(s float64) string { return fmt.Sprintf("%.2f s", s) },
		"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"rows": func(n int64) string {
			if n < 0 {
				return "–"
			}
			return fmt.Sprint(n)
		},
		"fn": func(id string) string { return strings.TrimSuffix(id, "Function") },
		"f1": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	}).ParseFS(assets, "assets/report.html")
	if err != nil {
		return err
	}
	return tpl.Execute(w, reportView{Run: r, CSS: template.CSS(css), Gantt: layoutGantt(r.Invocations), Took: r.Finished.Sub(r.Started).Seconds()})
}

type reportView struct {
	Run
	CSS   template.CSS // our own file, embedded
	Gantt gantt
	Took  float64
}

// gantt is the timeline laid out: one lane per concurrent invocation of
// each function.
type gantt struct {
	Width, Height float64
	Lanes         []ganttLane
	Bars          []ganttBar
	Ticks         []ganttTick
	Counts        []ganttCount
}

type ganttLane struct {
	Y     float64
	Label string // the function, on its first lane
	Line  bool   // a line above: a new function starts
}

type ganttBar struct {
	X, Y, W float64
	Class   string // ok, failed, retry
	Mark    bool   // a retry or a redelivery: marked with a triangle
	Title   string
}

type ganttTick struct {
	X     float64
	Label string
}

// ganttCount is one function's invocations, retries and failures, for the
// legend under the chart.
type ganttCount struct {
	Function                      string
	Invocations, Retried, Failed  int
	Messages, RedeliveredMessages int
}

const (
	ganttLabel = 130.0 // width of the function names
	ganttPlot  = 860.0 // width of the time axis
	laneHeight = 18.0
	ganttTop   = 24.0
	ganttBarH  = 12.0
)

// functionOrder is the chain's order; other functions come after.
var functionOrder = []string{"ExtractFunction", "TransformFunction", "LoadFunction", "ExportFunction"}

func layoutGantt(invs []localrun.Invocation) gantt {
	g := gantt{Width: ganttLabel + ganttPlot + 20}
	if len(invs) == 0 {
		g.Height = ganttTop + 10
		return g
	}
	t0, t1 := invs[0].Start, invs[0].End
	byFn := map[string][]localrun.Invocation{}
	var fns []string
	for _, inv := range invs {
		if inv.Start.Before(t0) {
			t0 = inv.Start
		}
		if inv.End.After(t1) {
			t1 = inv.End
		}
		if byFn[inv.Function] == nil {
			fns = append(fns, inv.Function)
		}
		byFn[inv.Function] = append(byFn[inv.Function], inv)
	}
	slices.SortStableFunc(fns, func(a, b string) int { return order(a) - order(b) })
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 0.001
	}
	x := func(t time.Time) float64 { return ganttLabel + t.Sub(t0).Seconds()/span*ganttPlot }

	y := ganttTop
	for _, fn := range fns {
		list := byFn[fn]
		slices.SortStableFunc(list, func(a, b localrun.Invocation) int { return a.Start.Compare(b.Start) })
		var laneEnds []time.Time
		c := ganttCount{Function: fn}
		for _, inv := range list {
			lane := -1
			for i, end := range laneEnds {
				if !inv.Start.Before(end) {
					lane = i
					break
				}
			}
			if lane < 0 {
				lane = len(laneEnds)
				laneEnds = append(laneEnds, inv.End)
			}
			laneEnds[lane] = inv.End
			b := ganttBar{X: x(inv.Start), Y: y + float64(lane)*laneHeight + (laneHeight-ganttBarH)/2, Class: "ok", Title: barTitle(inv)}
			b.W = math.Max(x(inv.End)-b.X, 1.5)
			retried := inv.Attempt > 1 || inv.Redelivered > 0
			switch {
			case inv.Failed > 0 || inv.Error != "":
				b.Class = "failed"
				c.Failed++
			case retried:
				b.Class = "retry"
			}
			if retried {
				b.Mark = true
				c.Retried++
			}
			c.Invocations++
			c.Messages += inv.Messages
			c.RedeliveredMessages += inv.Redelivered
			g.Bars = append(g.Bars, b)
		}
		for i := range laneEnds {
			l := ganttLane{Y: y + float64(i)*laneHeight}
			if i == 0 {
				l.Label, l.Line = strings.TrimSuffix(fn, "Function"), true
			}
			g.Lanes = append(g.Lanes, l)
		}
		y += float64(len(laneEnds))*laneHeight + 6
		g.Counts = append(g.Counts, c)
	}
	g.Height = y + 8
	step := tickStep(span)
	for s := 0.0; s <= span+step/1000; s += step {
		g.Ticks = append(g.Ticks, ganttTick{X: ganttLabel + s/span*ganttPlot, Label: tickLabel(s, step)})
	}
	return g
}

func order(fn string) int {
	if i := slices.Index(functionOrder, fn); i >= 0 {
		return i
	}
	return len(functionOrder)
}

// tickStep is a round step giving at most 10 ticks over span seconds.
func tickStep(span float64) float64 {
	for _, s := range []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600} {
		if span/s <= 10 {
			return s
		}
	}
	return math.Ceil(span/10/3600) * 3600
}

func tickLabel(s, step float64) string {
	switch {
	case step < 0.1:
		return fmt.Sprintf("%.2f s", s)
	case step < 1:
		return fmt.Sprintf("%.1f s", s)
	case step < 60 || s < 60:
		return fmt.Sprintf("%.0f s", s)
	}
	return fmt.Sprintf("%.0f min", s/60)
}

// barTitle is an invocation's tooltip.
func barTitle(inv localrun.Invocation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s · %.3f s", strings.TrimSuffix(inv.Function, "Function"), inv.End.Sub(inv.Start).Seconds())
	if inv.Queue != "" {
		fmt.Fprintf(&b, " · batch of %d from %s", inv.Messages, inv.Queue)
	}
	switch {
	case inv.Queue == "" && inv.Attempt > 1:
		fmt.Fprintf(&b, " · retry (attempt %d)", inv.Attempt)
	case inv.Redelivered > 0:
		fmt.Fprintf(&b, " · %d redelivered (receive %d)", inv.Redelivered, inv.Attempt)
	}
	if inv.Failed > 0 {
		fmt.Fprintf(&b, " · %d failed", inv.Failed)
	}
	if inv.Error != "" {
		fmt.Fprintf(&b, ": %s", inv.Error)
	}
	for i, k := range inv.Keys {
		if i == 3 {
			fmt.Fprintf(&b, "\n… and %d more", len(inv.Keys)-3)
			break
		}
		b.WriteString("\n" + k)
	}
	return b.String()
}
