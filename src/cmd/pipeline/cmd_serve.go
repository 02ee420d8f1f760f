package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/dashboard"
	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "keep the local stack running; objects put under raw/ flow through the chain",
		setup: func(fs *flag.FlagSet, g *globals) func(ctx context.Context) (result, error) {
			sf := addSourceFlags(fs)
			fs.StringVar(&g.s3Addr, "s3-addr", "127.0.0.1:9090", "listen address of the S3 endpoint")
			fs.StringVar(&g.dbAddr, "mysql-addr", "127.0.0.1:3307", "listen address of the embedded MySQL engine (without --mysql-dsn)")
			extractEvery := fs.String("extract-every", "", "extract schedule: a Go duration or rate(...) (default: template.yaml's ExtractSchedule); 0 never")
			exportEvery := fs.String("export-every", "", "export schedule: a Go duration or rate(...) (default: template.yaml's ExportSchedule); 0 never")
			noExtract := fs.Bool("no-initial-extract", false, "do not crawl at start (by default serve crawls once when it starts)")
			level := fs.String("log-level", "info", "level of the handlers' JSON logs, written to <data-dir>/logs/")
			ui := &uiFlags{}
			fs.StringVar(&ui.addr, "ui-addr", dashboard.DefaultAddr, "listen address of the live page and /api/status (empty: no page); not loopback only with --ui-token")
			fs.StringVar(&ui.token, "ui-token", os.Getenv("PIPELINE_UI_TOKEN"), "token the page asks of every request (default $PIPELINE_UI_TOKEN); required off loopback")
			return func(ctx context.Context) (result, error) {
				return serve(ctx, g, sf, ui, *extractEvery, *exportEvery, !*noExtract, *level)
			}
		},
	}
}

// serveResult is what a serve session did, printed when it stops.
type serveResult struct {
	Objects  map[string]int   `json:"objects"`
	Extracts int              `json:"extracts"`
	Exports  int              `json:"exports"`
	Delivery []localrun.Stats `json:"delivery"`
	Dropped  int              `json:"dropped"` // notifications not handled when it stopped
	LogFile  string           `json:"logFile"`
}

func (r *serveResult) Human(w io.Writer) {
	fmt.Fprintf(w, "stopped: %d raw and %d processed objects written, %d extracts, %d exports\n",
		r.Objects["raw"], r.Objects["processed"], r.Extracts, r.Exports)
	if r.Dropped > 0 {
		fmt.Fprintf(w, "%d notifications were not handled; `pipeline transform` and `pipeline load` catch up on them\n", r.Dropped)
	}
	fmt.Fprintf(w, "logs: %s\n", r.LogFile)
}

// uiFlags say where the live page listens.
type uiFlags struct {
	addr  string
	token string
}

// trigger asks the serve loop to run a stage: one at a time, in order.
type trigger struct {
	what   string // crawl, export or reprocess
	why    string
	prefix string // reprocess: the prefix
	act    *dashboard.ActionHandle
}

func serve(ctx context.Context, g *globals, sf *sourceFlags, ui *uiFlags, extractEvery, exportEvery string, initialExtract bool, level string) (result, error) {
	if ui.addr != "" {
		if err := dashboard.CheckAddr(ui.addr, ui.token); err != nil {
			return nil, err
		}
	}
	tpl, _, err := sf.loadTemplate()
	if err != nil {
		return nil, err
	}
	extractPeriod, err := schedule(tpl, "ExtractSchedule", extractEvery)
	if err != nil {
		return nil, fmt.Errorf("--extract-every: %w", err)
	}
	exportPeriod, err := schedule(tpl, "ExportSchedule", exportEvery)
	if err != nil {
		return nil, fmt.Errorf("--export-every: %w", err)
	}
	sess, err := openSession(ctx, g, sf, "serve", level)
	if err != nil {
		return nil, fmt.Errorf("%w (--s3-addr and --mysql-addr choose other ports)", err)
	}
	defer sess.Close()
	st, t, chain := sess.st, sess.tally, sess.chain

	out := g.stdout
	if g.json {
		out = g.stderr // stdout holds the one JSON object
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, time.Now().Format("15:04:05")+" "+format+"\n", args...)
	}
	t.echo = func(line string) { say("%s", line) }
	mon := dashboard.New(dashboard.Config{Bucket: bucket.New(st.S3, st.Bucket), BucketName: st.Bucket, DB: st.DB, Chain: chain,
		Tables: warehouseTables(), ExportPrefix: bucket.DefaultExportPrefix})
	t.obs = mon
	var uiLn net.Listener
	if ui.addr != "" {
		if uiLn, err = net.Listen("tcp", ui.addr); err != nil {
			return nil, fmt.Errorf("the page cannot listen on --ui-addr %s: %w (choose another address, or --ui-addr '' for no page)", ui.addr, err)
		}
	}
	chain.Start(ctx)
	watcher := st.Server.NewWatcher(locals3.WatchOptions{ReportExisting: true})
	st.Server.OnObjectCreated(func(ev locals3.ObjectCreated) {
		if ev.Source == locals3.SourceFolder {
			say("found %s copied into the folder", ev.Key)
		}
	})
	var wg sync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); watcher.Run(wctx) }()

	res := &serveResult{LogFile: sess.logf.Name()}
	runExtract := func(why string, act *dashboard.ActionHandle) {
		act.Start()
		mon.RunStarted()
		say("extract (%s) from %s", why, sess.src.Description)
		r, err := sess.extract(ctx, false)
		res.Extracts++
		summary := fmt.Sprintf("%d pages, %d written, %d unchanged", r.Pages, r.Written, r.Unchanged)
		act.Finish(summary, err)
		if err != nil {
			say("extract failed: %v", err)
			return
		}
		say("extract: %s", summary)
	}
	runExport := func(why string, act *dashboard.ActionHandle) {
		act.Start()
		// Wait for the chain to settle, so an on-demand export sees what was
		// just dropped in; the lag then covers only other writers.
		_ = chain.WaitIdle(ctx)
		r, err := sess.export(ctx)
		res.Exports++
		act.Finish(exportSummary(r), err)
		if err != nil {
			say("export (%s) failed: %v", why, err)
			return
		}
		say("export (%s): %s", why, exportSummary(r))
	}
	runReprocess := func(prefix, why string, act *dashboard.ActionHandle) {
		act.Start()
		r, err := reprocessLocal(ctx, st, prefix)
		summary := ""
		if r != nil {
			summary = fmt.Sprintf("%d of %d objects under %s copied onto themselves, %d skipped, %d failed", r.Copied, r.Count, prefix, r.Skipped, r.Failed)
		}
		act.Finish(summary, err)
		if err != nil {
			say("reprocess %s (%s) failed: %s: %v", prefix, why, summary, err)
			return
		}
		say("reprocess (%s): %s", why, summary)
	}

	// Stage runs are serialized: one extract, export or reprocess at a time.
	triggers := make(chan trigger, 8)
	ask := func(what, why, prefix string) error {
		name := map[string]string{"extract": "crawl"}[what]
		if name == "" {
			name = what
		}
		act := mon.Queue(name, why)
		select {
		case triggers <- trigger{what: what, why: why, prefix: prefix, act: act}:
			return nil
		default:
			err := fmt.Errorf("busy: %d runs are already waiting; try again once they are done", len(triggers))
			act.Finish("", err)
			return err
		}
	}
	runTrigger := func(tr trigger) {
		switch tr.what {
		case "extract":
			runExtract(tr.why, tr.act)
		case "export":
			runExport(tr.why, tr.act)
		case "reprocess":
			runReprocess(tr.prefix, tr.why, tr.act)
		}
	}

	var stopUI func()
	uiURL := ""
	if uiLn != nil {
		h := dashboard.NewHandler(dashboard.ServerConfig{Monitor: mon, Token: ui.token, Actions: dashboard.Actions{
			Crawl:  func() error { return ask("extract", "page", "") },
			Export: func() error { return ask("export", "page", "") },
			Reprocess: func(prefix string) error {
				if err := checkRawPrefix(prefix); err != nil {
					return err
				}
				return ask("reprocess", "page", prefix)
			},
		}})
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		mctx, stopMon := context.WithCancel(ctx)
		wg.Add(2)
		go func() { defer wg.Done(); srv.Serve(uiLn) }() //nolint:errcheck // ends with Close
		go func() { defer wg.Done(); mon.Run(mctx, 500*time.Millisecond) }()
		stopUI = func() { stopMon(); srv.Close() }
		uiURL = dashboard.PageURL(uiLn.Addr().String())
		if ui.token != "" {
			uiURL += " (open it with ?token=<the --ui-token>)"
		}
	}

	printReach(out, g, st, sess.src, uiURL, extractPeriod, exportPeriod, sess.logf.Name())

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	if term.IsTerminal(int(os.Stdin.Fd())) {
		go readCommands(os.Stdin, ask, func(s string) { say("%s", s) })
	}
	if initialExtract {
		ask("extract", "at start", "") //nolint:errcheck // the queue is empty
	}
	extractTick, exportTick := ticker(extractPeriod), ticker(exportPeriod)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-usr1:
			runExport("SIGUSR1", mon.Queue("export", "SIGUSR1"))
		case tr := <-triggers:
			runTrigger(tr)
		case <-extractTick:
			runExtract("schedule", mon.Queue("crawl", "schedule"))
		case <-exportTick:
			runExport("schedule", mon.Queue("export", "schedule"))
		}
	}
	if stopUI != nil {
		stopUI()
	}
	say("stopping: finishing the invocations in flight")
	stopWatch()
	wg.Wait()
	res.Dropped = chain.Stop(10 * time.Second)
	res.Delivery = chain.Stats()
	t.mu.Lock()
	res.Objects = t.objects
	t.mu.Unlock()
	return res, nil
}

func printReach(w io.Writer, g *globals, st *stack, src *apiSource, uiURL string, extractEvery, exportEvery time.Duration, logFile string) {
	db := mysqldb.Config{DSN: st.DSN}.Redacted() + " (MySQL server)"
	client := ""
	if st.MySQL != nil {
		host, port, _ := strings.Cut(st.MySQL.Addr(), ":")
		db = fmt.Sprintf("root@tcp(%s)/%s (embedded engine, saved under %s/mysql/)", st.MySQL.Addr(), st.MySQL.Database(), g.dataDir)
		client = fmt.Sprintf("mariadb -h%s -P%s -uroot %s", host, port, st.MySQL.Database())
	}
	every := func(d time.Duration) string {
		if d == 0 {
			return "never"
		}
		return "every " + d.String()
	}
	folder := st.Server.Dir(st.Bucket)
	fmt.Fprintf(w, "local stack ready (Ctrl-C stops it)\n")
	if uiURL != "" {
		fmt.Fprintf(w, "  page         %s  (live view; GET /api/status for scripts)\n", uiURL)
	}
	fmt.Fprintf(w, "  S3 endpoint  %s  bucket %s  folder %s\n", st.Endpoint, st.Bucket, folder)
	fmt.Fprintf(w, "  credentials  AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s\n", locals3.AccessKeyID, locals3.SecretAccessKey, locals3.Region)
	fmt.Fprintf(w, "  drop a page  aws --endpoint-url %s s3 cp page.json s3://%s/raw/character/page-0001.json\n", st.Endpoint, st.Bucket)
	fmt.Fprintf(w, "               or copy a file into %s/raw/\n", folder)
	fmt.Fprintf(w, "  MySQL        %s\n", db)
	if client != "" {
		fmt.Fprintf(w, "               %s\n", client)
	}
	fmt.Fprintf(w, "  API          %s (%s)\n", src.URL, src.Description)
	fmt.Fprintf(w, "  schedules    extract %s, export %s; export now: type `export` + Enter, or kill -USR1 %d\n", every(extractEvery), every(exportEvery), os.Getpid())
	fmt.Fprintf(w, "  logs         %s\n", logFile)
}

// readCommands reads `export` and `extract` lines typed at the terminal.
func readCommands(r io.Reader, ask func(what, why, prefix string) error, say func(string)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var err error
		switch strings.TrimSpace(sc.Text()) {
		case "export", "e":
			err = ask("export", "terminal", "")
		case "extract", "x":
			err = ask("extract", "terminal", "")
		case "":
		default:
			say("commands: export (e), extract (x); Ctrl-C stops")
		}
		if err != nil {
			say(err.Error())
		}
	}
}

// warehouseTables are the names of the warehouse tables, in order.
func warehouseTables() []string {
	var names []string
	for _, t := range warehouse.Tables() {
		names = append(names, t.Name)
	}
	return names
}

// reprocessLocal does what `pipeline reprocess` does, on the local stack's
// bucket: every .json object under prefix is copied onto itself, so its
// notification starts Transform again.
func reprocessLocal(ctx context.Context, st *stack, prefix string) (*reprocessResult, error) {
	if err := checkRawPrefix(prefix); err != nil {
		return nil, err
	}
	rp := reprocessor{bucket: bucket.New(st.S3, st.Bucket), concurrency: defaultReprocessConcurrency}
	return rp.run(ctx, prefix, false)
}

func ticker(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil // a nil channel never fires
	}
	return time.NewTicker(d).C
}

var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// schedule returns the period of flag, or else of the template parameter
// param (an EventBridge rate expression). cron(...) has no fixed period:
// it must be replaced by a flag locally.
func schedule(tpl *samtemplate.Template, param, flag string) (time.Duration, error) {
	if flag != "" {
		if d, err := time.ParseDuration(flag); err == nil {
			if d < 0 {
				return 0, errors.New("negative period")
			}
			return d, nil
		}
		return parseRate(flag)
	}
	v, err := tpl.ParameterValue(param, samtemplate.Stack{})
	if err != nil {
		return 0, err
	}
	d, err := parseRate(v)
	if err != nil {
		return 0, fmt.Errorf("template %s %q: %w; give a period with the flag", param, v, err)
	}
	return d, nil
}

func parseRate(s string) (time.Duration, error) {
	m := rateExpr.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is neither a Go duration nor rate(N minutes|hours|days)", s)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
	return time.Duration(n) * unit, nil
}
