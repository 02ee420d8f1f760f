package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/dashboard"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extract"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extractfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

// Logical ids of template.yaml that the local chain gives handlers to.
const (
	dataBucketID = "DataBucket"
	extractID    = "ExtractFunction"
	transformID  = "TransformFunction"
	loadID       = "LoadFunction"
	exportID     = "ExportFunction"
)

// sourceFlags say where `run` and `serve` crawl: the API, or the fakeapi.
type sourceFlags struct {
	fs       *flag.FlagSet
	apiURL   string
	offline  bool
	data     string
	template string
	sizes    fakeapi.Sizes // of the generated data
}

func addSourceFlags(fs *flag.FlagSet) *sourceFlags {
	sf := &sourceFlags{fs: fs}
	fs.StringVar(&sf.apiURL, "api-url", envOr("API_BASE_URL", rickmorty.DefaultBaseURL), "API root to crawl ($API_BASE_URL when set); when the default is unreachable the fake API's generated data is used")
	fs.BoolVar(&sf.offline, "offline", false, "crawl the fake API's generated data (826 characters, 126 locations, 51 episodes) instead of the API")
	fs.StringVar(&sf.data, "data", "", "crawl the fake API serving this snapshot folder (character.json, location.json, episode.json), e.g. ../shared/rickandmorty")
	sf.sizes = fakeapi.DefaultSizes
	fs.IntVar(&sf.sizes.Characters, "characters", sf.sizes.Characters, "characters of the generated data (--offline)")
	fs.IntVar(&sf.sizes.Locations, "locations", sf.sizes.Locations, "locations of the generated data (--offline)")
	fs.IntVar(&sf.sizes.Episodes, "episodes", sf.sizes.Episodes, "episodes of the generated data (--offline)")
	fs.StringVar(&sf.template, "template", "", "template.yaml whose notifications wire the chain (default: ./template.yaml or the nearest parent's)")
	return sf
}

// apiSource is the API a run crawls, and the fake API serving it if any.
type apiSource struct {
	URL         string `json:"url"`
	Description string `json:"description"`
	close       func()
}

// open resolves the source: the fake API for --data or --offline; else the
// API, falling back to the generated fake API with a one-line note when the
// default API is unreachable (an --api-url given explicitly must answer).
func (sf *sourceFlags) open(ctx context.Context, note io.Writer) (*apiSource, error) {
	explicit := os.Getenv("API_BASE_URL") != ""
	sf.fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "api-url" })
	switch {
	case sf.data != "":
		ds, err := fakeapi.Load(sf.data)
		if err != nil {
			return nil, err
		}
		return serveFakeAPI(ds, "fake API of "+sf.data)
	case sf.offline:
		return generatedFakeAPI(sf.sizes)
	}
	err := probeAPI(ctx, sf.apiURL)
	if err == nil {
		return &apiSource{URL: sf.apiURL, Description: "the API at " + sf.apiURL, close: func() {}}, nil
	}
	if explicit {
		return nil, fmt.Errorf("the API at %s is unreachable (%v); --offline runs on the fake API's generated data", sf.apiURL, err)
	}
	fmt.Fprintf(note, "the Rick and Morty API (%s) is unreachable (%v): running on the fake API's generated data instead\n", sf.apiURL, err)
	return generatedFakeAPI(sf.sizes)
}

func generatedFakeAPI(sz fakeapi.Sizes) (*apiSource, error) {
	ds, err := fakeapi.Generate(sz, 1)
	if err != nil {
		return nil, err
	}
	desc := "fake API, generated data"
	if sz != fakeapi.DefaultSizes {
		desc = fmt.Sprintf("fake API, generated data: %d characters, %d locations, %d episodes", sz.Characters, sz.Locations, sz.Episodes)
	}
	return serveFakeAPI(ds, desc)
}

func probeAPI(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) && uerr.Unwrap() != nil {
			err = uerr.Unwrap() // drop the "Get <url>:" prefix: the note names the URL
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("it answered %s", resp.Status)
	}
	return nil
}

func serveFakeAPI(ds *fakeapi.Dataset, desc string) (*apiSource, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The pages advertise the real API's root, not this fake API's random
	// port: a page's bytes then stay the same from run to run (so an
	// unchanged dataset costs nothing downstream) and match the real API's.
	srv := &http.Server{Handler: fakeapi.New(ds, fakeapi.Options{BaseURL: rickmorty.DefaultBaseURL}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	url := "http://" + ln.Addr().String() + "/api"
	return &apiSource{URL: url, Description: desc, close: func() { srv.Close() }}, nil
}

// loadTemplate reads --template, or template.yaml in the working folder or
// the nearest parent holding one.
func (sf *sourceFlags) loadTemplate() (*samtemplate.Template, string, error) {
	path := sf.template
	if path == "" {
		dir, err := os.Getwd()
		if err != nil {
			return nil, "", err
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "template.yaml")); err == nil {
				path = filepath.Join(dir, "template.yaml")
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return nil, "", errors.New("template.yaml not found here or in a parent folder: run from the repository or give --template")
			}
			dir = parent
		}
	}
	t, err := samtemplate.Load(path)
	if err != nil {
		return nil, "", err
	}
	return t, path, nil
}

// tally counts what the chain did, from the objects it saw written and the
// handlers' outcomes. Safe for concurrent use.
type tally struct {
	mu          sync.Mutex
	objects     map[string]int // objects written, by top-level prefix (raw, processed, quarantine, ...)
	transform   map[transformfn.Status]int
	transformed map[string]int // rows written per table
	recordsRej  int
	load        map[loadfn.Status]int
	loadedRows  map[string]int64 // rows read per table from files loaded
	problems    []string
	issues      []dashboard.Problem // the problems, for the run's report
	stages      map[string]*stageTime
	invocations []localrun.Invocation  // kept only when keepInvocations
	started     map[string][]time.Time // transform invocations in flight, by key

	// keepInvocations keeps every invocation for the run's report (run).
	keepInvocations bool
	// echo, when set, is told each outcome as one human line (serve).
	echo func(line string)
	// obs, when set, is told of every object written and every object
	// handled (serve's page).
	obs observer
}

// observer is told what the chain does as it happens; *dashboard.Monitor
// is one.
type observer interface {
	ObjectCreated(key string, chainIdle bool)
	Event(dashboard.Event)
}

type stageTime struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

func newTally() *tally {
	return &tally{objects: map[string]int{}, transform: map[transformfn.Status]int{}, transformed: map[string]int{},
		load: map[loadfn.Status]int{}, loadedRows: map[string]int64{}, stages: map[string]*stageTime{}, started: map[string][]time.Time{}}
}

// objectCreated counts a new object by its first key segment.
func (t *tally) objectCreated(ev locals3.ObjectCreated, chainIdle bool) {
	top, _, _ := strings.Cut(ev.Key, "/")
	t.mu.Lock()
	t.objects[top]++
	t.mu.Unlock()
	if t.obs != nil {
		t.obs.ObjectCreated(ev.Key, chainIdle)
	}
}

// invocation records one invocation of a function, for the run's report.
func (t *tally) invocation(inv localrun.Invocation) {
	if !t.keepInvocations {
		return
	}
	t.mu.Lock()
	t.invocations = append(t.invocations, inv)
	t.mu.Unlock()
}

// transformStarting notes when the transform of keys starts, so that its
// outcome can say how long it took.
func (t *tally) transformStarting(keys []string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		t.started[k] = append(t.started[k], now)
	}
}

// transformTook returns how long the transform of key took, forgetting
// its start. The caller holds t.mu.
func (t *tally) transformTook(key string) float64 {
	starts := t.started[key]
	if len(starts) == 0 {
		return 0
	}
	took := time.Since(starts[0]).Seconds()
	if len(starts) == 1 {
		delete(t.started, key)
	} else {
		t.started[key] = starts[1:]
	}
	return took
}

func (t *tally) transformOutcome(o transformfn.Outcome) {
	if t.echo != nil {
		line := fmt.Sprintf("transform %s: %s", o.Key, o.Status)
		if o.Report != nil {
			line += fmt.Sprintf(", %d records → %d files, %d rejected", o.Report.Records, len(o.Outputs), o.Report.Rejected)
		}
		if o.Reason != "" {
			line += ": " + o.Reason
		}
		t.echo(line)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ev := dashboard.Event{Time: time.Now(), Key: o.Key, Function: transformID, Outcome: string(o.Status), Seconds: t.transformTook(o.Key)}
	if o.Status != transformfn.Transformed {
		ev.Error = o.Reason
	}
	t.transform[o.Status]++
	if o.Report != nil {
		for tbl, n := range o.Report.Rows {
			t.transformed[tbl] += n
			ev.Rows += int64(n)
		}
		t.recordsRej += o.Report.Rejected
		if o.Report.Rejected > 0 {
			t.issues = append(t.issues, dashboard.Problem{Kind: dashboard.Rejected, Key: bucket.RejectedKey(o.Key), Source: o.Key,
				Stage: "transform", Records: o.Report.Rejected, Reason: fmt.Sprintf("%d records rejected", o.Report.Rejected)})
		}
	}
	switch o.Status {
	case transformfn.Quarantined:
		t.issues = append(t.issues, dashboard.Problem{Kind: dashboard.Quarantined, Key: bucket.QuarantineKey(o.Key), Source: o.Key, Stage: "transform", Reason: o.Reason})
	case transformfn.Failed:
		t.issues = append(t.issues, dashboard.Problem{Kind: string(o.Status), Source: o.Key, Stage: "transform", Reason: o.Reason})
	}
	if o.Status == transformfn.Quarantined || o.Status == transformfn.Failed {
		t.problems = append(t.problems, fmt.Sprintf("transform %s %s: %s", o.Status, o.Key, o.Reason))
	}
	if t.obs != nil {
		t.obs.Event(ev)
	}
}

func (t *tally) loadOutcome(o loadfn.Outcome) {
	if t.echo != nil {
		line := fmt.Sprintf("load %s: %s", o.Key, o.Status)
		if o.Status == loadfn.Loaded {
			line += fmt.Sprintf(", %d rows into %s", o.Rows, o.Table)
		}
		if o.Reason != "" {
			line += ": " + o.Reason
		}
		t.echo(line)
	}
	if t.obs != nil {
		ev := dashboard.Event{Time: time.Now(), Key: o.Key, Function: loadID, Outcome: string(o.Status), Seconds: o.Took.Seconds()}
		if o.Key == "" {
			ev.Key = "message " + o.MessageID
		}
		if o.Status == loadfn.Loaded {
			ev.Rows = o.Rows
		} else {
			ev.Error = o.Reason
		}
		t.obs.Event(ev)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.load[o.Status]++
	if o.Status == loadfn.Loaded {
		t.loadedRows[o.Table] += o.Rows
	}
	switch o.Status {
	case loadfn.Quarantined:
		t.issues = append(t.issues, dashboard.Problem{Kind: dashboard.Quarantined, Key: bucket.QuarantineKey(o.Key), Source: o.Key, Stage: "load", Reason: o.Reason})
	case loadfn.Rejected:
		src := o.Key
		if src == "" {
			src = "message " + o.MessageID
		}
		t.issues = append(t.issues, dashboard.Problem{Kind: "rejected message", Source: src, Stage: "load", Reason: o.Reason})
	}
	if o.Status == loadfn.Quarantined || o.Status == loadfn.Rejected {
		t.problems = append(t.problems, fmt.Sprintf("load %s %s: %s", o.Status, o.Key, o.Reason))
	}
}

// begin and end record a stage's first start and last end.
func (t *tally) begin(stage string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stages[stage] == nil {
		t.stages[stage] = &stageTime{Start: time.Now()}
	}
}

func (t *tally) end(stage string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.stages[stage]; st != nil {
		st.End = time.Now()
	}
}

// newLocalChain wires the Transform and Load handlers to the stack's
// notifications as template.yaml declares them.
func newLocalChain(st *stack, tpl *samtemplate.Template, log *slog.Logger, t *tally) (*localrun.Chain, error) {
	w, err := localrun.ReadWiring(tpl, dataBucketID, samtemplate.Stack{})
	if err != nil {
		return nil, fmt.Errorf("reading the notifications of template.yaml: %w", err)
	}
	tr := transformfn.New(transformfn.Config{Bucket: st.Bucket, PathStyle: true}, st.S3, log.With("function", "transform"))
	tr.Observe = t.transformOutcome
	ld := loadfn.New(loadfn.Config{Bucket: st.Bucket, PathStyle: true}, st.S3, st.DB, log.With("function", "load"))
	ld.Observe = t.loadOutcome
	ch, err := localrun.NewChain(localrun.ChainConfig{
		Wiring: w, Bucket: st.Bucket, Log: log.With("component", "chain"), OnInvocation: t.invocation,
		Async: map[string]localrun.AsyncHandler{transformID: func(ctx context.Context, ev events.S3Event) error {
			t.begin("transform")
			defer t.end("transform")
			keys := make([]string, 0, len(ev.Records))
			for _, r := range ev.Records {
				keys = append(keys, r.S3.Object.URLDecodedKey)
			}
			t.transformStarting(keys)
			return tr.Handle(ctx, ev)
		}},
		Batch: map[string]localrun.BatchHandler{loadID: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			t.begin("load")
			defer t.end("load")
			return ld.Handle(ctx, ev)
		}},
	})
	if err != nil {
		return nil, err
	}
	st.Server.OnObjectCreated(func(ev locals3.ObjectCreated) {
		t.objectCreated(ev, ch.Pending() == 0)
		ch.Notify(ev)
	})
	return ch, nil
}

// openLog opens <data-dir>/logs/<name>-<time>.jsonl for the handlers' JSON logs.
func openLog(dataDir, name string) (*os.File, error) {
	dir := filepath.Join(dataDir, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s.jsonl", name, time.Now().UTC().Format("20060102T150405Z"))))
}

// session is what `run` and `serve` share: the template, the API source, the
// local stack, the handlers' log and the chain between them.
type session struct {
	tpl       *samtemplate.Template
	tplPath   string
	extractFS localrun.FunctionSettings
	exportFS  localrun.FunctionSettings
	src       *apiSource
	st        *stack
	logf      *os.File
	log       *slog.Logger
	tally     *tally
	chain     *localrun.Chain
}

// openSession reads the template, opens the source and the stack, and wires
// the chain (not started). name names the log file.
func openSession(ctx context.Context, g *globals, sf *sourceFlags, name, level string) (*session, error) {
	s := &session{tally: newTally()}
	var err error
	if s.tpl, s.tplPath, err = sf.loadTemplate(); err != nil {
		return nil, err
	}
	if s.extractFS, err = localrun.ReadFunction(s.tpl, extractID, samtemplate.Stack{}); err != nil {
		return nil, err
	}
	if s.exportFS, err = localrun.ReadFunction(s.tpl, exportID, samtemplate.Stack{}); err != nil {
		return nil, err
	}
	if s.src, err = sf.open(ctx, g.stderr); err != nil {
		return nil, err
	}
	if s.st, err = g.openStack(ctx, true); err != nil {
		s.Close()
		return nil, err
	}
	if s.logf, err = openLog(g.dataDir, name); err != nil {
		s.Close()
		return nil, err
	}
	s.log = logging.New(s.logf, level)
	if s.chain, err = newLocalChain(s.st, s.tpl, s.log, s.tally); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the stack and the fake API; the chain must be stopped first.
func (s *session) Close() {
	if s.st != nil {
		s.st.Close()
	}
	if s.logf != nil {
		s.logf.Close()
	}
	s.src.close()
}

// extract invokes the Extract handler with the schedule event, under the
// function's timeout.
func (s *session) extract(ctx context.Context, force bool) (extract.Result, error) {
	ev, err := scheduledEvent(force, time.Now())
	if err != nil {
		return extract.Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.extractFS.Timeout)
	defer cancel()
	def := extract.DefaultConfig()
	cfg := extractfn.Config{Bucket: s.st.Bucket, APIBaseURL: s.src.URL, PathStyle: true, Concurrency: def.Concurrency,
		RequestTimeout: def.RequestTimeout, RetryMax: def.RetryMax, RetryBudget: def.RetryBudget}
	return extractfn.New(cfg, s.st.S3, nil, time.Now, s.log.With("function", "extract")).Handle(ctx, ev)
}

// export invokes the Export handler with the schedule event, with no lag:
// the chain is idle, so every write of the runner's is committed.
func (s *session) export(ctx context.Context) (export.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.exportFS.Timeout)
	defer cancel()
	cfg := exportfn.Config{Bucket: s.st.Bucket, PathStyle: true, Prefix: bucket.DefaultExportPrefix, Tables: exportfn.DefaultTables, Lag: 0,
		ChunkRows: export.DefaultChunkRows, RowGroupRows: export.DefaultRowGroupRows, Compression: export.DefaultCompression,
		DeadlineMargin: export.DefaultDeadlineMargin}
	// A table with more due rows than template.yaml's EXPORT_RANGE_ROWS is
	// fanned out to range workers through a local range queue.
	rows, workers := templateRanges(s.tpl)
	cfg.RangeRows = rows
	res, _, err := runExport(ctx, exportfn.New(cfg, s.st.S3, s.st.DB, s.log.With("function", "export")), workers)
	return res, err
}
