package dashboard

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
)

// Status is what GET /api/status answers and what the page shows: the
// same facts, as JSON.
type Status struct {
	Time time.Time `json:"time"` // when this status was assembled
	// FactsTime is when the bucket and the database were last read (the
	// other facts are from Time).
	FactsTime    time.Time `json:"factsTime"`
	Bucket       string    `json:"bucket"`
	ExportPrefix string    `json:"exportPrefix"`
	// Tables is the row count of each warehouse table.
	Tables    map[string]int64 `json:"tables"`
	TableInfo []TableInfo      `json:"tableInfo"` // each table in detail, in warehouse order
	// Objects counts the objects stored in each area of the bucket: "raw/",
	// "processed/", "rejected/", "quarantine/" (quarantined copies, reports
	// not counted), the export prefix ("exports/"), "manifests/" and
	// "other".
	Objects map[string]int `json:"objects"`
	// Written counts the objects written to each area since serve started,
	// as Objects counts them.
	Written map[string]int `json:"written"`
	// Queues are the chain's targets: TransformFunction's asynchronous
	// invocations and LoadQueue, with their depths (visible, in flight)
	// and dead letters.
	Queues     []localrun.Stats      `json:"queues"`
	Watermarks map[string]*Watermark `json:"watermarks"` // per exported table; absent before its first export
	Events     []Event               `json:"events"`     // the last objects handled, newest first
	Problems   []Problem             `json:"problems"`   // quarantined and rejected objects, newest first
	Actions    []Action              `json:"actions"`    // crawls, exports and reprocesses, newest first
	Runs       map[string]int        `json:"runs"`       // finished actions by name (crawl, export, reprocess)
	RowsLoaded int64                 `json:"rowsLoaded"` // rows in the files loaded since serve started
	// LastRunStart is when the last run began: the last crawl, or the first
	// object dropped into raw/ while the chain was idle.
	LastRunStart *time.Time `json:"lastRunStart"`
	Errors       []string   `json:"errors"` // facts that could not be read, and why
}

// TableInfo is one warehouse table.
type TableInfo struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
	// ChangedLastRun counts the rows created or modified (createdDate or
	// modifiedDate) since LastRunStart; null before the first run.
	ChangedLastRun *int64 `json:"changedLastRun"`
	// LastModified is the table's latest modifiedDate; null when no row
	// was ever modified.
	LastModified *time.Time `json:"lastModified"`
	Watermark    *Watermark `json:"watermark"`
	Error        string     `json:"error,omitempty"`
}

// Watermark is a table's export watermark, as the exporter stored it.
type Watermark struct {
	Key        string    `json:"key"`
	Timestamp  time.Time `json:"timestamp"`  // every row at or before this position is exported
	UpdatedAt  time.Time `json:"updatedAt"`  // when the exporter stored it
	AgeSeconds float64   `json:"ageSeconds"` // Status.Time minus Timestamp: how far the export lags
	Rows       int64     `json:"rows"`       // rows its run exported
	RunID      string    `json:"runId"`
	Phase      string    `json:"phase"`
	Complete   bool      `json:"complete"`
	Error      string    `json:"error,omitempty"` // the file cannot be read (the table's export stops)
	etag       string
}

// Event is one object handled by one function.
type Event struct {
	Time     time.Time `json:"time"` // when it ended
	Key      string    `json:"key"`
	Function string    `json:"function"` // logical id: TransformFunction, LoadFunction
	Outcome  string    `json:"outcome"`  // the handler's status: transformed, loaded, quarantined, failed, ...
	Seconds  float64   `json:"seconds"`  // how long it took
	Rows     int64     `json:"rows,omitempty"`
	Error    string    `json:"error,omitempty"` // why, when it did not simply succeed
}

// Problem is a quarantined object (with its report) or a file of rejected
// records.
type Problem struct {
	Kind    string    `json:"kind"`             // Quarantined or Rejected
	Key     string    `json:"key"`              // the quarantined copy, or the rejected file
	Report  string    `json:"report,omitempty"` // the .error.json beside a quarantined copy
	Source  string    `json:"source"`           // the object it comes from
	Stage   string    `json:"stage"`            // transform or load
	Reason  string    `json:"reason"`
	Records int       `json:"records,omitempty"` // rejected records in the file
	Time    time.Time `json:"time"`
	etag    string
}

// Problem kinds.
const (
	Quarantined = "quarantined"
	Rejected    = "rejected"
)

// Action is one crawl, export or reprocess, from a schedule, the page or
// the terminal.
type Action struct {
	ID      int       `json:"id"`
	Time    time.Time `json:"time"` // when it was asked for
	Name    string    `json:"name"` // crawl, export or reprocess
	Why     string    `json:"why"`  // schedule, page, at start, ...
	State   string    `json:"state"`
	Summary string    `json:"summary"`
}

// Action states.
const (
	Queued  = "queued"
	Running = "running"
	Done    = "done"
	Failed  = "failed"
)

// objects is what the dashboard reads of the bucket; *bucket.Bucket has it.
type objects interface {
	List(ctx context.Context, prefix string, fn func(bucket.Info) error) error
	ReadAll(ctx context.Context, key string, limit int64) ([]byte, bucket.Info, error)
	Get(ctx context.Context, key string, v bucket.Version) (io.ReadCloser, bucket.Info, error)
}

// database opens the warehouse; *mysqldb.Connector has it.
type database interface {
	DB(ctx context.Context) (*sql.DB, error)
}

// chain reports the local chain's delivery; *localrun.Chain has it.
type chain interface {
	Stats() []localrun.Stats
}

// Config says where a Monitor reads its facts.
type Config struct {
	Bucket       objects
	BucketName   string
	DB           database
	Chain        chain
	Tables       []string // warehouse tables, in display order
	ExportPrefix string   // bucket.DefaultExportPrefix unless the exporter uses another
	// FullEvery bounds how stale the bucket and database facts may get when
	// nothing announced a change (objects deleted by hand, say); default 10s.
	FullEvery time.Duration
	// MaxBusy is the share of the time that reading the bucket and the
	// database may take while changes keep coming (listing thousands of
	// objects takes a while): after a read that took d, the next waits
	// d/MaxBusy. Default 0.2; 1 or more reads on every change.
	MaxBusy float64
	Now     func() time.Time
	Log     *slog.Logger
}

// Limits of what a Monitor keeps.
const (
	keepEvents   = 200
	keepActions  = 30
	keepProblems = 200
)

// Monitor gathers the Status of a running local stack: the bucket and the
// database are read again when something changed (Touch, ObjectCreated,
// Event) or every FullEvery; what the chain did is kept in memory. Safe
// for concurrent use.
type Monitor struct {
	cfg Config

	mu         sync.Mutex
	events     []Event // newest last
	actions    []*Action
	nextAction int
	runs       map[string]int
	written    map[string]int
	rowsLoaded int64
	runStart   time.Time
	dirty      bool

	refreshMu    sync.Mutex // one refresh at a time; guards the fields below
	lastFull     time.Time  // when the bucket and the database were last read (cfg.Now)
	nextFull     time.Time  // not before, unless nothing changed for FullEvery (monotonic clock)
	factsTime    time.Time
	facts        facts
	last         []byte                // the last Status, encoded
	problemCache map[string]Problem    // by key, with the ETag read
	markCache    map[string]*Watermark // by key, with the ETag read

	subMu sync.Mutex
	subs  map[chan []byte]struct{}
}

// facts are what a full refresh read from the bucket and the database.
type facts struct {
	objects    map[string]int
	problems   []Problem
	watermarks map[string]*Watermark
	tables     []TableInfo
	errors     []string
}

// New returns a Monitor; Run keeps its subscribers up to date.
func New(cfg Config) *Monitor {
	if cfg.ExportPrefix == "" {
		cfg.ExportPrefix = bucket.DefaultExportPrefix
	}
	if cfg.FullEvery <= 0 {
		cfg.FullEvery = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBusy <= 0 {
		cfg.MaxBusy = 0.2
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{cfg: cfg, runs: map[string]int{}, written: map[string]int{}, dirty: true, subs: map[chan []byte]struct{}{}}
}

// Touch says the bucket or the database changed: the next refresh reads
// them again.
func (m *Monitor) Touch() {
	m.mu.Lock()
	m.dirty = true
	m.mu.Unlock()
}

// ObjectCreated counts an object written to the bucket (a quarantine report
// counts with its copy). An object under raw/ while the chain is idle starts
// a run.
func (m *Monitor) ObjectCreated(key string, chainIdle bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, report := bucket.QuarantinedCopy(key); !report {
		m.written[area(key, m.cfg.ExportPrefix)]++
	}
	if chainIdle && strings.HasPrefix(key, bucket.RawPrefix) {
		m.runStart = m.cfg.Now()
	}
	m.dirty = true
}

// RunStarted marks the start of a run (a crawl).
func (m *Monitor) RunStarted() {
	m.mu.Lock()
	m.runStart = m.cfg.Now()
	m.dirty = true
	m.mu.Unlock()
}

// Event records an object handled by a function.
func (m *Monitor) Event(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = m.cfg.Now()
	}
	if len(m.events) == keepEvents {
		m.events = append(m.events[:0], m.events[1:]...)
	}
	m.events = append(m.events, e)
	if e.Function == "LoadFunction" {
		m.rowsLoaded += e.Rows
	}
	m.dirty = true
}

// Queue records an action asked for; its handle starts and ends it.
func (m *Monitor) Queue(name, why string) *ActionHandle {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextAction++
	a := &Action{ID: m.nextAction, Time: m.cfg.Now(), Name: name, Why: why, State: Queued}
	if len(m.actions) == keepActions {
		m.actions = append(m.actions[:0], m.actions[1:]...)
	}
	m.actions = append(m.actions, a)
	return &ActionHandle{m: m, a: a}
}

// ActionHandle moves one action through its states.
type ActionHandle struct {
	m *Monitor
	a *Action
}

// Start marks the action running.
func (h *ActionHandle) Start() {
	h.m.mu.Lock()
	h.a.State = Running
	h.m.mu.Unlock()
}

// Finish marks the action done (or failed, with err) with a one-line
// summary of what it did.
func (h *ActionHandle) Finish(summary string, err error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	h.a.State, h.a.Summary = Done, summary
	if err != nil {
		h.a.State = Failed
		if summary != "" {
			h.a.Summary = summary + ": " + err.Error()
		} else {
			h.a.Summary = err.Error()
		}
	}
	h.m.runs[h.a.Name]++
	h.m.dirty = true
}

// Refresh gathers the status now: the bucket and the database when they
// changed or FullEvery passed, the rest from memory.
func (m *Monitor) Refresh(ctx context.Context) Status {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	m.mu.Lock()
	stale := m.lastFull.IsZero() || m.cfg.Now().Sub(m.lastFull) >= m.cfg.FullEvery
	full := stale || m.dirty && (m.cfg.MaxBusy >= 1 || !m.cfg.Now().Before(m.nextFull))
	if full {
		m.dirty = false
	}
	runStart := m.runStart
	m.mu.Unlock()
	if full {
		m.lastFull = m.cfg.Now()
		start := time.Now()
		m.facts = m.readFacts(ctx, runStart)
		took := time.Since(start)
		m.nextFull = m.lastFull.Add(time.Duration(float64(took) / m.cfg.MaxBusy))
		m.factsTime = m.lastFull
	}
	st := m.assemble(runStart)
	if b, err := json.Marshal(st); err == nil {
		m.last = b
	}
	return st
}

// assemble builds the Status from the last facts and what is in memory.
// refreshMu is held.
func (m *Monitor) assemble(runStart time.Time) Status {
	now := m.cfg.Now()
	f := m.facts
	st := Status{Time: now, FactsTime: m.factsTime, Bucket: m.cfg.BucketName, ExportPrefix: m.cfg.ExportPrefix, Tables: map[string]int64{}, TableInfo: []TableInfo{},
		Objects: f.objects, Watermarks: map[string]*Watermark{}, Problems: f.problems,
		Errors: append([]string{}, f.errors...)}
	if st.Objects == nil {
		st.Objects = map[string]int{}
	}
	if st.Problems == nil {
		st.Problems = []Problem{}
	}
	for name, w := range f.watermarks {
		c := *w
		if !c.Timestamp.IsZero() {
			c.AgeSeconds = now.Sub(c.Timestamp).Seconds()
		}
		st.Watermarks[name] = &c
	}
	for _, t := range f.tables {
		t.Watermark = st.Watermarks[t.Name]
		st.Tables[t.Name] = t.Rows
		st.TableInfo = append(st.TableInfo, t)
	}
	if m.cfg.Chain != nil {
		st.Queues = m.cfg.Chain.Stats()
	}
	if st.Queues == nil {
		st.Queues = []localrun.Stats{}
	}
	if !runStart.IsZero() {
		st.LastRunStart = &runStart
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	st.Events = make([]Event, 0, len(m.events))
	for i := len(m.events) - 1; i >= 0; i-- {
		st.Events = append(st.Events, m.events[i])
	}
	st.Actions = make([]Action, 0, len(m.actions))
	for i := len(m.actions) - 1; i >= 0; i-- {
		st.Actions = append(st.Actions, *m.actions[i])
	}
	st.Runs = make(map[string]int, len(m.runs))
	for k, v := range m.runs {
		st.Runs[k] = v
	}
	st.Written = make(map[string]int, len(m.written))
	for k, v := range m.written {
		st.Written[k] = v
	}
	st.RowsLoaded = m.rowsLoaded
	return st
}

// Run refreshes the status every interval and sends it to the
// subscribers, until ctx ends.
func (m *Monitor) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if m.subscribers() > 0 {
			m.Refresh(ctx)
			m.publish()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Monitor) subscribers() int {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	return len(m.subs)
}

// publish sends the last status to every subscriber; one that has not
// taken the previous one yet gets the newer one instead.
func (m *Monitor) publish() {
	m.refreshMu.Lock()
	b := m.last
	m.refreshMu.Unlock()
	if b == nil {
		return
	}
	m.subMu.Lock()
	defer m.subMu.Unlock()
	for ch := range m.subs {
		select {
		case <-ch: // drop the stale one
		default:
		}
		ch <- b
	}
}

// subscribe returns a channel of encoded statuses and its cancel function.
func (m *Monitor) subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 1)
	m.subMu.Lock()
	m.subs[ch] = struct{}{}
	m.subMu.Unlock()
	return ch, func() {
		m.subMu.Lock()
		delete(m.subs, ch)
		m.subMu.Unlock()
	}
}

// area is the area of the bucket key is in, as Status.Objects counts it.
func area(key, exportPrefix string) string {
	for _, p := range []string{bucket.RawPrefix, bucket.ProcessedPrefix, bucket.RejectedPrefix, bucket.QuarantinePrefix, bucket.ManifestPrefix, exportPrefix} {
		if strings.HasPrefix(key, p) {
			return p
		}
	}
	return "other"
}

// sortProblems puts the newest first and keeps at most keepProblems.
func sortProblems(ps []Problem) []Problem {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	if len(ps) > keepProblems {
		ps = ps[:keepProblems]
	}
	return ps
}
