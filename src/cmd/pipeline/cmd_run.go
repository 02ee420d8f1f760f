package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/dashboard"
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
	Report    string               `json:"report"`         // the HTML report of the run
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
	t.keepInvocations = true // for the report's timeline
	started := time.Now()
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
	xstart := time.Now()
	xres, xerr := s.extract(ctx, force)
	t.invocation(scheduled(extractID, xstart, xerr))
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
	estart := time.Now()
	eres, eerr := s.export(ctx)
	t.invocation(scheduled(exportID, estart, eerr))
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
	path, err := writeRunReport(ctx, g.dataDir, s, res, started)
	if err != nil {
		res.Failures = append(res.Failures, "writing the report: "+err.Error())
	}
	res.Report = path
	log.Info("run finished", "failures", len(res.Failures), "report", path)
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
	for _, row := range r.stageRows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.Stage, secs(row.Seconds), row.In, row.Out)
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
	if r.Report != "" {
		fmt.Fprintf(w, "report: %s\n", r.Report)
	}
}

// stageRows are the lines of the summary's stage table.
func (r *runResult) stageRows() []dashboard.StageRow {
	var rows []dashboard.StageRow
	if x := r.Extract; x != nil {
		rows = append(rows, dashboard.StageRow{Stage: "extract", Seconds: r.Stages["extract"],
			In:  fmt.Sprintf("%d pages, %d requests, %d retries", x.Pages, x.Requests, x.Retries),
			Out: fmt.Sprintf("%d written, %d unchanged, %d failed", x.Written, x.Unchanged, x.Failed)})
	}
	rows = append(rows,
		dashboard.StageRow{Stage: "transform", Seconds: r.Stages["transform"], In: fmt.Sprintf("%d raw objects", r.Objects["raw"]),
			Out: fmt.Sprintf("%d processed files, %d transformed, %d quarantined, %d rejected files",
				r.Objects["processed"], r.Transform["transformed"], r.Transform["quarantined"], r.Objects["rejected"])},
		dashboard.StageRow{Stage: "load", Seconds: r.Stages["load"], In: fmt.Sprintf("%d processed files", r.Objects["processed"]),
			Out: fmt.Sprintf("%d loaded, %d skipped, %d quarantined", r.Load["loaded"], r.Load["skipped"], r.Load["quarantined"])})
	if e := r.Export; e != nil {
		files := 0
		for _, t := range e.Tables {
			files += len(t.Files)
		}
		rows = append(rows, dashboard.StageRow{Stage: "export", Seconds: r.Stages["export"], In: fmt.Sprintf("%d tables", len(e.Tables)),
			Out: fmt.Sprintf("%d files under %s", files, bucket.DefaultExportPrefix)})
	}
	return rows
}

// scheduled is the invocation of a function the schedule started (Extract,
// Export), for the report's timeline.
func scheduled(id string, start time.Time, err error) localrun.Invocation {
	inv := localrun.Invocation{Function: id, Start: start, End: time.Now(), Keys: []string{}, Messages: 1, Attempt: 1}
	if err != nil {
		inv.Failed, inv.Error = 1, err.Error()
	}
	return inv
}

// writeRunReport writes the run's HTML report to
// <data-dir>/reports/run-<time>.html and returns its absolute path.
func writeRunReport(ctx context.Context, dataDir string, s *session, res *runResult, started time.Time) (string, error) {
	t := s.tally
	t.mu.Lock()
	run := dashboard.Run{Started: started, Finished: time.Now(), Source: res.Source, Bucket: res.Bucket, Folder: res.Folder,
		Database: res.Database, Nothing: res.Nothing, Failures: res.Failures, Stages: res.stageRows(), Delivery: res.Delivery,
		Invocations: append([]localrun.Invocation(nil), t.invocations...), Problems: append([]dashboard.Problem(nil), t.issues...)}
	t.mu.Unlock()
	for _, tb := range warehouse.Tables() {
		x := res.Rows[tb.Name]
		run.Tables = append(run.Tables, dashboard.TableRows{Table: tb.Name, Transformed: int64(x.Transformed), Loaded: x.Loaded, Total: x.Total, Exported: x.Exported})
	}
	if res.Export != nil {
		run.Exports = dashboard.ExportFiles(*res.Export)
	}
	// The reasons of rejected records are in their files.
	b := bucket.New(s.st.S3, s.st.Bucket)
	for i, p := range run.Problems {
		if p.Kind != dashboard.Rejected {
			continue
		}
		if got, err := dashboard.ReadRejected(ctx, b, p.Key); err == nil {
			run.Problems[i].Reason = got.Reason
		}
	}

	dir, err := filepath.Abs(filepath.Join(dataDir, "reports"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := dashboard.WriteReport(&buf, run); err != nil {
		return "", err
	}
	base := "run-" + started.UTC().Format("20060102T150405Z")
	for n := 1; ; n++ {
		path := filepath.Join(dir, base+".html")
		if n > 1 {
			path = filepath.Join(dir, fmt.Sprintf("%s-%d.html", base, n))
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if _, err := f.Write(buf.Bytes()); err != nil {
			f.Close()
			return "", err
		}
		return path, f.Close()
	}
}

func secs(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", s)
}
