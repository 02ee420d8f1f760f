package bucket_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket/buckettest"
)

// write writes data in uneven chunks.
func write(t *testing.T, w *bucket.Writer, data []byte) error {
	t.Helper()
	for len(data) > 0 {
		n := min(len(data), 777_777)
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func pattern(size int) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	return data
}

func uploadsLeft(t *testing.T, srv buckettest.Server) int {
	t.Helper()
	out, err := srv.Client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

func keysUnder(t *testing.T, b *bucket.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	if err := b.List(context.Background(), prefix, func(i bucket.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestWriterRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			b := bucket.New(srv.Client, srv.Bucket)
			for _, tc := range []struct {
				size  int
				parts string // a multipart ETag ends in -<parts>
			}{{0, ""}, {1, ""}, {bucket.MinPartSize - 1, ""}, {bucket.MinPartSize, "-1"}, {3*bucket.MinPartSize + 12345, "-4"}} {
				key := fmt.Sprintf("processed/t/size-%d.csv", tc.size)
				data := pattern(tc.size)
				w := b.NewWriter(ctx, key, bucket.WriteOptions{ContentType: "text/csv", Metadata: map[string]string{"run-id": "r"}, PartSize: bucket.MinPartSize})
				if err := write(t, w, data); err != nil {
					t.Fatal(err)
				}
				if ok, _ := b.Exists(ctx, key); ok {
					t.Errorf("size %d: visible before Commit", tc.size)
				}
				etag, err := w.Commit(ctx)
				if err != nil {
					t.Fatalf("size %d: %v", tc.size, err)
				}
				got, info, err := b.ReadAll(ctx, key, 1<<30)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("size %d: read back %d bytes (%v)", tc.size, len(got), err)
				}
				if w.Size() != int64(tc.size) || info.ETag != etag || info.Meta("run-id") != "r" || info.ContentType != "text/csv" {
					t.Errorf("size %d: Size %d, ETag %s/%s, info %+v", tc.size, w.Size(), etag, info.ETag, info)
				}
				if e := strings.Trim(etag, `"`); tc.parts != "" && !strings.HasSuffix(e, tc.parts) || tc.parts == "" && strings.Contains(e, "-") {
					t.Errorf("size %d: ETag %s, want parts %q", tc.size, e, tc.parts)
				}
			}
			if n := uploadsLeft(t, srv); n != 0 {
				t.Errorf("%d uploads left in progress", n)
			}
		})
	}
}

// IfNoneMatch never replaces an object: a small one may move to a free
// name, a multipart one is aborted and leaves nothing.
// A small object costs memory in proportion to its size, not to the part
// size: most objects (a page's CSV) are a few KB, and each used to allocate
// and clear a whole part buffer.
func TestWriterSmallObjectsStaySmall(t *testing.T) {
	ctx := context.Background()
	srv := buckettest.Local(t)
	b := bucket.New(srv.Client, srv.Bucket)
	data := pattern(5000)
	write := func(i int) {
		w := b.NewWriter(ctx, fmt.Sprintf("processed/t/small-%d.csv", i), bucket.WriteOptions{})
		for j := 0; j < len(data); j += 100 {
			if _, err := w.Write(data[j:min(j+100, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	write(0) // the client's and the server's first-use allocations
	const n = 50
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 1; i <= n; i++ {
		write(i)
	}
	runtime.ReadMemStats(&after)
	// Client and server in this process: each object's requests, bodies and
	// files, far under one part (DefaultPartSize) apiece.
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > bucket.DefaultPartSize/8 {
		t.Errorf("%d bytes allocated per %d-byte object (a part is %d)", per, len(data), bucket.DefaultPartSize)
	}
}

func TestWriterNeverReplaces(t *testing.T) {
	ctx := context.Background()
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			b := bucket.New(srv.Client, srv.Bucket)
			put(t, b, "exports/t/csv/a.csv", "existing")
			w := b.NewWriter(ctx, "exports/t/csv/a.csv", bucket.WriteOptions{IfNoneMatch: true})
			w.Write([]byte("new"))
			if _, err := w.Commit(ctx); !errors.Is(err, bucket.ErrPrecondition) {
				t.Fatalf("small commit onto an existing key: %v", err)
			}
			if !w.Rename("exports/t/csv/a_1.csv") {
				t.Fatal("a small object could not be renamed")
			}
			if _, err := w.Commit(ctx); err != nil {
				t.Fatalf("commit under the free name: %v", err)
			}

			w = b.NewWriter(ctx, "exports/t/csv/a.csv", bucket.WriteOptions{IfNoneMatch: true, PartSize: bucket.MinPartSize})
			if err := write(t, w, pattern(bucket.MinPartSize+10)); err != nil {
				t.Fatal(err)
			}
			if w.Rename("exports/t/csv/a_2.csv") {
				t.Error("a multipart upload was renamed")
			}
			if _, err := w.Commit(ctx); !errors.Is(err, bucket.ErrPrecondition) {
				t.Fatalf("multipart commit onto an existing key: %v", err)
			}
			if err := w.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := b.ReadAll(ctx, "exports/t/csv/a.csv", 100); string(got) != "existing" {
				t.Errorf("the existing object became %q", got)
			}
			if keys := keysUnder(t, b, "exports/"); strings.Join(keys, ",") != "exports/t/csv/a.csv,exports/t/csv/a_1.csv" {
				t.Errorf("objects %v", keys)
			}
			if n := uploadsLeft(t, srv); n != 0 {
				t.Errorf("%d uploads left in progress", n)
			}
		})
	}
}

// flaky fails the uploads of keys containing "fail".
type flaky struct {
	*s3.Client
}

var errInjected = errors.New("injected failure")

func (f flaky) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if strings.Contains(aws.ToString(in.Key), "fail") && aws.ToInt32(in.PartNumber) == 2 {
		return nil, errInjected
	}
	return f.Client.UploadPart(ctx, in, o...)
}

func (f flaky) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if strings.Contains(aws.ToString(in.Key), "fail") {
		return nil, errInjected
	}
	return f.Client.PutObject(ctx, in, o...)
}

// A failed part, a failed put, or an Abort midway leave no object and no
// multipart upload behind.
func TestWriterLeavesNothingOnFailure(t *testing.T) {
	ctx := context.Background()
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			b := bucket.New(flaky{srv.Client}, srv.Bucket)
			data := pattern(3*bucket.MinPartSize + 1)

			w := b.NewWriter(ctx, "processed/t/fail-part.csv", bucket.WriteOptions{PartSize: bucket.MinPartSize})
			err := write(t, w, data)
			if err == nil {
				_, err = w.Commit(ctx)
			}
			if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "part 2 of s3://") {
				t.Errorf("failed part: %v", err)
			}
			if _, err := w.Commit(ctx); err == nil {
				t.Error("a second Commit succeeded")
			}

			w = b.NewWriter(ctx, "processed/t/aborted.csv", bucket.WriteOptions{PartSize: bucket.MinPartSize})
			if err := write(t, w, data); err != nil {
				t.Fatal(err)
			}
			if err := w.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Commit(ctx); err == nil {
				t.Error("Commit after Abort succeeded")
			}

			w = b.NewWriter(ctx, "processed/t/fail-small.csv", bucket.WriteOptions{})
			w.Write(data[:100])
			if _, err := w.Commit(ctx); !errors.Is(err, errInjected) {
				t.Errorf("failed put: %v", err)
			}
			if keys := keysUnder(t, b, ""); len(keys) != 0 {
				t.Errorf("objects left: %v", keys)
			}
			if n := uploadsLeft(t, srv); n != 0 {
				t.Errorf("%d uploads left in progress", n)
			}
		})
	}
}
