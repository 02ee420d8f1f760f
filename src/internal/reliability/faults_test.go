package reliability

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transform/transformtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// twoCrawls are two crawls of a changing API as processed files (26 each):
// the second changes every fifth entity a day later, so it must win over
// the first whatever the order of delivery. The second crawl's keys differ
// (rev1-page-NNNN) so both crawls' objects coexist, as two transforms of
// different raw pages would.
func twoCrawls() (first, second []loadtest.File) {
	c := loadtest.Crawl{Characters: 200, Locations: 40, Episodes: 30, PageSize: 20, FetchedAt: time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC)}
	first = c.Files()
	c.FetchedAt, c.Revision = c.FetchedAt.Add(24*time.Hour), 1
	second = c.Files()
	for i := range second {
		second[i].Key = strings.Replace(second[i].Key, "/page-", "/rev1-page-", 1)
	}
	return first, second
}

// cleanLoad is the reference of the database cases: both crawls loaded,
// one after the other, on the shared MariaDB, without faults.
func cleanLoad(t *testing.T, first, second []loadtest.File) *chain {
	t.Helper()
	clean := newChain(t, "clean")
	clean.upload(append(append([]loadtest.File(nil), first...), second...))
	h := clean.loader(nil, nil)
	clean.loadAll(h, clean.messages(clean.processed(first)))
	clean.loadAll(h, clean.messages(clean.processed(second)))
	return clean
}

// poisonBody is a message no Load can ever handle: it is not an S3
// notification.
const poisonBody = "this is not an S3 notification"

func TestReliabilityMariaDBRestartMidLoad(t *testing.T) {
	row := Case(t,
		"own mariadbd SIGKILLed in a Load batch while a file's transaction is open, and restarted on its datadir at once; 2 crawls (52 files), 1 poison message and 1 bad CSV fed through an SQS-like queue (visibility 2 s, DLQ after 5 receives)",
		"checksums of every table (data, and which rows were modified) equal a clean load's; the DLQ holds only the poison message; the bad CSV is quarantined")
	requireFull(t)
	first, second := twoCrawls()
	clean := cleanLoad(t, first, second)

	srv := startOwnMariaDB(t)
	own := newBucketChain(t, "faulty")
	own.db, own.dsn = srv.database("rm")
	own.upload(append(append([]loadtest.File(nil), first...), second...))
	own.upload([]loadtest.File{{Key: "processed/locations/bad-header.csv", Body: []byte("id,name\n1,Earth\n")}})
	objs := own.processed(first)
	target := objs[4] // in the first batch of 10

	var tripped atomic.Bool
	var stopErr error
	hs := &hookedS3{Client: own.s3, body: func(_ context.Context, key string, body io.ReadCloser) io.ReadCloser {
		if key != aws.ToString(target.Key) || !tripped.CompareAndSwap(false, true) {
			return body
		}
		// Half the file read: its transaction is open and has claimed the
		// file in the load log. The server dies and comes back at once, on
		// the same datadir (InnoDB crash recovery); the worker goes on.
		return &tripReader{r: body, after: aws.ToInt64(target.Size) / 2, trip: func() error {
			stopErr = errors.Join(srv.stop(syscall.SIGKILL), srv.start())
			return nil
		}}
	}}
	var ta tally
	h := own.loader(hs, nil)
	h.Observe = ta.observe
	q := newLoadQueue("load", 2*time.Second)
	for _, b := range own.messages(objs) {
		q.Send(b)
	}
	q.Send(poisonBody)
	q.Send(own.messages(own.processed([]loadtest.File{{Key: "processed/locations/bad-header.csv"}}))[0])
	st := drain(t, q, []*loadfn.Handler{h}, loadTimeout)
	// The second crawl comes once the first is settled, as it does a day later.
	for _, b := range own.messages(own.processed(second)) {
		q.Send(b)
	}
	st2 := drain(t, q, []*loadfn.Handler{h}, loadTimeout)

	if !tripped.Load() || stopErr != nil || srv.Starts() != 2 {
		t.Fatalf("the fault did not happen as planned: tripped %v, starts %d, %v", tripped.Load(), srv.Starts(), stopErr)
	}
	failed := ta.count(loadfn.Failed)
	if failed == 0 || st.Redelivered == 0 {
		t.Errorf("no message failed (%d) or was redelivered (%d): the stop was not felt", failed, st.Redelivered)
	}
	dead := q.DeadLetters()
	if len(dead) != 1 || dead[0].Body != poisonBody {
		var bodies []string
		for _, d := range dead {
			bodies = append(bodies, d.Body)
		}
		t.Errorf("dead-letter queue holds %d messages %q, want only the poison message", len(dead), bodies)
	}
	if n := ta.count(loadfn.Quarantined); n != 1 || len(own.list(bucket.QuarantinePrefix)) != 2 {
		t.Errorf("%d quarantined outcomes, %d objects under quarantine/: want the bad CSV and its report", n, len(own.list(bucket.QuarantinePrefix)))
	}
	rows := sameTables(t, own, clean, warehousedb.DumpModified)
	row.Notef("%d deliveries of %d messages, %d failed while the server was down, %d redelivered", st.Deliveries+st2.Deliveries, len(first)+len(second)+2, failed, st.Redelivered+st2.Redelivered)
	row.Notef("%d dead letter (the poison)", len(dead))
	row.Notef("%d rows in 4 tables compared", rows)
}

func TestReliabilityMariaDBRestartMidExport(t *testing.T) {
	row := Case(t,
		"own mariadbd stopped (SIGTERM) while an export run streams its second table (chunks of 2 rows) to S3; restarted on its datadir; a second crawl loaded; the schedule fires again",
		"the next run completes; every table's exported CSVs replayed in file order equal the table (checksums with createdDate and modifiedDate); the tables equal a clean load's")
	first, second := twoCrawls()
	clean := cleanLoad(t, first, second)

	srv := startOwnMariaDB(t)
	own := newBucketChain(t, "faulty")
	own.db, own.dsn = srv.database("rm")
	own.upload(append(append([]loadtest.File(nil), first...), second...))
	load := own.loader(nil, nil)
	own.loadAll(load, own.messages(own.processed(first)))

	var hit atomic.Bool
	var stopErr error
	s3c := own.s3Via(newHookedHTTP(func(r *http.Request) {
		// The exporter checks its file name is free when the first batch of
		// rows reaches the writer: the table's read transaction is open,
		// more chunks to come.
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/exports/locations/csv/") && hit.CompareAndSwap(false, true) {
			stopErr = srv.stop(syscall.SIGTERM)
		}
	}))
	// Chunks of 2 rows: while the writer waits in the hook, the reader can
	// run ahead by its few batches only (8 of the 40 locations), so the
	// table's read needs the server after the stop. (With chunks of 10 it
	// could read and count all 40 rows before the stop took effect.)
	x := own.exporter(s3c, map[string]string{"EXPORT_CHUNK_ROWS": "2"})
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	res, err := x.Handle(ctx, exportEvent(t))
	if !hit.Load() || stopErr != nil {
		t.Fatalf("the stop did not happen as planned: hit %v, %v", hit.Load(), stopErr)
	}
	if err == nil {
		t.Fatalf("the interrupted run reported no failure: %+v", res)
	}
	interrupted := res
	if s := statuses(res); s["characters"] != export.StatusExported || s["locations"] != export.StatusFailed {
		t.Errorf("interrupted run: %s, want characters exported and locations failed", statusText(res))
	}

	srv.restart()
	own.loadAll(load, own.messages(own.processed(second)))
	res, err = x.Handle(ctx, exportEvent(t))
	if err != nil {
		t.Fatalf("the next run after the restart: %v", err)
	}
	checkAllExported(t, "next run", res)
	rs := own.checkReplay("exports/")
	sameTables(t, own, clean, warehousedb.DumpModified)
	row.Notef("interrupted run: %s", statusText(interrupted))
	row.Notef("%d exported CSV files replayed, %d rows compared", rs.Files, rs.Rows)
	if rs.StaleFetchedAt > 0 {
		row.Notef("%d rows refreshed by the second crawl with no change but fetched_at keep the first crawl's fetched_at in the exports (no modifiedDate, so not exported again)", rs.StaleFetchedAt)
	}
}

// statuses maps each table of an export result to its status.
// checkAllExported fails t unless every table of res was exported.
func checkAllExported(t *testing.T, run string, res export.Result) {
	t.Helper()
	for table, s := range statuses(res) {
		if s != export.StatusExported {
			t.Errorf("%s: %s %s, want exported", run, table, s)
		}
	}
}

func statuses(res export.Result) map[string]export.Status {
	out := map[string]export.Status{}
	for _, tr := range res.Tables {
		out[tr.Table] = tr.Status
	}
	return out
}

// statusText lists the tables of an export result with their statuses, in
// the run's order.
func statusText(res export.Result) string {
	var parts []string
	for _, tr := range res.Tables {
		parts = append(parts, tr.Table+" "+string(tr.Status))
	}
	return strings.Join(parts, ", ")
}

func TestReliabilityMinIORestartMidTransform(t *testing.T) {
	row := Case(t,
		"own MinIO SIGKILLed while Transform reads a 2 MB raw page half way, restarted on its data dir; the event retried as Lambda's async invocation does (2 retries)",
		"the retry completes; processed/, rejected/ and quarantine/ equal a clean run's byte for byte")
	requireFull(t) // the failed attempt alone takes seconds: the S3 client retries with backoff
	ds := generated(t, smallSizes)
	api := startFakeAPI(t)
	api.serve(fakeapi.New(ds, fakeapi.Options{}))
	big, err := io.ReadAll(transformtest.CharacterPage(2 << 20))
	if err != nil {
		t.Fatal(err)
	}
	const bigKey = "raw/manual/big-character-page.json"

	clean := newBucketChain(t, "clean")
	clean.crawl(api.base)
	clean.putRaw(bigKey, big)
	clean.transformAll(clean.transformer(nil))

	m := startOwnMinIO(t)
	m.bucket("faulty")
	own := &chain{t: t, name: "faulty", s3: m.client(), bucket: "faulty", log: testLogger(t, "faulty")}
	own.crawl(api.base)
	own.putRaw(bigKey, big)

	var tripped atomic.Bool
	var stopErr error
	hs := &hookedS3{Client: own.s3, body: func(_ context.Context, key string, body io.ReadCloser) io.ReadCloser {
		if key != bigKey || !tripped.CompareAndSwap(false, true) {
			return body
		}
		return &tripReader{r: body, after: int64(len(big) / 2), trip: func() error {
			stopErr = m.stop(syscall.SIGKILL)
			return nil
		}}
	}}
	h := own.transformer(hs)
	// Lambda retries a failed asynchronous invocation a minute or two later:
	// by then the server is back.
	restart := func() {
		if !m.running() {
			m.restart()
		}
	}
	bigAttempts, events := 0, 0
	for _, o := range own.list("raw/") {
		attempts, err := invokeAsync(h, own.putEvent(o), transformTimeout, restart)
		if err != nil {
			t.Fatalf("transforming %s: %d attempts, the last: %v", aws.ToString(o.Key), attempts, err)
		}
		if aws.ToString(o.Key) == bigKey {
			bigAttempts = attempts
		}
		events++
	}
	if !tripped.Load() || stopErr != nil || m.Starts() != 2 {
		t.Fatalf("the fault did not happen as planned: tripped %v, starts %d, %v", tripped.Load(), m.Starts(), stopErr)
	}
	if bigAttempts < 2 {
		t.Errorf("the interrupted event succeeded at its first attempt: the stop was not felt")
	}
	compared := 0
	for _, p := range []string{"processed/", "rejected/", "quarantine/"} {
		compared += sameObjects(t, "own MinIO "+p, own.objects(p), clean.objects(p))
	}
	uploads, err := own.s3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(own.bucket)})
	if err != nil {
		t.Fatal(err)
	}
	row.Notef("%d events; the interrupted one succeeded at attempt %d", events, bigAttempts)
	row.Notef("%d objects compared; %d multipart uploads left open", compared, len(uploads.Uploads))
}

// flakySizes is an API of 26 pages (20 of characters, 4 of locations, 2 of
// episodes): with the fault seed below, every kind of fault strikes.
var flakySizes = fakeapi.Sizes{Characters: 400, Locations: 70, Episodes: 40}

func TestReliabilityFlakyAPI(t *testing.T) {
	row := Case(t,
		"the API fails 20% of requests (fake API fault injection): 10% answered 500, 5% 429 with Retry-After: 1, 5% cut short mid-body",
		"the crawl completes; raw/ equals a clean crawl's byte for byte; the chain from it (Transform, Load) gives a clean chain's checksums of every table")
	ds := generated(t, flakySizes)
	api := startFakeAPI(t)
	api.serve(fakeapi.New(ds, fakeapi.Options{}))
	clean := newChain(t, "clean")
	clean.crawl(api.base)
	clean.transformAll(clean.transformer(nil))
	clean.loadAll(clean.loader(nil, nil), clean.messages(clean.processed(nil)))

	flaky := fakeapi.New(ds, fakeapi.Options{Faults: fakeapi.Faults{Fail: 0.10, Throttle: 0.05, RetryAfter: "1", Cut: 0.05, Seed: 3}})
	api.serve(flaky)
	own := newChain(t, "faulty")
	res := own.crawl(api.base)
	st := flaky.Stats()
	if st.Failed == 0 || st.Throttled == 0 || st.Cut == 0 {
		t.Errorf("not every kind of fault was injected: %+v", st)
	}
	pages := sameObjects(t, "raw/", own.objects("raw/"), clean.objects("raw/"))
	own.transformAll(own.transformer(nil))
	own.loadAll(own.loader(nil, nil), own.messages(own.processed(nil)))
	rows := sameTables(t, own, clean, warehousedb.DumpModified)
	row.Notef("%d requests: %d answered 500, %d 429, %d cut; %d retries", st.Requests, st.Failed, st.Throttled, st.Cut, res.Retries)
	row.Notef("%d pages compared byte for byte, %d rows in 4 tables", pages, rows)
}
