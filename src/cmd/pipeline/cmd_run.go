package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extract"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

func runCommand() *command {
	return &command{
		name:    "run",
		summary: "run the whole chain locally: extract → S3 events → transform → SQS → load → export",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			sf := addSourceFlags(fs)
			force := fs.Bool("force", false, "rewrite every page, even those already stored unchanged (so everything downstream runs again)")
			prog := fs.String("progress", progressAuto, "progress on stderr: auto (bars on a terminal, lines otherwise), bars, lines or off")
			level := fs.String("log-level", "info", "level of the handlers' JSON logs, written to <data-dir>/logs/")
			return func(ctx context.Context) (result, error) {
				return runChain(ctx, g, sf, *force, *prog, *level)
			}
		},
	}
}

// runResult is what `pipeline run` did: the summary table, or one JSON object.
type runResult struct {
	Source    string               `json:"source"`
	APIURL    string               `json:"apiUrl"`
	Bucket    string               `json:"bucket"`
	Folder    string               `json:"folder"`
	Database  string               `json:"database"`
	LogFile   string               `json:"logFile"`
	Extract   *extract.Result      `json:"extract,omitempty"`
	Transform map[string]int       `json:"transform"` // outcomes by status
	Load      map[string]int       `json:"load"`      // outcomes by status
	Objects   map[string]int       `json:"objects"`   // objects written, by top-level prefix
	Rows      map[string]tableRows `json:"rows"`      // per warehouse table
	Delivery  []localrun.Stats     `json:"delivery"`  // what the chain delivered to each target
	Export    *export.Result       `json:"export,omitempty"`
	Stages    map[string]float64   `json:"stageSeconds"`
	Problems  []string             `json:"problems"`
	Nothing   bool                 `json:"nothingChanged"` // no page changed, so nothing ran downstream
	Failures  []string             `json:"failures"`       // why the run failed (exit status 1)
	dead      map[string][]string  // dead letters per target, for the human form
}

// tableRows are one warehouse table's figures.
type tableRows struct {
	Transformed int   `json:"transformed"` // rows written to processed/ this run
	Loaded      int64 `json:"loaded"`      // rows read from the files loaded this run
	Total       int64 `json:"total"`       // rows in the table afterwards
	Exported    int64 `json:"exported"`    // rows exported this run
}

func runChain(ctx context.Context, g *globals, sf *sourceFlags, force bool, progMode, level string) (result, error) {
	s, err := openSession(ctx, g, sf, "run", level)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	st, t, chain, log := s.st, s.tally, s.chain, s.log
	p, err := newProgress(g.stderr, progMode, t)
	if err != nil {
		return nil, err
	}
	res := &runResult{Source: s.src.Description, APIURL: s.src.URL, Bucket: st.Bucket, Folder: st.Server.Dir(st.Bucket),
		Database: databaseName(st), LogFile: s.logf.Name(), Stages: map[string]float64{}, Rows: map[string]tableRows{}}
	log.Info("run started", "template", s.tplPath, "source", s.src.Description, "bucket", st.Bucket)

	chain.Start(ctx)
	p.start()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if left := chain.Stop(10 * time.Second); left > 0 {
				res.Failures = append(res.Failures, fmt.Sprintf("%d notifications were not handled before the run stopped", left))
			}
			p.finish()
		}
	}
	defer stop()

	// Extract: the schedule event starts it; its writes to raw/ start the rest.
	t.begin("extract")
	xres, xerr := s.extract(ctx, force)
	t.end("extract")
	res.Extract = &xres
	p.stageDone("extract", fmt.Sprintf("%d pages: %d written, %d unchanged, %d failed", xres.Pages, xres.Written, xres.Unchanged, xres.Failed))
	if xerr != nil {
		res.Failures = append(res.Failures, "extract: "+xerr.Error())
	}

	// Transform and load run as their events arrive; wait until all are settled.
	if err := chain.WaitIdle(ctx); err != nil {
		stop()
		return res, fmt.Errorf("interrupted while transforming and loading: %w", err)
	}
	res.Nothing = xres.Written == 0 && t.objects["raw"] == 0
	p.stageDone("transform", transformSummary(t))
	p.stageDone("load", loadSummary(t))

	// Export: the runner knows its own writes are committed, so no lag.
	t.begin("export")
	eres, eerr := s.export(ctx)
	t.end("export")
	res.Export = &eres
	if eerr != nil {
		res.Failures = append(res.Failures, "export: "+eerr.Error())
	}
	p.stageDone("export", exportSummary(eres))
	stop()

	// The figures.
	counts := map[string]int64{}
	if err := countRows(ctx, st.DB, counts); err != nil {
		res.Failures = append(res.Failures, "counting rows: "+err.Error())
	}
	t.mu.Lock()
	res.Objects = t.objects
	res.Transform = statusCounts(t.transform)
	res.Load = statusCounts(t.load)
	for _, tb := range warehouse.Tables() {
		r := tableRows{Transformed: t.transformed[tb.Name], Loaded: t.loadedRows[tb.Name], Total: counts[tb.Name]}
		for _, et := range eres.Tables {
			if et.Table == tb.Name {
				r.Exported = et.Rows
			}
		}
		res.Rows[tb.Name] = r
	}
	res.Problems = append([]string{}, t.problems...)
	for _, s := range []string{"extract", "transform", "load", "export"} {
		if st := t.stages[s]; st != nil && !st.End.IsZero() {
			res.Stages[s] = st.End.Sub(st.Start).Seconds()
		}
	}
	t.mu.Unlock()
	res.Delivery = chain.Stats()
	res.dead = map[string][]string{}
	for target, msgs := range chain.DeadLetters() {
		for _, m := range msgs {
			res.dead[target] = append(res.dead[target], m.Body)
		}
		what := "dead-letter messages"
		if target == transformID {
			what = "on-failure records (events that failed every retry)"
		}
		res.Failures = append(res.Failures, fmt.Sprintf("%s: %d %s", target, len(msgs), what))
	}
	if res.Failures == nil {
		res.Failures = []string{}
	}
	log.Info("run finished", "failures", len(res.Failures))
	if len(res.Failures) > 0 {
		return res, errors.New(strings.Join(res.Failures, "; "))
	}
	return res, nil
}

func databaseName(st *stack) string {
	if st.MySQL != nil {
		return fmt.Sprintf("embedded MySQL engine, database %s (saved to %s)", st.MySQL.Database(),
			filepath.Join(filepath.Dir(filepath.Dir(st.Server.Dir(st.Bucket))), "mysql", st.MySQL.Database()+".sql"))
	}
	return "MySQL server " + mysqldb.Config{DSN: st.DSN}.Redacted()
}

func statusCounts[S ~string](m map[S]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

func transformSummary(t *tally) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%d objects: %d transformed, %d quarantined, %d failed; %d files to processed/, %d records rejected",
		t.objects["raw"], t.transform[transformfn.Transformed], t.transform[transformfn.Quarantined], t.transform[transformfn.Failed],
		t.objects["processed"], t.recordsRej)
}

func loadSummary(t *tally) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%d files: %d loaded, %d skipped (already loaded), %d quarantined",
		t.objects["processed"], t.load[loadfn.Loaded], t.load[loadfn.Skipped], t.load[loadfn.Quarantined])
}

func exportSummary(r export.Result) string {
	var rows int64
	files := 0
	for _, t := range r.Tables {
		rows += t.Rows
		files += len(t.Files)
	}
	return fmt.Sprintf("%d tables: %d rows in %d files", len(r.Tables), rows, files)
}

func (r *runResult) Human(w io.Writer) {
	fmt.Fprintf(w, "\npipeline run: %s → s3://%s (%s) → %s\n", r.Source, r.Bucket, r.Folder, r.Database)
	if r.Nothing {
		fmt.Fprintf(w, "nothing changed: every page equals the stored one, so no S3 event fired and nothing was transformed or loaded\n")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTAGE\tTIME\tIN\tOUT")
	if x := r.Extract; x != nil {
		fmt.Fprintf(tw, "extract\t%s\t%d pages, %d requests, %d retries\t%d written, %d unchanged, %d failed\n",
			secs(r.Stages["extract"]), x.Pages, x.Requests, x.Retries, x.Written, x.Unchanged, x.Failed)
	}
	fmt.Fprintf(tw, "transform\t%s\t%d raw objects\t%d processed files, %d transformed, %d quarantined, %d rejected files\n",
		secs(r.Stages["transform"]), r.Objects["raw"], r.Objects["processed"], r.Transform["transformed"], r.Transform["quarantined"], r.Objects["rejected"])
	fmt.Fprintf(tw, "load\t%s\t%d processed files\t%d loaded, %d skipped, %d quarantined\n",
		secs(r.Stages["load"]), r.Objects["processed"], r.Load["loaded"], r.Load["skipped"], r.Load["quarantined"])
	if e := r.Export; e != nil {
		files := 0
		for _, t := range e.Tables {
			files += len(t.Files)
		}
		fmt.Fprintf(tw, "export\t%s\t%d tables\t%d files under exports/\n", secs(r.Stages["export"]), len(e.Tables), files)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%-20s %11s %8s %8s %9s\n", "TABLE", "TRANSFORMED", "LOADED", "ROWS", "EXPORTED")
	for _, tb := range warehouse.Tables() {
		x := r.Rows[tb.Name]
		fmt.Fprintf(w, "%-20s %11d %8d %8d %9d\n", tb.Name, x.Transformed, x.Loaded, x.Total, x.Exported)
	}
	for _, d := range r.Delivery {
		if d.Redeliveries > 0 || d.DeadLetters > 0 {
			fmt.Fprintf(w, "%s: %d retried or redelivered, %d dead letters\n", d.Target, d.Redeliveries, d.DeadLetters)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\nproblems (bad input is kept under quarantine/ and rejected/):\n")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	fmt.Fprintf(w, "\nlogs: %s\n", r.LogFile)
}

func secs(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", s)
}
