package reliability

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/extract"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// errStalled is the read error of an object whose transfer stalled.
var errStalled = errors.New("the object's transfer stalled")

// TestReliabilityDeadlines runs the chain twice from the same API: once
// clean, once with each function (extract, transform, load, export) stopped
// by its context deadline part way through its work and then invoked again,
// as its schedule, Lambda's retry or SQS redelivery does. After each stage
// the second chain must hold what the clean one holds. The stages build on
// each other: the first that fails ends the test.
func TestReliabilityDeadlines(t *testing.T) {
	ds := generated(t, smallSizes)
	api := startFakeAPI(t)
	api.serve(fakeapi.New(ds, fakeapi.Options{}))
	clean := newChain(t, "clean")
	clean.crawl(api.base)
	clean.transformAll(clean.transformer(nil))
	clean.loadAll(clean.loader(nil, nil), clean.messages(clean.processed(nil)))
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	if _, err := clean.exporter(nil, nil).Handle(ctx, exportEvent(t)); err != nil {
		t.Fatalf("clean export: %v", err)
	}
	clean.checkReplay("exports/")

	own := newChain(t, "deadlines")
	stages := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Extract", func(t *testing.T) { deadlineExtract(t, own, clean, api, ds) }},
		{"Transform", func(t *testing.T) { deadlineTransform(t, own, clean) }},
		{"Load", func(t *testing.T) { deadlineLoad(t, own, clean) }},
		{"Export", func(t *testing.T) { deadlineExport(t, own, clean) }},
	}
	parent := t
	for _, s := range stages {
		// The chains fail the stage running, from its goroutine.
		if !t.Run(s.name, func(t *testing.T) {
			own.t, clean.t = t, t
			defer func() { own.t, clean.t = parent, parent }()
			s.run(t)
		}) {
			return
		}
	}
}

func deadlineExtract(t *testing.T, own, clean *chain, api *fakeAPIServer, ds *fakeapi.Dataset) {
	row := Case(t,
		"Extract invoked with its deadline 2 s after its stop margin while the API stops answering after 6 requests; invoked again (the next schedule)",
		"the first run stops before the deadline with some pages stored and says how far it got; the second completes; raw/ equals a clean crawl's byte for byte")
	api.serve(stallAfter(6, fakeapi.New(ds, fakeapi.Options{})))
	ctx, cancel := context.WithTimeout(context.Background(), extractMargin()+2*time.Second)
	defer cancel()
	res, err := own.extractor(api.base).Handle(ctx, extractEvent(t))
	if !errors.Is(err, extract.ErrDeadline) || res.Stopped != "deadline" || res.Written == 0 || res.Written >= res.Pages {
		t.Fatalf("first run: %v, stopped %q, %d of %d pages written; want ErrDeadline part way", err, res.Stopped, res.Written, res.Pages)
	}
	api.serve(fakeapi.New(ds, fakeapi.Options{}))
	again := own.crawl(api.base)
	pages := sameObjects(t, "raw/", own.objects("raw/"), clean.objects("raw/"))
	row.Notef("first run: %d of %d pages stored before the stop; the next: %d written, %d unchanged", res.Written, res.Pages, again.Written, again.Unchanged)
	row.Notef("%d pages compared", pages)
}

func deadlineTransform(t *testing.T, own, clean *chain) {
	row := Case(t,
		"Transform invoked with a 2 s deadline, its read of a raw page stalling half way until the deadline; the event retried as Lambda's async invocation does",
		"the retry completes; processed/, rejected/ and quarantine/ equal a clean run's byte for byte")
	raw := own.list("raw/")
	target := raw[len(raw)/2]
	var stalled atomic.Bool
	hs := &hookedS3{Client: own.s3, body: func(ctx context.Context, key string, body io.ReadCloser) io.ReadCloser {
		if key != aws.ToString(target.Key) || !stalled.CompareAndSwap(false, true) {
			return body
		}
		return &tripReader{r: body, after: aws.ToInt64(target.Size) / 2, trip: func() error {
			<-ctx.Done()
			return ctx.Err()
		}}
	}}
	h := own.transformer(hs)
	var firstErr error
	for _, o := range raw {
		ev := own.putEvent(o)
		if aws.ToString(o.Key) == aws.ToString(target.Key) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			firstErr = h.Handle(ctx, ev)
			cancel()
			if firstErr == nil {
				t.Fatalf("transforming %s past its deadline succeeded", aws.ToString(o.Key))
			}
		}
		if attempts, err := invokeAsync(h, ev, transformTimeout, nil); err != nil {
			t.Fatalf("transforming %s: %d attempts, the last: %v", aws.ToString(o.Key), attempts, err)
		}
	}
	if !stalled.Load() {
		t.Fatal("the stall did not happen")
	}
	compared := 0
	for _, p := range []string{"processed/", "rejected/", "quarantine/"} {
		compared += sameObjects(t, p, own.objects(p), clean.objects(p))
	}
	uploads, err := own.s3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(own.bucket)})
	if err != nil {
		t.Fatal(err)
	}
	row.Notef("%s stopped: %s", aws.ToString(target.Key), clip(firstErr.Error(), 120))
	row.Notef("%d objects compared; %d multipart uploads left open", compared, len(uploads.Uploads))
}

func deadlineLoad(t *testing.T, own, clean *chain) {
	row := Case(t,
		"Load invoked with a 3 s deadline (LOAD_DEADLINE_RESERVE 1s) on batches of 10 from an SQS-like queue (visibility 3 s); the 4th object's read stalls past the load's own deadline",
		"the objects before it are acknowledged, it and the rest fail and come back; the next invocations load them; checksums of every table equal a clean run's")
	const invocation, reserve = 3 * time.Second, time.Second
	objs := own.processed(nil)
	target := objs[3]
	var stalled atomic.Bool
	hs := &hookedS3{Client: own.s3, body: func(ctx context.Context, key string, body io.ReadCloser) io.ReadCloser {
		if key != aws.ToString(target.Key) || !stalled.CompareAndSwap(false, true) {
			return body
		}
		return &tripReader{r: body, after: aws.ToInt64(target.Size) / 2, trip: func() error {
			// Past the load's own deadline (reserve/2 before the
			// invocation's), still before the invocation's.
			dl, _ := ctx.Deadline()
			time.Sleep(time.Until(dl.Add(-reserve / 4)))
			return errStalled
		}}
	}}
	var ta tally
	h := own.loader(hs, map[string]string{"LOAD_DEADLINE_RESERVE": reserve.String()})
	h.Observe = ta.observe
	q := newLoadQueue("load", invocation)
	for _, b := range own.messages(objs) {
		q.Send(b)
	}
	st := drain(t, q, []*loadfn.Handler{h}, invocation)
	if !stalled.Load() {
		t.Fatal("the stall did not happen")
	}
	failed := ta.count(loadfn.Failed)
	if failed == 0 || st.Redelivered != failed || st.TimedOut != 0 || len(q.DeadLetters()) != 0 {
		t.Errorf("%d failed outcomes, %d redeliveries, %d invocations timed out, %d dead letters; want failures redelivered once each, none timed out, none dead",
			failed, st.Redelivered, st.TimedOut, len(q.DeadLetters()))
	}
	rows := sameTables(t, own, clean, warehousedb.DumpModified)
	row.Notef("%d messages, %d failed at the deadline and redelivered, %d invocations", len(objs), failed, st.Invocations)
	row.Notef("%d rows in 4 tables compared", rows)
}

func deadlineExport(t *testing.T, own, clean *chain) {
	row := Case(t,
		"Export invoked with a 4 s deadline (EXPORT_DEADLINE_MARGIN 3s, chunks of 10 rows); its first file's creation stalls until past the stop time while the first table streams; the schedule fires again",
		"the first run leaves the first table partial and defers the others; the next run completes; every table's exported CSVs replayed in file order equal the table, as the clean export's do")
	const margin, deadline = 3 * time.Second, 4 * time.Second
	var stalled atomic.Bool
	s3c := own.s3Via(newHookedHTTP(func(r *http.Request) {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/exports/characters/csv/") && stalled.CompareAndSwap(false, true) {
			dl, _ := r.Context().Deadline()
			time.Sleep(time.Until(dl.Add(-margin + 200*time.Millisecond)))
		}
	}))
	x := own.exporter(s3c, map[string]string{"EXPORT_CHUNK_ROWS": "10", "EXPORT_DEADLINE_MARGIN": margin.String()})
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	res, err := x.Handle(ctx, exportEvent(t))
	cancel()
	first := res
	if s := statuses(res); !stalled.Load() || err != nil || s["characters"] != export.StatusPartial || s["locations"] != export.StatusDeferred {
		t.Fatalf("first run (stalled %v): %s, %v; want characters partial, the others deferred", stalled.Load(), statusText(res), err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	res, err = x.Handle(ctx, exportEvent(t))
	if err != nil {
		t.Fatalf("next run: %v", err)
	}
	checkAllExported(t, "next run", res)
	rs := own.checkReplay("exports/")
	cleanRS := clean.checkReplay("exports/")
	if rs.StaleFetchedAt+cleanRS.StaleFetchedAt > 0 {
		t.Errorf("%d rows with a stale fetched_at in the exports after a single crawl", rs.StaleFetchedAt+cleanRS.StaleFetchedAt)
	}
	row.Notef("first run: %s", statusText(first))
	row.Notef("%d exported CSV files replayed (%d in the clean export), %d rows compared", rs.Files, cleanRS.Files, rs.Rows)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
