package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
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
			return func(ctx context.Context) (result, error) {
				return serve(ctx, g, sf, *extractEvery, *exportEvery, !*noExtract, *level)
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

func serve(ctx context.Context, g *globals, sf *sourceFlags, extractEvery, exportEvery string, initialExtract bool, level string) (result, error) {
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
	runExtract := func(why string) {
		say("extract (%s) from %s", why, sess.src.Description)
		r, err := sess.extract(ctx, false)
		res.Extracts++
		if err != nil {
			say("extract failed: %v", err)
			return
		}
		say("extract: %d pages, %d written, %d unchanged", r.Pages, r.Written, r.Unchanged)
	}
	runExport := func(why string) {
		// Wait for the chain to settle, so an on-demand export sees what was
		// just dropped in; the lag then covers only other writers.
		_ = chain.WaitIdle(ctx)
		r, err := sess.export(ctx)
		res.Exports++
		if err != nil {
			say("export (%s) failed: %v", why, err)
			return
		}
		say("export (%s): %s", why, exportSummary(r))
	}

	printReach(out, g, st, sess.src, extractPeriod, exportPeriod, sess.logf.Name())

	// Stage runs are serialized: one extract or export at a time.
	triggers := make(chan string, 4)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	if term.IsTerminal(int(os.Stdin.Fd())) {
		go readCommands(os.Stdin, triggers, func(s string) { say("%s", s) })
	}
	if initialExtract {
		triggers <- "extract:at start"
	}
	extractTick, exportTick := ticker(extractPeriod), ticker(exportPeriod)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-usr1:
			runExport("SIGUSR1")
		case tr := <-triggers:
			what, why, _ := strings.Cut(tr, ":")
			if what == "extract" {
				runExtract(why)
			} else {
				runExport(why)
			}
		case <-extractTick:
			runExtract("schedule")
		case <-exportTick:
			runExport("schedule")
		}
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

func printReach(w io.Writer, g *globals, st *stack, src *apiSource, extractEvery, exportEvery time.Duration, logFile string) {
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
func readCommands(r io.Reader, triggers chan<- string, say func(string)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "export", "e":
			triggers <- "export:on demand"
		case "extract", "x":
			triggers <- "extract:on demand"
		case "":
		default:
			say("commands: export (e), extract (x); Ctrl-C stops")
		}
	}
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
