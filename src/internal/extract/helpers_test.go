package extract

import (
	"bytes"
	"context"
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
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

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

// countingStore counts the calls made to an objectStore, per key prefix.
type countingStore struct {
	objectStore
	heads, rawPuts, manifestPuts atomic.Int64
}

func (c *countingStore) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	c.heads.Add(1)
	return c.objectStore.HeadObject(ctx, in, opts...)
}

func (c *countingStore) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.Key), ManifestPrefix) {
		c.manifestPuts.Add(1)
	} else {
		c.rawPuts.Add(1)
	}
	return c.objectStore.PutObject(ctx, in, opts...)
}

func (c *countingStore) reset() {
	c.heads.Store(0)
	c.rawPuts.Store(0)
	c.manifestPuts.Store(0)
}

// memStore is an in-memory objectStore for tests that need no S3 server.
type memStore struct {
	mu      sync.Mutex
	objects map[string]memObject
}

type memObject struct {
	body []byte
	meta map[string]string
}

func newMemStore() *memStore { return &memStore{objects: map[string]memObject{}} }

func (m *memStore) HeadObject(ctx context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &types.NotFound{}
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(o.body))), Metadata: o.meta}, nil
}

func (m *memStore) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[aws.ToString(in.Key)] = memObject{body: b, meta: in.Metadata}
	return &s3.PutObjectOutput{}, nil
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
func listObjects(t testing.TB, client *s3.Client, bucket, prefix string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
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
			got, ok := objects[Key(r, n)]
			switch {
			case !ok:
				t.Errorf("%s is missing", Key(r, n))
			case !bytes.Equal(got, page):
				t.Errorf("%s differs from the page served:\n got %.200s\nwant %.200s", Key(r, n), got, page)
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
