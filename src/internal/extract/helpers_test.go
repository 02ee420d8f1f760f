package extract

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fakeapi"
	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

// api is a fake API behind an httptest server, optionally wrapped.
type api struct {
	*fakeapi.Server
	ds   *fakeapi.Dataset
	base string // http://127.0.0.1:port/api
}

func startAPI(t testing.TB, ds *fakeapi.Dataset, f fakeapi.Faults, wrap func(http.Handler) http.Handler) *api {
	t.Helper()
	s := fakeapi.New(ds, fakeapi.Options{Faults: f})
	var h http.Handler = s
	if wrap != nil {
		h = wrap(s)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &api{Server: s, ds: ds, base: srv.URL + "/api"}
}

func generate(t testing.TB, sz fakeapi.Sizes) *fakeapi.Dataset {
	t.Helper()
	ds, err := fakeapi.Generate(sz, 1)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// testLogger writes warnings and errors to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// quick is a configuration for tests: fast backoff, generous retries.
func quick(base, bucket string, conc int) Config {
	return Config{
		BaseURL:        base,
		Bucket:         bucket,
		Concurrency:    conc,
		RequestTimeout: 10 * time.Second,
		RetryMax:       8,
		RetryBudget:    1000,
		BackoffBase:    time.Millisecond,
		BackoffMax:     5 * time.Millisecond,
		DeadlineMargin: 500 * time.Millisecond,
	}
}

// countingStore counts the calls made to a pageStore, per key prefix.
type countingStore struct {
	pageStore
	heads, rawPuts, manifestPuts atomic.Int64
}

func (c *countingStore) Head(ctx context.Context, key string) (bucket.Info, error) {
	c.heads.Add(1)
	return c.pageStore.Head(ctx, key)
}

func (c *countingStore) Put(ctx context.Context, key string, body []byte, o bucket.PutOptions) (string, error) {
	if strings.HasPrefix(key, bucket.ManifestPrefix) {
		c.manifestPuts.Add(1)
	} else {
		c.rawPuts.Add(1)
	}
	return c.pageStore.Put(ctx, key, body, o)
}

func (c *countingStore) reset() {
	c.heads.Store(0)
	c.rawPuts.Store(0)
	c.manifestPuts.Store(0)
}

// memStore is an in-memory pageStore for tests that need no S3 server.
type memStore struct {
	mu      sync.Mutex
	objects map[string]memObject
}

type memObject struct {
	body []byte
	meta map[string]string
}

func newMemStore() *memStore { return &memStore{objects: map[string]memObject{}} }

func (m *memStore) Head(ctx context.Context, key string) (bucket.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return bucket.Info{}, &bucket.Error{Op: "checking", Bucket: "mem", Key: key, Meaning: bucket.ErrGone, Err: errors.New("404")}
	}
	return bucket.Info{Key: key, Size: int64(len(o.body)), Metadata: o.meta}, nil
}

func (m *memStore) Put(ctx context.Context, key string, body []byte, o bucket.PutOptions) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = memObject{body: bytes.Clone(body), meta: o.Metadata}
	return `"etag"`, nil
}

func (m *memStore) keys(prefix string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func (m *memStore) get(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	return o.body, ok
}

// listObjects returns every object under prefix in an S3 bucket, key → body.
func listObjects(t testing.TB, client *s3.Client, bkt, prefix string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bkt), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bkt), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[aws.ToString(o.Key)] = b
		}
	}
	return out
}

// expectPages checks that objects hold exactly every page of ds as served
// under base, byte for byte.
func expectPages(t testing.TB, objects map[string][]byte, ds *fakeapi.Dataset, base string) {
	t.Helper()
	want := 0
	for _, r := range rickmorty.Resources {
		for n := 1; n <= ds.Pages(r); n++ {
			want++
			page, _ := ds.Page(r, n, base)
			got, ok := objects[bucket.PageKey(r, n)]
			switch {
			case !ok:
				t.Errorf("%s is missing", bucket.PageKey(r, n))
			case !bytes.Equal(got, page):
				t.Errorf("%s differs from the page served:\n got %.200s\nwant %.200s", bucket.PageKey(r, n), got, page)
			}
		}
	}
	if len(objects) != want {
		var keys []string
		for k := range objects {
			keys = append(keys, k)
		}
		t.Errorf("%d objects under raw/, want %d: %v", len(objects), want, keys)
	}
}
