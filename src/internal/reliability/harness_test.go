package reliability

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extract"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extractfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// The harness of the fault, concurrency and deadline cases: the pipeline's
// four handlers (extractfn, transformfn, loadfn, exportfn), configured from
// events/env.json and invoked with events shaped like events/*.json, over a
// bucket and a database ("a chain"). A case runs a clean chain and a faulty
// one from the same input and compares what they leave.

// crawlClock is the clock of every crawl of the suite. Extract stamps each
// page's fetched-at with it and Transform copies that into the rows'
// fetched_at: two crawls of the same data then leave the same raw objects and
// the same rows, whenever they ran.
func crawlClock() time.Time { return time.Date(2026, 11, 22, 6, 0, 3, 512_000_000, time.UTC) }

// reportClock is the time written in quarantine reports, so that two runs'
// reports compare equal.
func reportClock() time.Time { return time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC) }

// smallSizes is a generated API of 10 pages (6 of characters, 2 of
// locations, 2 of episodes): enough for every table and for stopping a
// function part way, quick to run through the whole chain.
var smallSizes = fakeapi.Sizes{Characters: 120, Locations: 40, Episodes: 30}

// generated returns the deterministic synthetic dataset of sz.
func generated(t *testing.T, sz fakeapi.Sizes) *fakeapi.Dataset {
	t.Helper()
	ds, err := fakeapi.Generate(sz, 1)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// eventFile decodes events/<name>, the file `sam local invoke -e` uses, into v.
func eventFile(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "events", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding events/%s: %v", name, err)
	}
}

// functionEnv returns the environment events/env.json gives function (what
// `sam local invoke --env-vars` passes), with set applied ("" unsets).
func functionEnv(t *testing.T, function string, set map[string]string) func(string) string {
	t.Helper()
	var all map[string]map[string]string
	eventFile(t, "env.json", &all)
	env := maps.Clone(all[function])
	if env == nil {
		t.Fatalf("events/env.json has no %s", function)
	}
	for k, v := range set {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return func(k string) string { return env[k] }
}

// logTail keeps the last lines a chain's handlers logged, printed when the
// test fails: the handlers log every object, too much for a passing run.
type logTail struct {
	mu    sync.Mutex
	lines []string
}

const logTailLines = 30

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	if len(l.lines) > 2*logTailLines {
		l.lines = slices.Clone(l.lines[len(l.lines)-logTailLines:])
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[max(0, len(l.lines)-logTailLines):], "\n")
}

func testLogger(t *testing.T, label string) *slog.Logger {
	lt := &logTail{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last log lines of the %s chain:\n%s", label, lt)
		}
	})
	return logging.New(lt, "info")
}

// chain is one run of the pipeline: a bucket and a database, and the
// handlers working on them.
type chain struct {
	t      *testing.T
	name   string
	s3     *s3.Client
	bucket string
	db     *sql.DB // the test's own pool, for checks
	dsn    string
	log    *slog.Logger
}

// newChain is a chain on a fresh bucket of the shared MinIO and a fresh
// database of the shared MariaDB.
func newChain(t *testing.T, name string) *chain {
	t.Helper()
	c := newBucketChain(t, name)
	c.db, c.dsn = testenv.MySQL(t)
	return c
}

// newBucketChain is a chain on a fresh bucket of the shared MinIO, without a
// database yet.
func newBucketChain(t *testing.T, name string) *chain {
	t.Helper()
	client, bucket := testenv.S3(t)
	return &chain{t: t, name: name, s3: client, bucket: bucket, log: testLogger(t, name)}
}

// objectAPI is what Transform and Load use of S3: an *s3.Client, or a
// hookedS3 around one.
type objectAPI = bucket.API

// --- Extract

// extractor is the Extract handler of the chain, crawling apiBase.
func (c *chain) extractor(apiBase string) *extractfn.Handler {
	c.t.Helper()
	cfg, err := extractfn.ConfigFromEnv(functionEnv(c.t, "ExtractFunction", map[string]string{"BUCKET": c.bucket, "API_BASE_URL": apiBase}))
	if err != nil {
		c.t.Fatal(err)
	}
	return extractfn.New(cfg, c.s3, nil, crawlClock, c.log)
}

// extractEvent is events/extract-schedule.json.
func extractEvent(t *testing.T) extractfn.Event {
	t.Helper()
	var ev extractfn.Event
	eventFile(t, "extract-schedule.json", &ev)
	return ev
}

// crawl runs one scheduled crawl of apiBase, which must complete.
func (c *chain) crawl(apiBase string) extract.Result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := c.extractor(apiBase).Handle(ctx, extractEvent(c.t))
	if err != nil || !res.Complete {
		c.t.Fatalf("%s crawl: complete %v, %v", c.name, res.Complete, err)
	}
	return res
}

// extractMargin is how long before its deadline a crawl stops: extract's
// default, which the function's environment does not change.
func extractMargin() time.Duration {
	return extract.New(extract.Config{}, nil, nil, nil, nil).Config().DeadlineMargin
}

// --- Transform

// transformer is the Transform handler of the chain, reading and writing
// through s3c (nil: the chain's client).
func (c *chain) transformer(s3c objectAPI) *transformfn.Handler {
	c.t.Helper()
	cfg, err := transformfn.ConfigFromEnv(functionEnv(c.t, "TransformFunction", map[string]string{"BUCKET": c.bucket}))
	if err != nil {
		c.t.Fatal(err)
	}
	if s3c == nil {
		s3c = c.s3
	}
	h := transformfn.New(cfg, s3c, c.log)
	h.Now = reportClock
	return h
}

// putEvent is S3's notification of the creation of o, shaped as
// events/transform-s3-put.json and decoded as Lambda decodes it (so the key
// is URL-decoded by aws-lambda-go).
func (c *chain) putEvent(o types.Object) events.S3Event {
	c.t.Helper()
	var ev events.S3Event
	eventFile(c.t, "transform-s3-put.json", &ev)
	r := ev.Records[0]
	r.EventTime = crawlClock()
	r.S3.Bucket.Name, r.S3.Bucket.Arn = c.bucket, "arn:aws:s3:::"+c.bucket
	r.S3.Object.Key = bucket.EncodeKey(aws.ToString(o.Key))
	r.S3.Object.Size = aws.ToInt64(o.Size)
	r.S3.Object.ETag = strings.Trim(aws.ToString(o.ETag), `"`)
	r.S3.Object.VersionID = ""
	ev.Records = []events.S3EventRecord{r}
	b, err := json.Marshal(ev)
	if err != nil {
		c.t.Fatal(err)
	}
	var back events.S3Event
	if err := json.Unmarshal(b, &back); err != nil {
		c.t.Fatal(err)
	}
	return back
}

// transformTimeout is TransformFunction's Timeout (template.yaml).
const transformTimeout = 120 * time.Second

// transformAll invokes h for every object under raw/, one event each, as S3
// does; every invocation must succeed. It returns the objects transformed.
func (c *chain) transformAll(h *transformfn.Handler) int {
	c.t.Helper()
	raw := c.list("raw/")
	for _, o := range raw {
		ctx, cancel := context.WithTimeout(context.Background(), transformTimeout)
		err := h.Handle(ctx, c.putEvent(o))
		cancel()
		if err != nil {
			c.t.Fatalf("%s: transforming %s: %v", c.name, aws.ToString(o.Key), err)
		}
	}
	return len(raw)
}

// invokeAsync invokes h with ev as Lambda's asynchronous invocation does: on
// an error it retries, twice at most (TransformFunction's
// MaximumRetryAttempts), each time after beforeRetry (Lambda waits a minute
// or two between attempts; a test waits until its fault is over). It
// returns the attempts made and the last error.
func invokeAsync(h *transformfn.Handler, ev events.S3Event, timeout time.Duration, beforeRetry func()) (int, error) {
	var err error
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err = h.Handle(ctx, ev)
		cancel()
		if err == nil || attempt == 3 {
			return attempt, err
		}
		if beforeRetry != nil {
			beforeRetry()
		}
	}
}

// --- Load

// loader is a Load handler of the chain (one Lambda instance: its own pool),
// reading through s3c (nil: the chain's client), with set applied to its
// environment.
func (c *chain) loader(s3c objectAPI, set map[string]string) *loadfn.Handler {
	c.t.Helper()
	env := map[string]string{"BUCKET": c.bucket, "MYSQL_DSN": c.dsn}
	maps.Copy(env, set)
	cfg, err := loadfn.ConfigFromEnv(functionEnv(c.t, "LoadFunction", env))
	if err != nil {
		c.t.Fatal(err)
	}
	conn := mysqldb.NewConnector(cfg.DB, nil)
	c.t.Cleanup(func() { conn.Close() })
	if s3c == nil {
		s3c = c.s3
	}
	h := loadfn.New(cfg, s3c, conn, c.log)
	h.Now = reportClock
	return h
}

// processed returns the objects under processed/ in key order: all of them,
// or those of files.
func (c *chain) processed(files []loadtest.File) []types.Object {
	c.t.Helper()
	keep := map[string]bool{}
	for _, f := range files {
		keep[f.Key] = true
	}
	var out []types.Object
	for _, o := range c.list(bucket.ProcessedPrefix) {
		if len(files) == 0 || keep[aws.ToString(o.Key)] {
			out = append(out, o)
		}
	}
	if len(files) > 0 && len(out) != len(keep) {
		c.t.Fatalf("%s: %d of %d files under processed/", c.name, len(out), len(keep))
	}
	return out
}

// messages returns, for each of objs, the body of the SQS message S3 sends
// about its creation.
func (c *chain) messages(objs []types.Object) []string {
	var bodies []string
	for _, o := range objs {
		ref := load.ObjectRef{Bucket: c.bucket, Key: aws.ToString(o.Key), ETag: aws.ToString(o.ETag)}
		bodies = append(bodies, loadfn.Message("", ref, aws.ToInt64(o.Size), crawlClock()).Body)
	}
	return bodies
}

// loadAll sends bodies through a fresh queue to one Load worker on h; every
// message must be done at its first delivery.
func (c *chain) loadAll(h *loadfn.Handler, bodies []string) {
	c.t.Helper()
	var ta tally
	h.Observe = ta.observe
	q := newLoadQueue(c.name, 30*time.Second)
	for _, b := range bodies {
		q.Send(b)
	}
	st := drain(c.t, q, []*loadfn.Handler{h}, loadTimeout)
	if st.Redelivered > 0 || len(q.DeadLetters()) > 0 || ta.count(loadfn.Failed)+ta.count(loadfn.Rejected) > 0 {
		c.t.Fatalf("%s: loading %d messages: %d redelivered, %d dead letters: %s", c.name, len(bodies), st.Redelivered, len(q.DeadLetters()), ta.reasons())
	}
}

// upload puts the processed files into the bucket.
func (c *chain) upload(files []loadtest.File) {
	c.t.Helper()
	ctx := context.Background()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, f := range files {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := c.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(f.Key), Body: bytes.NewReader(f.Body)}); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("putting %s: %w", f.Key, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
}

// putRaw stores body under key as Extract would have (fetched-at metadata
// from crawlClock).
func (c *chain) putRaw(key string, body []byte) {
	c.t.Helper()
	_, err := c.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		Metadata: map[string]string{bucket.MetaFetchedAt: crawlClock().Format(bucket.FetchedAtLayout)}})
	if err != nil {
		c.t.Fatalf("%s: putting %s: %v", c.name, key, err)
	}
}

// loadTimeout is LoadFunction's Timeout (template.yaml).
const loadTimeout = 120 * time.Second

// newLoadQueue returns a queue with the LoadQueue's redrive policy
// (maxReceiveCount 5) and visibility timeout vt (750 s in template.yaml,
// scaled down so that redeliveries happen within a test).
func newLoadQueue(name string, vt time.Duration) *localrun.Queue {
	return localrun.NewQueue(localrun.QueueConfig{Name: name, VisibilityTimeout: vt, MaxReceiveCount: 5})
}

// tally counts Load outcomes (Observe runs on the handlers' goroutines).
type tally struct {
	mu       sync.Mutex
	status   map[loadfn.Status]int
	reruns   int      // transactions rerun after a deadlock or lock wait timeout
	failures []string // reasons of failed and rejected outcomes
}

func (ta *tally) observe(o loadfn.Outcome) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if ta.status == nil {
		ta.status = map[loadfn.Status]int{}
	}
	ta.status[o.Status]++
	ta.reruns += max(o.Attempts-1, 0)
	if o.Status == loadfn.Failed || o.Status == loadfn.Rejected {
		ta.failures = append(ta.failures, fmt.Sprintf("%s %s: %s", o.Status, o.Key, o.Reason))
	}
}

func (ta *tally) count(s loadfn.Status) int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return ta.status[s]
}

func (ta *tally) reasons() string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	r := ta.failures
	if len(r) > 10 {
		r = append(slices.Clone(r[:10]), fmt.Sprintf("... %d more", len(r)-10))
	}
	return strings.Join(r, "\n")
}

// queueStats is what draining a queue took.
type queueStats struct {
	Invocations int
	Deliveries  int // messages handed to Load
	Redelivered int // deliveries of messages delivered before
	TimedOut    int // invocations that returned after their deadline
}

// errTimedOut is how Lambda fails an invocation that outlives its timeout:
// the whole batch is delivered again.
var errTimedOut = errors.New("task timed out")

// drain runs one Load worker per handler (Lambda instances polling the
// queue, 10 messages a batch, BatchSize in template.yaml) until the queue is
// empty: every message acknowledged or moved to the dead-letter queue. Each
// invocation's context has timeout as its deadline; an invocation that
// returns after it counts as timed out, as in Lambda, so its whole batch is
// delivered again.
func drain(t *testing.T, q *localrun.Queue, handlers []*loadfn.Handler, timeout time.Duration) queueStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var st queueStats
	var wg sync.WaitGroup
	for _, h := range handlers {
		wg.Go(func() {
			for ctx.Err() == nil {
				ev := q.Receive(ctx, 10, 100*time.Millisecond)
				if len(ev.Records) == 0 {
					if q.Depth() == 0 {
						return
					}
					continue
				}
				ictx, icancel := context.WithTimeout(ctx, timeout)
				resp, err := h.Handle(ictx, ev)
				if err == nil && errors.Is(ictx.Err(), context.DeadlineExceeded) {
					err = errTimedOut
				}
				icancel()
				q.Settle(ev, resp, err)
				mu.Lock()
				st.Invocations++
				st.Deliveries += len(ev.Records)
				for _, r := range ev.Records {
					if n, _ := strconv.Atoi(r.Attributes["ApproximateReceiveCount"]); n > 1 {
						st.Redelivered++
					}
				}
				if errors.Is(err, errTimedOut) {
					st.TimedOut++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the load queue was not drained in 5 minutes: %d messages left", q.Depth())
	}
	return st
}

// --- Export

// exporter is the Export handler of the chain, writing through s3c (nil: the
// chain's client), with EXPORT_LAG 0 (every row loaded is due) and set
// applied to its environment.
func (c *chain) exporter(s3c *s3.Client, set map[string]string) *exportfn.Handler {
	c.t.Helper()
	env := map[string]string{"BUCKET": c.bucket, "MYSQL_DSN": c.dsn, "EXPORT_LAG": "0s"}
	maps.Copy(env, set)
	cfg, err := exportfn.ConfigFromEnv(functionEnv(c.t, "ExportFunction", env))
	if err != nil {
		c.t.Fatal(err)
	}
	conn := mysqldb.NewConnector(cfg.DB, nil)
	c.t.Cleanup(func() { conn.Close() })
	if s3c == nil {
		s3c = c.s3
	}
	return exportfn.New(cfg, s3c, conn, c.log)
}

// exportEvent is events/export-schedule.json.
func exportEvent(t *testing.T) exportfn.Event {
	t.Helper()
	var ev exportfn.Event
	eventFile(t, "export-schedule.json", &ev)
	return ev
}

// exportTimeout is ExportFunction's Timeout (template.yaml).
const exportTimeout = 900 * time.Second

// s3Via returns a client of the chain's S3 server whose requests go through hc.
func (c *chain) s3Via(hc s3.HTTPClient) *s3.Client {
	return s3.New(c.s3.Options(), func(o *s3.Options) { o.HTTPClient = hc })
}

// hookedHTTP calls before with every S3 request, then sends it.
type hookedHTTP struct {
	next   s3.HTTPClient
	before func(*http.Request)
}

func newHookedHTTP(before func(*http.Request)) hookedHTTP {
	return hookedHTTP{next: awshttp.NewBuildableClient(), before: before}
}

func (h hookedHTTP) Do(r *http.Request) (*http.Response, error) {
	h.before(r)
	return h.next.Do(r)
}

var exportFile = regexp.MustCompile(`_data_(\d{8}_\d{6})(?:_(\d+))?\.csv$`)

// replayStats is what checkReplay compared.
type replayStats struct {
	Files int   // exported CSV files replayed
	Rows  int64 // table rows compared
	// StaleFetchedAt counts rows whose exported fetched_at is older than
	// the table's, every other column equal: a later crawl that changed
	// nothing but fetched_at does not set modifiedDate (warehousedb.UpsertSQL),
	// so the row's export position does not move and the refresh is never
	// exported. The suite reports these rather than failing on them.
	StaleFetchedAt int
}

// checkReplay replays every table's exported CSV files in file order,
// upserting rows by primary key as the README tells consumers to, and checks
// that the result equals the table: its checksum with the data and the
// bookkeeping columns (warehousedb.DumpAll, whose encoding is the exporter's),
// allowing only StaleFetchedAt. Every CSV file must have its Parquet twin.
func (c *chain) checkReplay(prefix string) replayStats {
	c.t.Helper()
	ctx := context.Background()
	var st replayStats
	for _, tb := range warehouse.Tables() {
		header := warehousedb.DumpHeader(tb, warehousedb.DumpAll)
		var keyCols []int
		for _, k := range tb.Key {
			keyCols = append(keyCols, slices.Index(header, k))
		}
		keyOf := func(file string, rec []tablecsv.Field) [2]int64 {
			var key [2]int64
			for i, col := range keyCols {
				n, err := strconv.ParseInt(rec[col].Value, 10, 64)
				if err != nil {
					c.t.Fatalf("%s: %s: key %q: %v", c.name, file, rec[col].Value, err)
				}
				key[i] = n
			}
			return key
		}
		parquet := map[string]bool{}
		for _, o := range c.list(prefix + tb.Name + "/parquet/") {
			parquet[strings.TrimSuffix(filepath.Base(aws.ToString(o.Key)), ".parquet")] = true
		}
		var keys []string
		for _, o := range c.list(prefix + tb.Name + "/csv/") {
			if k := aws.ToString(o.Key); exportFile.MatchString(k) {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b string) int {
			ma, mb := exportFile.FindStringSubmatch(a), exportFile.FindStringSubmatch(b)
			na, _ := strconv.Atoi(ma[2])
			nb, _ := strconv.Atoi(mb[2])
			return cmp.Or(strings.Compare(ma[1], mb[1]), cmp.Compare(na, nb))
		})
		replayed := map[[2]int64][]tablecsv.Field{}
		for _, k := range keys {
			st.Files++
			if !parquet[strings.TrimSuffix(filepath.Base(k), ".csv")] {
				c.t.Errorf("%s: %s has no Parquet twin", c.name, k)
			}
			for _, rec := range c.readCSV(k, c.get(k), header) {
				replayed[keyOf(k, rec)] = rec
			}
		}

		var dump bytes.Buffer
		if _, err := warehousedb.Dump(ctx, c.db, tb, warehousedb.DumpAll, &dump); err != nil {
			c.t.Fatal(err)
		}
		if fi := slices.Index(header, warehouse.FetchedAt); fi >= 0 {
			for _, rec := range c.readCSV(tb.Name, dump.Bytes(), header) {
				k := keyOf(tb.Name, rec)
				got, ok := replayed[k]
				if !ok || got[fi].Value >= rec[fi].Value {
					continue
				}
				older := slices.Clone(got)
				older[fi] = rec[fi]
				if slices.Equal(older, rec) {
					replayed[k] = older
					st.StaleFetchedAt++
				}
			}
		}

		order := slices.SortedFunc(maps.Keys(replayed), func(a, b [2]int64) int {
			return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
		})
		var got bytes.Buffer
		w := tablecsv.NewWriter(&got)
		_ = w.WriteHeader(header)
		for _, k := range order {
			_ = w.Write(replayed[k])
		}
		_ = w.Flush()
		sum, n, err := warehousedb.Checksum(ctx, c.db, tb, warehousedb.DumpAll)
		if err != nil {
			c.t.Fatal(err)
		}
		if h := sha256.Sum256(got.Bytes()); hex.EncodeToString(h[:]) != sum {
			c.t.Errorf("%s: replaying %d exported files of %s does not give the table back: %s", c.name, len(keys), tb.Name, firstDiff(got.String(), dump.String()))
		}
		st.Rows += n
	}
	return st
}

// readCSV returns the records of a CSV whose header must be header.
func (c *chain) readCSV(name string, b []byte, header []string) [][]tablecsv.Field {
	c.t.Helper()
	r := tablecsv.NewReader(bytes.NewReader(b))
	got, err := r.Read()
	if err != nil || !slices.Equal(fieldValues(got), header) {
		c.t.Fatalf("%s: %s: header %v (%v), want %v", c.name, name, fieldValues(got), err, header)
	}
	r.FieldCount = len(header)
	var out [][]tablecsv.Field
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			c.t.Fatalf("%s: reading %s: %v", c.name, name, err)
		}
		out = append(out, slices.Clone(rec))
	}
}

func fieldValues(fs []tablecsv.Field) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Value)
	}
	return out
}

// --- Comparisons

// list returns the objects under prefix, in key order.
func (c *chain) list(prefix string) []types.Object {
	c.t.Helper()
	var out []types.Object
	p := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: aws.String(c.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			c.t.Fatalf("%s: listing %s: %v", c.name, prefix, err)
		}
		out = append(out, page.Contents...)
	}
	return out
}

func (c *chain) get(key string) []byte {
	c.t.Helper()
	out, err := c.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err != nil {
		c.t.Fatalf("%s: getting %s: %v", c.name, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		c.t.Fatalf("%s: reading %s: %v", c.name, key, err)
	}
	return b
}

// objects returns every object under prefix: key → bytes.
func (c *chain) objects(prefix string) map[string][]byte {
	c.t.Helper()
	out := map[string][]byte{}
	for _, o := range c.list(prefix) {
		out[aws.ToString(o.Key)] = c.get(aws.ToString(o.Key))
	}
	return out
}

// sameObjects reports every key missing from got, extra in got, or holding
// other bytes than in want, and returns the objects compared.
func sameObjects(t *testing.T, what string, got, want map[string][]byte) int {
	t.Helper()
	bad := 0
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: %s missing", what, k)
			bad++
		case !bytes.Equal(g, want[k]):
			t.Errorf("%s: %s differs (%d bytes, want %d): %s", what, k, len(g), len(want[k]), firstDiff(string(g), string(want[k])))
			bad++
		}
		if bad > 10 {
			t.Fatalf("%s: too many differences", what)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s is extra", what, k)
		}
	}
	return len(want)
}

// sums returns the checksum of every warehouse table and the rows they hold.
func (c *chain) sums(mode warehousedb.DumpMode) (map[string]string, int64) {
	c.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	var rows int64
	for _, tb := range warehouse.Tables() {
		sum, n, err := warehousedb.Checksum(ctx, c.db, tb, mode)
		if err != nil {
			c.t.Fatalf("%s: %v", c.name, err)
		}
		out[tb.Name] = sum
		rows += n
	}
	return out, rows
}

// sameTables compares the checksum of every warehouse table of got and want
// (warehousedb.Checksums in mode), showing where the dumps part when one
// differs, and returns the rows compared.
func sameTables(t *testing.T, got, want *chain, mode warehousedb.DumpMode) int64 {
	t.Helper()
	gs, rows := got.sums(mode)
	ws, wantRows := want.sums(mode)
	if wantRows == 0 {
		t.Errorf("the %s chain's tables are empty: nothing to compare", want.name)
	}
	for _, tb := range warehouse.Tables() {
		if gs[tb.Name] == ws[tb.Name] {
			continue
		}
		var g, w bytes.Buffer
		if _, err := warehousedb.Dump(context.Background(), got.db, tb, mode, &g); err != nil {
			t.Fatal(err)
		}
		if _, err := warehousedb.Dump(context.Background(), want.db, tb, mode, &w); err != nil {
			t.Fatal(err)
		}
		t.Errorf("table %s of the %s chain differs from the %s chain's: %s", tb.Name, got.name, want.name, firstDiff(g.String(), w.String()))
	}
	return rows
}

// firstDiff describes where two texts part: line counts and the first
// differing line of each.
func firstDiff(got, want string) string {
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			return fmt.Sprintf("%d lines, want %d; line %d is\n  %.300q\nwant\n  %.300q", len(gl), len(wl), i+1, g, w)
		}
	}
	return "equal"
}

// --- Faults

// hookedS3 is an S3 client whose GetObject bodies a test may wrap, to fault
// or stall a function in the middle of reading an object.
type hookedS3 struct {
	*s3.Client
	body func(ctx context.Context, key string, body io.ReadCloser) io.ReadCloser
}

func (h *hookedS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := h.Client.GetObject(ctx, in, opts...)
	if err == nil && h.body != nil {
		out.Body = h.body(ctx, aws.ToString(in.Key), out.Body)
	}
	return out, err
}

// tripReader passes r through and calls trip once, when after bytes have
// been read: the reader of the object is then part way through it. An error
// from trip is returned by that Read and every later one.
type tripReader struct {
	r       io.ReadCloser
	after   int64
	read    int64
	trip    func() error
	tripped bool
	err     error
}

func (tr *tripReader) Read(p []byte) (int, error) {
	if tr.err != nil {
		return 0, tr.err
	}
	if !tr.tripped {
		if left := tr.after - tr.read; left > 0 {
			n, err := tr.r.Read(p[:min(int64(len(p)), left)])
			tr.read += int64(n)
			return n, err
		}
		tr.tripped = true
		if tr.err = tr.trip(); tr.err != nil {
			return 0, tr.err
		}
	}
	n, err := tr.r.Read(p)
	tr.read += int64(n)
	return n, err
}

func (tr *tripReader) Close() error { return tr.r.Close() }

// fakeAPIServer is the offline API on one address whose behaviour a test swaps
// (clean, faulty, stalled): pages fetched from it hold the same links
// whichever behaviour served them.
type fakeAPIServer struct {
	base    string
	handler atomic.Pointer[http.Handler]
}

func startFakeAPI(t *testing.T) *fakeAPIServer {
	t.Helper()
	a := &fakeAPIServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*a.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.base = srv.URL + "/api"
	return a
}

func (a *fakeAPIServer) serve(h http.Handler) { a.handler.Store(&h) }

// stallAfter serves the first n requests with next and holds every later
// one until its client gives up: an API that stops answering.
func stallAfter(n int64, next http.Handler) http.Handler {
	var served atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) > n {
			<-r.Context().Done()
			return
		}
		next.ServeHTTP(w, r)
	})
}
