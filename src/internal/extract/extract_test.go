package extract

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// A full crawl stores exactly the pages served, byte for byte, with their
// metadata and a manifest; a second run on unchanged data writes nothing;
// force rewrites everything.
func TestCrawlIntoS3(t *testing.T) {
	client, bkt := testenv.S3(t)
	a := startAPI(t, generate(t, fakeapi.DefaultSizes), fakeapi.Faults{}, nil)
	store := &countingStore{pageStore: bucket.New(client, bkt)}
	c := New(quick(a.base, bkt, 4), store, nil, time.Now, testLogger(t))
	ctx := context.Background()

	t.Run("first run writes every page", func(t *testing.T) {
		res, err := c.Run(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Complete || res.Pages != 52 || res.Fetched != 52 || res.Written != 52 || res.Unchanged != 0 || res.Failed != 0 || res.Skipped != 0 || res.Requests != 53 {
			t.Errorf("result %+v", res)
		}
		wantRes := map[string][2]int{"character": {826, 42}, "location": {126, 7}, "episode": {51, 3}}
		for _, rr := range res.Resources {
			if w := wantRes[rr.Resource]; rr.Count != w[0] || rr.Pages != w[1] || rr.Written != w[1] {
				t.Errorf("%+v, want count/pages %v", rr, w)
			}
		}
		if len(res.Resources) != 3 {
			t.Errorf("resources %+v", res.Resources)
		}
		objects := listObjects(t, client, bkt, bucket.RawPrefix)
		expectPages(t, objects, a.ds, a.base)
		var total int64
		for _, b := range objects {
			total += int64(len(b))
		}
		if res.BytesWritten != total || res.BytesFetched != total+int64(len(mustGet(t, a.base))) {
			t.Errorf("bytes written %d fetched %d, stored %d", res.BytesWritten, res.BytesFetched, total)
		}

		head, err := bucket.New(client, bkt).Head(ctx, bucket.PageKey("location", 7))
		if err != nil {
			t.Fatal(err)
		}
		if ct := head.ContentType; ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if got, want := head.Meta(bucket.MetaSourceURL), rickmorty.PageURL(a.base, "location", 7); got != want {
			t.Errorf("source-url %q, want %q", got, want)
		}
		if _, err := time.Parse(bucket.FetchedAtLayout, head.Meta(bucket.MetaFetchedAt)); err != nil {
			t.Errorf("fetched-at: %v", err)
		}
		if len(head.Meta(bucket.MetaSHA256)) != 64 {
			t.Errorf("sha256 %q", head.Meta(bucket.MetaSHA256))
		}

		m := readManifest(t, client, bkt, res.ManifestKey)
		if m.RunID != res.RunID || m.Written != 52 || m.Pages != 52 || !m.Complete || m.Error != "" || m.APIBaseURL != a.base || len(m.Resources) != 3 {
			t.Errorf("manifest %+v", m)
		}
	})

	t.Run("second run writes nothing", func(t *testing.T) {
		store.reset()
		res, err := c.Run(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Complete || res.Written != 0 || res.Unchanged != 52 || res.BytesWritten != 0 {
			t.Errorf("result %+v", res)
		}
		if store.rawPuts.Load() != 0 || store.heads.Load() != 52 || store.manifestPuts.Load() != 1 {
			t.Errorf("%d PUTs under raw/, %d HEADs, %d manifests; want 0, 52, 1", store.rawPuts.Load(), store.heads.Load(), store.manifestPuts.Load())
		}
	})

	t.Run("force rewrites everything", func(t *testing.T) {
		store.reset()
		res, err := c.Run(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Complete || !res.Force || res.Written != 52 || res.Unchanged != 0 {
			t.Errorf("result %+v", res)
		}
		if store.rawPuts.Load() != 52 || store.heads.Load() != 0 {
			t.Errorf("%d PUTs under raw/, %d HEADs; want 52, 0", store.rawPuts.Load(), store.heads.Load())
		}
		expectPages(t, listObjects(t, client, bkt, bucket.RawPrefix), a.ds, a.base)
		if n := len(listObjects(t, client, bkt, bucket.ManifestPrefix)); n != 3 {
			t.Errorf("%d manifests, want one per run (3)", n)
		}
	})
}

func mustGet(t testing.TB, url string) []byte {
	t.Helper()
	b, err := (&rickmorty.Client{HTTP: http.DefaultClient}).Get(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readManifest(t testing.TB, client *s3.Client, bkt, key string) Manifest {
	t.Helper()
	obj, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bkt), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("reading the manifest: %v", err)
	}
	defer obj.Body.Close()
	var m Manifest
	if err := json.NewDecoder(obj.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// With 20% of requests failing (500s, 429s with Retry-After, bodies cut
// mid-way), the crawl completes with the same objects as a clean one, each
// fault costing exactly one retry, and never more requests in flight than
// allowed.
func TestCrawlSurvivesFaults(t *testing.T) {
	client, bkt := testenv.S3(t)
	f := fakeapi.Faults{Fail: 0.10, Throttle: 0.05, RetryAfter: "0", Cut: 0.05, Seed: 3}
	a := startAPI(t, generate(t, fakeapi.DefaultSizes), f, nil)
	res, err := New(quick(a.base, bkt, 4), bucket.New(client, bkt), nil, time.Now, testLogger(t)).Run(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	st := a.Stats()
	faults := st.Failed + st.Throttled + st.Cut
	t.Logf("fake API: %+v", st)
	if st.Failed == 0 || st.Throttled == 0 || st.Cut == 0 {
		t.Errorf("not every kind of fault was injected: %+v", st)
	}
	if !res.Complete || res.Written != 52 || res.Failed != 0 || int64(res.Retries) != faults || int64(res.Requests) != st.Requests {
		t.Errorf("result %+v with %d faults in %d requests", res, faults, st.Requests)
	}
	if st.PeakInFlight > 4 {
		t.Errorf("peak in flight %d > 4", st.PeakInFlight)
	}
	expectPages(t, listObjects(t, client, bkt, bucket.RawPrefix), a.ds, a.base)
}

// The in-flight limit holds whatever the limit and is shared by the
// resources.
func TestInFlightLimit(t *testing.T) {
	ds := generate(t, fakeapi.Sizes{Characters: 300, Locations: 100, Episodes: 60})
	for _, conc := range []int{1, 3} {
		a := startAPI(t, ds, fakeapi.Faults{Latency: 2 * time.Millisecond}, nil)
		store := newMemStore()
		res, err := New(quick(a.base, "b", conc), store, nil, time.Now, testLogger(t)).Run(context.Background(), false)
		if err != nil || !res.Complete || res.Written != 15+5+3 {
			t.Fatalf("concurrency %d: %+v, %v", conc, res, err)
		}
		peak := a.Stats().PeakInFlight
		if peak > int64(conc) || (conc == 1 && peak != 1) {
			t.Errorf("concurrency %d: peak in flight %d", conc, peak)
		}
		t.Logf("concurrency %d: peak %d", conc, peak)
	}
}

// stallAfter serves the first n requests and holds every later one until
// its client gives up.
func stallAfter(n int64) func(http.Handler) http.Handler {
	var served atomic.Int64
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if served.Add(1) > n {
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// A crawl stops DeadlineMargin before its deadline, keeps what it stored,
// writes its manifest, and says how far it got.
func TestDeadlineStopsCleanly(t *testing.T) {
	client, bkt := testenv.S3(t)
	a := startAPI(t, generate(t, fakeapi.DefaultSizes), fakeapi.Faults{}, stallAfter(10)) // the root and 9 pages
	cfg := quick(a.base, bkt, 4)
	cfg.DeadlineMargin = time.Second
	// 3s for 10 requests and 9 writes, even on a loaded machine; the 11th
	// request waits for the stop.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	res, err := New(cfg, bucket.New(client, bkt), nil, time.Now, testLogger(t)).Run(ctx, false)
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("error %v, want ErrDeadline", err)
	}
	if !strings.Contains(err.Error(), "9 of 52 pages stored (character ") || !strings.Contains(err.Error(), "43 not done") {
		t.Errorf("error %q does not say how far it got", err)
	}
	if res.Complete || res.Stopped != "deadline" || res.Written != 9 || res.Failed != 0 || res.Skipped != 43 {
		t.Errorf("result %+v", res)
	}
	if n := len(listObjects(t, client, bkt, bucket.RawPrefix)); n != 9 {
		t.Errorf("%d objects under raw/, want 9", n)
	}
	m := readManifest(t, client, bkt, res.ManifestKey)
	if m.Stopped != "deadline" || m.Written != 9 || !strings.Contains(m.Error, "9 of 52 pages stored") {
		t.Errorf("manifest %+v", m)
	}

	t.Run("next run completes the work", func(t *testing.T) {
		b := startAPI(t, a.ds, fakeapi.Faults{}, nil)
		cfg.BaseURL = b.base
		res, err := New(cfg, bucket.New(client, bkt), nil, time.Now, testLogger(t)).Run(context.Background(), false)
		// the pages hold the first server's URLs in their links: all differ
		if err != nil || !res.Complete || res.Written+res.Unchanged != 52 {
			t.Errorf("%+v, %v", res, err)
		}
	})
}

// A deadline already within the margin starts nothing but still writes the
// manifest.
// Lambda always gives a deadline: a crawl that finishes well before it is a
// success, not a stop.
func TestDeadlineFarAwayIsNoStop(t *testing.T) {
	a := startAPI(t, generate(t, fakeapi.Sizes{Characters: 20, Locations: 20, Episodes: 20}), fakeapi.Faults{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	res, err := New(quick(a.base, "b", 4), newMemStore(), nil, time.Now, testLogger(t)).Run(ctx, false)
	if err != nil || !res.Complete || res.Stopped != "" {
		t.Errorf("crawl with a distant deadline: %v, complete %v, stopped %q", err, res.Complete, res.Stopped)
	}
}

func TestDeadlineTooClose(t *testing.T) {
	a := startAPI(t, generate(t, fakeapi.Sizes{Characters: 20, Locations: 20, Episodes: 20}), fakeapi.Faults{}, nil)
	store := newMemStore()
	cfg := quick(a.base, "b", 4)
	cfg.DeadlineMargin = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := New(cfg, store, nil, time.Now, testLogger(t)).Run(ctx, false)
	if !errors.Is(err, ErrDeadline) || res.Requests != 0 || res.Written != 0 {
		t.Errorf("%+v, %v", res, err)
	}
	if len(store.keys(bucket.ManifestPrefix)) != 1 {
		t.Error("no manifest")
	}
}

// A page that keeps failing is reported, and the others are stored.
func TestPermanentFailureIsReported(t *testing.T) {
	ds := generate(t, fakeapi.Sizes{Characters: 100, Locations: 60, Episodes: 20})
	a := startAPI(t, ds, fakeapi.Faults{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.RequestURI() {
			case "/api/location?page=2":
				http.Error(w, `{"error":"There is nothing here"}`, http.StatusNotFound)
			case "/api/location?page=3":
				http.Error(w, `{"error":"boom"}`, http.StatusBadGateway)
			default:
				next.ServeHTTP(w, r)
			}
		})
	})
	store := newMemStore()
	cfg := quick(a.base, "b", 4)
	cfg.RetryMax = 2
	res, err := New(cfg, store, nil, time.Now, testLogger(t)).Run(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "2 of 9 pages failed (first: location page 2") {
		t.Fatalf("error %v", err)
	}
	// page 3: 3 rounds of 3 attempts, 8 retries in all
	if res.Complete || res.Failed != 2 || res.Written != 7 || res.Retries != 8 || len(res.Failures) != 2 {
		t.Errorf("result %+v", res)
	}
	if f := res.Failures[1]; f.Page != 3 || !strings.Contains(f.Error, "giving up after 9 attempts in 3 rounds") {
		t.Errorf("failure %+v", f)
	}
	if len(store.keys(bucket.RawPrefix)) != 7 {
		t.Errorf("stored %v", store.keys(bucket.RawPrefix))
	}
}

// When the root document cannot be had, nothing is stored, not even the
// first pages asked for alongside it.
func TestRootFailure(t *testing.T) {
	a := startAPI(t, generate(t, fakeapi.Sizes{Characters: 30, Locations: 30, Episodes: 30}), fakeapi.Faults{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api" {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	store := newMemStore()
	cfg := quick(a.base, "b", 4)
	cfg.RetryMax = 1
	res, err := New(cfg, store, nil, time.Now, testLogger(t)).Run(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "discovering resources at "+a.base) {
		t.Fatalf("error %v", err)
	}
	if res.Complete || len(store.keys(bucket.RawPrefix)) != 0 || len(store.keys(bucket.ManifestPrefix)) != 1 || len(res.Failures) != 1 {
		t.Errorf("result %+v, stored %v", res, store.keys(""))
	}
}

// A root document listing fewer resources limits the crawl to them.
func TestRootListsTheResources(t *testing.T) {
	a := startAPI(t, generate(t, fakeapi.Sizes{Characters: 30, Locations: 30, Episodes: 30}), fakeapi.Faults{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api" {
				w.Write([]byte(`{"characters":"https://elsewhere.example/api/character","planets":"https://elsewhere.example/api/planet"}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	store := newMemStore()
	res, err := New(quick(a.base, "b", 4), store, nil, time.Now, testLogger(t)).Run(context.Background(), false)
	if err != nil || !res.Complete || res.Written != 2 || len(res.Resources) != 1 || len(res.Ignored) != 1 || res.Ignored[0] != "planets" {
		t.Errorf("%+v, %v", res, err)
	}
	if keys := store.keys(bucket.RawPrefix); len(keys) != 2 || !strings.HasPrefix(keys[0], "raw/character/") {
		t.Errorf("stored %v", keys)
	}
}

// A dataset that changes while the crawl runs is recorded in the manifest.
func TestDatasetChangeIsRecorded(t *testing.T) {
	before := generate(t, fakeapi.Sizes{Characters: 100, Locations: 20, Episodes: 20})
	after := generate(t, fakeapi.Sizes{Characters: 110, Locations: 20, Episodes: 20})
	newer := fakeapi.New(after, fakeapi.Options{})
	a := startAPI(t, before, fakeapi.Faults{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/character" && r.URL.Query().Get("page") != "1" {
				newer.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	store := newMemStore()
	res, err := New(quick(a.base, "b", 2), store, nil, time.Now, testLogger(t)).Run(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 4 || res.Changes[0] != (Change{Resource: "character", Page: 2, Count: 110, Pages: 6, FirstCount: 100, FirstPages: 5}) {
		t.Errorf("changes %+v", res.Changes)
	}
	if res.Written != 7 || res.Complete != true {
		t.Errorf("result %+v", res)
	}
	body, _ := store.get(bucket.ExtractManifestKey(res.RunID))
	if !strings.Contains(string(body), `"datasetChanges"`) {
		t.Errorf("manifest %s", body)
	}
}

// The real API's snapshot, served by the fake API, crawls into 42 + 7 + 3
// pages.
func TestCrawlTheSnapshot(t *testing.T) {
	dir := testenv.Snapshot(t)
	ds, err := fakeapi.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, bkt := testenv.S3(t)
	a := startAPI(t, ds, fakeapi.Faults{}, nil)
	res, err := New(quick(a.base, bkt, 4), bucket.New(client, bkt), nil, time.Now, testLogger(t)).Run(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]int{}
	for _, rr := range res.Resources {
		got[rr.Resource] = [2]int{rr.Count, rr.Written}
	}
	want := map[string][2]int{"character": {826, 42}, "location": {126, 7}, "episode": {51, 3}}
	for r, w := range want {
		if got[r] != w {
			t.Errorf("%s: count and pages written %v, want %v", r, got[r], w)
		}
	}
	objects := listObjects(t, client, bkt, bucket.RawPrefix)
	expectPages(t, objects, ds, a.base)
	var p rickmorty.Page[rickmorty.Character]
	if err := json.Unmarshal(objects[bucket.PageKey("character", 7)], &p); err != nil || p.Results[4].ID != 125 || p.Results[4].Name != "Flansian" {
		t.Errorf("character page 7: %v", err)
	}
}
