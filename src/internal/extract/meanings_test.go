package extract

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket/buckettest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// A crawl into a bucket that does not exist, or that refuses access, fails
// and says so, at once: no page is "not stored yet", and the crawl does not
// go on fetching pages it cannot keep. On MinIO and the local stack's S3.
func TestBucketThatCannotBeWrittenStopsTheCrawl(t *testing.T) {
	a := startAPI(t, generate(t, fakeapi.DefaultSizes), fakeapi.Faults{}, nil)
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			missing := "no-such-bucket-" + strings.ReplaceAll(testenv.RandomName(""), "_", "-")
			cases := map[string]*bucket.Bucket{"missing bucket": bucket.New(srv.Client, missing)}
			if srv.ChecksAccess {
				cases["access denied"] = bucket.New(buckettest.Denied(), srv.Bucket)
			}
			for name, b := range cases {
				t.Run(name, func(t *testing.T) {
					store := &countingStore{pageStore: b}
					res, err := New(quick(a.base, b.Name(), 4), store, nil, time.Now, testLogger(t)).Run(context.Background(), false)
					want := bucket.ErrNoBucket
					if name == "access denied" {
						want = bucket.ErrDenied
					}
					if !errors.Is(err, want) || !strings.Contains(err.Error(), "the data bucket cannot be written") || !strings.Contains(err.Error(), b.Name()) {
						t.Fatalf("error %v, want one saying the bucket %s cannot be written (%v)", err, b.Name(), want)
					}
					if res.Complete || res.Written != 0 || res.Failed != 1 {
						t.Errorf("result %+v: want nothing written and one failure reported", res)
					}
					// 4 requests in flight and a few pages pending when the first store failed
					if n := store.heads.Load(); n > 12 {
						t.Errorf("%d pages were checked after the bucket was found unusable", n)
					}
				})
			}
		})
	}
}

// A page unlucky more times in a row than its own retries allow is tried
// again later in the same run while the run's retry budget lasts: the run
// completes (a harsh fault mix once failed a crawl this way).
func TestUnluckyPageIsTriedAgainLater(t *testing.T) {
	var fails atomic.Int64
	a := startAPI(t, generate(t, fakeapi.Sizes{Characters: 100, Locations: 60, Episodes: 20}), fakeapi.Faults{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RequestURI() == "/api/location?page=2" && fails.Add(1) <= 5 { // RetryMax 2: 3 attempts a round
				http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	store := newMemStore()
	cfg := quick(a.base, "b", 4)
	cfg.RetryMax = 2
	res, err := New(cfg, store, nil, time.Now, testLogger(t)).Run(context.Background(), false)
	if err != nil || !res.Complete || res.Written != 9 || res.Failed != 0 {
		t.Fatalf("run %+v, %v: want it complete", res, err)
	}
	if fails.Load() != 6 || res.Retries != 5 {
		t.Errorf("page 2 asked %d times, %d retries; want 6 and 5 (a second round)", fails.Load(), res.Retries)
	}
}
