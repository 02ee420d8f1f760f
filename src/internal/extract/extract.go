// Package extract crawls the Rick and Morty API into the data bucket's raw/
// prefix: every page of every resource, byte for byte as served, under a
// deterministic key, written only when its bytes changed, with a run
// manifest beside (not under) raw/.
//
// The crawl asks for the root document and the first page of each known
// resource together (the root then confirms which resources to keep), learns
// info.pages from each first page, and fetches the remaining pages of all
// resources through one shared limit of Concurrency requests in flight.
// Failed requests are retried with exponential backoff and full jitter, or
// after the server's Retry-After (which pauses every request, not just the
// one that got it), within a per-request and a per-run retry budget. The
// crawl stops DeadlineMargin before its context's deadline, so the manifest
// is always written and the error says how far it got.
package extract

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

// ErrDeadline is wrapped by the error of a run that stopped before its
// context's deadline. Its work is idempotent: the next run completes it.
var ErrDeadline = errors.New("stopped before the deadline")

// Config tunes a crawl. Zero durations and counts take the defaults noted,
// except RetryMax and RetryBudget, where zero means no retries.
type Config struct {
	BaseURL        string        // API root (default rickmorty.DefaultBaseURL)
	Bucket         string        // data bucket
	Concurrency    int           // HTTP requests in flight, across resources (default 4)
	RequestTimeout time.Duration // per attempt, body included (default 10s)
	RetryMax       int           // retries of one request
	RetryBudget    int           // retries of the whole run
	BackoffBase    time.Duration // ceiling of the first backoff (default 250ms)
	BackoffMax     time.Duration // largest backoff ceiling (default 20s)
	MaxRetryAfter  time.Duration // longest Retry-After honoured; longer gives up (default 2m)
	DeadlineMargin time.Duration // stop this long before the context's deadline (default 10s)
	// MaxPending bounds the pages held at once, from fetch to stored
	// (default 2×Concurrency, so storing overlaps fetching). 1 with
	// Concurrency 1 is the strictly sequential crawl: fetch, store, next.
	MaxPending int
	// MaxPages bounds the pages of one resource (default 10000; the real
	// API has 42): a first page announcing more is rejected rather than
	// crawled until the deadline.
	MaxPages  int
	UserAgent string
}

// DefaultConfig is the configuration the Lambda function starts from.
func DefaultConfig() Config {
	return Config{
		BaseURL:        rickmorty.DefaultBaseURL,
		Concurrency:    4,
		RequestTimeout: 10 * time.Second,
		RetryMax:       5,
		RetryBudget:    100,
	}
}

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = rickmorty.DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	c.RetryMax = max(c.RetryMax, 0)
	c.RetryBudget = max(c.RetryBudget, 0)
	if c.BackoffBase <= 0 {
		c.BackoffBase = 250 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 20 * time.Second
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = 2 * time.Minute
	}
	if c.DeadlineMargin <= 0 {
		c.DeadlineMargin = 10 * time.Second
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 2 * c.Concurrency
	}
	if c.MaxPages <= 0 {
		c.MaxPages = 10000
	}
	if c.UserAgent == "" {
		c.UserAgent = "rickmorty-pipeline-extract/1"
	}
	return c
}

// pageStore is where pages and manifests go; *bucket.Bucket is one.
type pageStore interface {
	Head(ctx context.Context, key string) (bucket.Info, error)
	Put(ctx context.Context, key string, body []byte, o bucket.PutOptions) (string, error)
}

// Crawler runs crawls. It is safe for concurrent use; each Run is
// independent.
type Crawler struct {
	cfg   Config
	store pageStore
	api   *rickmorty.Client
	now   func() time.Time
	log   *slog.Logger
	rand  func() float64 // jitter, in [0, 1)
}

// New returns a Crawler writing to store (the data bucket) and reading the
// API through hc. now stamps fetch times and run ids (time.Now in
// production).
func New(cfg Config, store pageStore, hc rickmorty.Doer, now func() time.Time, log *slog.Logger) *Crawler {
	cfg = cfg.withDefaults()
	if hc == nil {
		hc = rickmorty.NewHTTPClient(cfg.Concurrency)
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Crawler{
		cfg:   cfg,
		store: store,
		api:   &rickmorty.Client{HTTP: hc, UserAgent: cfg.UserAgent},
		now:   now,
		log:   log,
		rand:  mrand.Float64,
	}
}

// Config returns the configuration in use, defaults applied.
func (c *Crawler) Config() Config { return c.cfg }

// Result is what a run did. The run manifest holds the same fields.
type Result struct {
	RunID       string    `json:"runId"`
	ManifestKey string    `json:"manifestKey"`
	StartedAt   time.Time `json:"startedAt"`
	FinishedAt  time.Time `json:"finishedAt"`
	Force       bool      `json:"force"`
	// Complete: every page the first pages announced is in raw/ as served
	// during this run (written or unchanged). A dataset that changed
	// mid-crawl is listed in Changes; it does not make a run incomplete.
	Complete bool   `json:"complete"`
	Stopped  string `json:"stopped,omitempty"` // "deadline" or "canceled" when the run stopped early

	Pages        int   `json:"pages"`     // pages announced by the first pages of the resources
	Fetched      int   `json:"fetched"`   // pages received and valid
	Written      int   `json:"written"`   // pages written to raw/
	Unchanged    int   `json:"unchanged"` // pages whose bytes equal the stored object (no write)
	Failed       int   `json:"failed"`    // pages given up on (see Failures)
	Skipped      int   `json:"skipped"`   // pages not done because the run stopped
	Requests     int   `json:"requests"`  // HTTP attempts, root document included
	Retries      int   `json:"retries"`
	BytesFetched int64 `json:"bytesFetched"`
	BytesWritten int64 `json:"bytesWritten"`

	Resources       []ResourceResult `json:"resources"`
	Ignored         []string         `json:"ignored,omitempty"`        // root document entries naming no known resource
	Changes         []Change         `json:"datasetChanges,omitempty"` // the dataset changed during the crawl
	ChangesOmitted  int              `json:"datasetChangesOmitted,omitempty"`
	Failures        []Failure        `json:"failures,omitempty"`
	FailuresOmitted int              `json:"failuresOmitted,omitempty"`
}

// ResourceResult is what a run did for one resource. Count and Pages are
// page 1's info (0 when page 1 was not had).
type ResourceResult struct {
	Resource  string `json:"resource"`
	Count     int    `json:"count"`
	Pages     int    `json:"pages"`
	Fetched   int    `json:"fetched"`
	Written   int    `json:"written"`
	Unchanged int    `json:"unchanged"`
	Failed    int    `json:"failed"`
	Skipped   int    `json:"skipped"`
}

// Stored is the number of pages of the resource now in raw/ as served.
func (r ResourceResult) Stored() int { return r.Written + r.Unchanged }

// Change records a page whose info disagreed with page 1's: the dataset
// changed while the crawl ran. The next run sees the new dataset whole.
type Change struct {
	Resource   string `json:"resource"`
	Page       int    `json:"page"`
	Count      int    `json:"count"`
	Pages      int    `json:"pages"`
	FirstCount int    `json:"firstCount"`
	FirstPages int    `json:"firstPages"`
}

// Failure is a page (or, with Page 0, the root document) given up on.
type Failure struct {
	Resource string `json:"resource,omitempty"`
	Page     int    `json:"page,omitempty"`
	URL      string `json:"url"`
	Error    string `json:"error"`
}

// maxListed bounds the failures and the changes listed in a result (the
// counts stay exact).
const maxListed = 100

// Manifest is the run manifest written to bucket.ExtractManifestKey(RunID).
type Manifest struct {
	Result
	APIBaseURL  string `json:"apiBaseUrl"`
	Bucket      string `json:"bucket"`
	Concurrency int    `json:"concurrency"`
	Error       string `json:"error,omitempty"`
}

// errStopped is the cause of the crawl context when the run stops for its
// deadline.
var errStopped = errors.New("crawl stopped for the deadline")

// Run crawls every page into raw/ and writes the run manifest. force writes
// every page even when its bytes equal the stored object. The Result is
// meaningful even with an error: it says how far the run got.
func (c *Crawler) Run(ctx context.Context, force bool) (Result, error) {
	r := &run{
		Crawler:  c,
		force:    force,
		httpSem:  make(chan struct{}, c.cfg.Concurrency),
		pendSem:  make(chan struct{}, c.cfg.MaxPending),
		res:      map[string]*ResourceResult{},
		rootDone: make(chan struct{}),
	}
	started := c.now().UTC()
	r.result = Result{RunID: newRunID(started), StartedAt: started, Force: force}
	r.result.ManifestKey = bucket.ExtractManifestKey(r.result.RunID)

	crawlCtx, cancel := ctx, context.CancelFunc(func() {})
	if deadline, ok := ctx.Deadline(); ok {
		r.stopAt = deadline.Add(-c.cfg.DeadlineMargin)
		crawlCtx, cancel = context.WithDeadlineCause(ctx, r.stopAt, errStopped)
	}
	crawlCtx, r.abort = context.WithCancelCause(crawlCtx)
	r.crawl(crawlCtx)
	res := r.finish()
	// The verdict reads crawlCtx's state, so it is cancelled only after: a
	// crawl that finished in time must not look stopped by its deadline.
	err := r.verdict(ctx, crawlCtx, &res)
	cancel()
	r.abort(nil)
	if merr := c.writeManifest(ctx, res, err); merr != nil {
		err = errors.Join(err, merr)
	}
	c.logSummary(ctx, res, err)
	return res, err
}

// run is the state of one Run.
type run struct {
	*Crawler
	force   bool
	stopAt  time.Time // zero: no deadline
	httpSem chan struct{}
	pendSem chan struct{}

	// abort stops the crawl when the bucket cannot be written at all
	// (missing, or access denied): no page could be stored.
	abort    context.CancelCauseFunc
	storeErr error // why, set once under mu

	rootDone chan struct{} // closed when listed/rootErr are set
	listed   map[string]bool
	rootErr  error

	requests, retries         atomic.Int64
	bytesFetched, bytesStored atomic.Int64

	gateMu    sync.Mutex
	notBefore time.Time // no request starts before (Retry-After)

	mu     sync.Mutex
	result Result
	res    map[string]*ResourceResult
}

func newRunID(t time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return t.Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b)
}

func (r *run) crawl(ctx context.Context) {
	// The first pages are asked for alongside the root document; if it
	// cannot be had, they are abandoned.
	firstCtx, abandon := context.WithCancel(ctx)
	defer abandon()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(r.rootDone)
		if !r.discover(ctx) {
			abandon()
		}
	})
	for _, res := range rickmorty.Resources {
		wg.Go(func() { r.crawlResource(ctx, firstCtx, res) })
	}
	wg.Wait()
}

// discover fetches the root document and sets the resources to crawl.
func (r *run) discover(ctx context.Context) bool {
	url := r.cfg.BaseURL
	body, _, err := r.fetch(ctx, url, func(b []byte) error { _, _, err := checkRoot(b); return err })
	if err != nil {
		r.rootErr = fmt.Errorf("discovering resources at %s: %w", url, err)
		if !stopped(ctx) {
			r.fail(ctx, "", 0, url, err)
		}
		return false
	}
	listed, ignored, _ := checkRoot(body)
	sort.Strings(ignored)
	r.mu.Lock()
	r.listed = listed
	r.result.Ignored = ignored
	for _, res := range rickmorty.Resources {
		if listed[res] {
			r.res[res] = &ResourceResult{Resource: res}
		}
	}
	r.mu.Unlock()
	if len(ignored) > 0 {
		r.log.WarnContext(ctx, "root document lists unknown resources; not crawled", "ignored", ignored)
	}
	return true
}

// crawlResource fetches page 1 of res (with firstCtx) while the root
// document is still on its way, keeps it if the root lists res, then
// fetches the other pages.
func (r *run) crawlResource(ctx, firstCtx context.Context, res string) {
	if !acquire(ctx, r.pendSem) {
		<-r.rootDone
		return
	}
	url := rickmorty.PageURL(r.cfg.BaseURL, res, 1)
	var first listing
	body, fetchedAt, err := r.fetch(firstCtx, url, func(b []byte) (err error) {
		if first, err = firstPage(res, b); err == nil && first.Pages > r.cfg.MaxPages {
			err = fmt.Errorf("info.pages %d is over the limit of %d pages", first.Pages, r.cfg.MaxPages)
		}
		return err
	})
	<-r.rootDone
	if r.rootErr != nil || !r.listed[res] {
		<-r.pendSem
		return
	}
	if err != nil {
		<-r.pendSem
		r.fail(ctx, res, 1, url, err)
		return
	}
	r.mu.Lock()
	r.res[res].Count, r.res[res].Pages = first.Count, first.Pages
	r.mu.Unlock()

	// Page 1 is stored while the next pages are already asked for.
	var wg sync.WaitGroup
	wg.Go(func() {
		defer func() { <-r.pendSem }()
		r.keep(ctx, res, 1, url, body, fetchedAt)
	})
	for n := 2; n <= first.Pages; n++ {
		if !acquire(ctx, r.pendSem) {
			break
		}
		wg.Go(func() {
			defer func() { <-r.pendSem }()
			r.laterPage(ctx, res, n, first)
		})
	}
	wg.Wait()
}

func (r *run) laterPage(ctx context.Context, res string, n int, first listing) {
	url := rickmorty.PageURL(r.cfg.BaseURL, res, n)
	var drift *page
	body, fetchedAt, err := r.fetch(ctx, url, func(b []byte) (err error) {
		drift, err = laterPage(res, n, b, first)
		return err
	})
	if err != nil {
		r.fail(ctx, res, n, url, err)
		return
	}
	if drift != nil {
		ch := Change{Resource: res, Page: n, Count: drift.Count, Pages: drift.Pages, FirstCount: first.Count, FirstPages: first.Pages}
		r.mu.Lock()
		if len(r.result.Changes) < maxListed {
			r.result.Changes = append(r.result.Changes, ch)
		} else {
			r.result.ChangesOmitted++
		}
		r.mu.Unlock()
		r.log.WarnContext(ctx, "dataset changed during the crawl", "resource", res, "page", n,
			"count", ch.Count, "pages", ch.Pages, "firstCount", ch.FirstCount, "firstPages", ch.FirstPages)
	}
	r.keep(ctx, res, n, url, body, fetchedAt)
}

// keep stores a fetched, valid page and counts the outcome.
func (r *run) keep(ctx context.Context, res string, n int, url string, body []byte, fetchedAt time.Time) {
	r.count(res, func(rr *ResourceResult) { rr.Fetched++ })
	written, err := r.storePage(ctx, res, n, url, body, fetchedAt)
	switch {
	case errors.Is(err, bucket.ErrNoBucket) || errors.Is(err, bucket.ErrDenied):
		r.mu.Lock()
		first := r.storeErr == nil
		if first {
			r.storeErr = err
		}
		r.mu.Unlock()
		if first {
			r.fail(ctx, res, n, url, err)
			r.abort(err)
		}
	case err != nil:
		r.fail(ctx, res, n, url, err)
	case written:
		r.bytesStored.Add(int64(len(body)))
		r.count(res, func(rr *ResourceResult) { rr.Written++ })
	default:
		r.count(res, func(rr *ResourceResult) { rr.Unchanged++ })
	}
}

func (r *run) count(res string, f func(*ResourceResult)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rr := r.res[res]; rr != nil {
		f(rr)
	}
}

// fail records a page given up on, unless the run is stopping, in which
// case the page is merely not done (Skipped).
func (r *run) fail(ctx context.Context, res string, n int, url string, err error) {
	if stopped(ctx) {
		return
	}
	r.mu.Lock()
	if rr := r.res[res]; rr != nil {
		rr.Failed++
	}
	if len(r.result.Failures) < maxListed {
		r.result.Failures = append(r.result.Failures, Failure{Resource: res, Page: n, URL: url, Error: err.Error()})
	} else {
		r.result.FailuresOmitted++
	}
	r.mu.Unlock()
	msg := "page failed"
	if n == 0 {
		msg = "root document failed"
	}
	r.log.ErrorContext(ctx, msg, "resource", res, "page", n, "url", url, "error", err.Error())
}

func stopped(ctx context.Context) bool { return ctx.Err() != nil }

func acquire(ctx context.Context, sem chan struct{}) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// finish totals the counts.
func (r *run) finish() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.result
	res.FinishedAt = r.now().UTC()
	res.Requests = int(r.requests.Load())
	res.Retries = int(r.retries.Load())
	res.BytesFetched = r.bytesFetched.Load()
	res.BytesWritten = r.bytesStored.Load()
	res.Resources = []ResourceResult{}
	for _, name := range rickmorty.Resources {
		rr := r.res[name]
		if rr == nil {
			continue
		}
		if rr.Pages > 0 {
			rr.Skipped = max(0, rr.Pages-rr.Stored()-rr.Failed)
		} else if rr.Failed == 0 {
			rr.Skipped = 1 // page 1, not had: the rest is unknown
		}
		res.Resources = append(res.Resources, *rr)
		res.Pages += rr.Pages
		res.Fetched += rr.Fetched
		res.Written += rr.Written
		res.Unchanged += rr.Unchanged
		res.Failed += rr.Failed
		res.Skipped += rr.Skipped
	}
	sort.Slice(res.Changes, func(i, j int) bool {
		a, b := res.Changes[i], res.Changes[j]
		return a.Resource < b.Resource || a.Resource == b.Resource && a.Page < b.Page
	})
	sort.Slice(res.Failures, func(i, j int) bool {
		a, b := res.Failures[i], res.Failures[j]
		return a.Resource < b.Resource || a.Resource == b.Resource && a.Page < b.Page
	})
	return res
}

// verdict sets Complete and Stopped and returns the run's error, if any.
func (r *run) verdict(ctx, crawlCtx context.Context, res *Result) error {
	var err error
	switch {
	case r.storeErr != nil:
		err = fmt.Errorf("the data bucket cannot be written, the crawl stopped: %w; %s", r.storeErr, progress(*res))
	case ctx.Err() != nil:
		res.Stopped = "canceled"
		err = fmt.Errorf("crawl interrupted: %s: %w", progress(*res), context.Cause(ctx))
	case crawlCtx.Err() != nil:
		res.Stopped = "deadline"
		err = fmt.Errorf("%w (%s margin): %s", ErrDeadline, r.cfg.DeadlineMargin, progress(*res))
	case r.rootErr != nil:
		err = r.rootErr
	case res.Failed > 0:
		f := res.Failures[0]
		err = fmt.Errorf("%d of %d pages failed (first: %s page %d: %s); %s", res.Failed, res.Pages, f.Resource, f.Page, f.Error, progress(*res))
	}
	if err == nil && len(res.Changes) > 0 {
		r.log.WarnContext(ctx, "the dataset changed during the crawl; the next run will see it whole", "changes", len(res.Changes)+res.ChangesOmitted)
	}
	res.Complete = err == nil && res.Skipped == 0 && len(res.Resources) > 0
	return err
}

// progress says how far a run got: "20 of 52 pages stored (character
// 12/42, location 5/7, episode 3/3), 0 failed, 32 not done".
func progress(res Result) string {
	if len(res.Resources) == 0 {
		return fmt.Sprintf("nothing stored: the resources were not discovered yet (%d requests, %d retries)", res.Requests, res.Retries)
	}
	parts := make([]string, 0, len(res.Resources))
	for _, rr := range res.Resources {
		total := "?"
		if rr.Pages > 0 {
			total = fmt.Sprint(rr.Pages)
		}
		parts = append(parts, fmt.Sprintf("%s %d/%s", rr.Resource, rr.Stored(), total))
	}
	return fmt.Sprintf("%d of %d pages stored (%s), %d failed, %d not done, %d retries",
		res.Written+res.Unchanged, res.Pages, strings.Join(parts, ", "), res.Failed, res.Skipped, res.Retries)
}

func (c *Crawler) logSummary(ctx context.Context, res Result, err error) {
	attrs := []any{
		"runId", res.RunID, "force", res.Force, "complete", res.Complete,
		"pages", res.Pages, "fetched", res.Fetched, "written", res.Written, "unchanged", res.Unchanged,
		"failed", res.Failed, "skipped", res.Skipped, "requests", res.Requests, "retries", res.Retries,
		"bytesFetched", res.BytesFetched, "bytesWritten", res.BytesWritten,
		"durationMs", res.FinishedAt.Sub(res.StartedAt).Milliseconds(), "manifest", res.ManifestKey,
	}
	for _, rr := range res.Resources {
		attrs = append(attrs, slog.Group(rr.Resource, "count", rr.Count, "pages", rr.Pages,
			"written", rr.Written, "unchanged", rr.Unchanged, "failed", rr.Failed, "skipped", rr.Skipped))
	}
	if len(res.Changes) > 0 {
		attrs = append(attrs, "datasetChanges", len(res.Changes))
	}
	if err != nil {
		c.log.ErrorContext(ctx, "extract finished with an error", append(attrs, "error", err.Error())...)
		return
	}
	c.log.InfoContext(ctx, "extract finished", attrs...)
}
