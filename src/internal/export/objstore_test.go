package export

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// The exporter's guarantees rest on conditional writes; this checks that
// the S3 server honours them (MinIO here; AWS S3 since 2024).
func TestS3ConditionalWrites(t *testing.T) {
	api, bucket := testenv.S3(t)
	ctx := context.Background()

	etag, err := putIf(ctx, api, bucket, "k", "text/plain", []byte("one"), "")
	if err != nil {
		t.Fatalf("If-None-Match on a new key: %v", err)
	}
	if _, err := putIf(ctx, api, bucket, "k", "text/plain", []byte("two"), ""); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-None-Match on an existing key = %v, want ErrPreconditionFailed", err)
	}
	if _, err := putIf(ctx, api, bucket, "k", "text/plain", []byte("two"), `"0123456789abcdef0123456789abcdef"`); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-Match with a stale ETag = %v, want ErrPreconditionFailed", err)
	}
	etag2, err := putIf(ctx, api, bucket, "k", "text/plain", []byte("three"), etag)
	if err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	if _, err := putIf(ctx, api, bucket, "k", "text/plain", []byte("four"), etag); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-Match with the previous ETag = %v, want ErrPreconditionFailed", err)
	}
	body, gotETag, found, err := readObject(ctx, api, bucket, "k", 100)
	if err != nil || !found || string(body) != "three" || gotETag != etag2 {
		t.Fatalf("read back %q %s %v %v, want three %s", body, gotETag, found, err, etag2)
	}
	if _, _, found, err := readObject(ctx, api, bucket, "missing", 100); found || err != nil {
		t.Fatalf("missing object: found=%v err=%v", found, err)
	}

	// Multipart: completing onto an existing key fails and leaves it alone.
	w := newObjectWriter(ctx, api, bucket, "k", "text/plain", nil, minPartSize)
	data := bytes.Repeat([]byte("x"), minPartSize+10)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("multipart complete onto an existing key = %v, want ErrPreconditionFailed", err)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatalf("abort: %v", err)
	}
	body, _, _, _ = readObject(ctx, api, bucket, "k", 100)
	if string(body) != "three" {
		t.Fatalf("existing object changed to %q", body)
	}
	uploads, err := api.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left after abort", len(uploads.Uploads))
	}
}

func TestObjectWriterMultipartRoundTrip(t *testing.T) {
	api, bucket := testenv.S3(t)
	ctx := context.Background()
	for _, size := range []int{0, 1, minPartSize - 1, minPartSize, 3*minPartSize + 12345} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + i/251)
		}
		key := "obj-" + string(rune('a'+size%26))
		w := newObjectWriter(ctx, api, bucket, key, "application/octet-stream", map[string]string{"run-id": "r"}, minPartSize)
		// uneven writes
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+len(rest)/3)
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if _, err := w.Commit(ctx); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: read back %d bytes, differing", size, len(got))
		}
		if w.Size() != int64(size) {
			t.Fatalf("Size = %d, want %d", w.Size(), size)
		}
		if out.Metadata["run-id"] != "r" {
			t.Errorf("metadata = %v", out.Metadata)
		}
	}
}

func TestObjectWriterAbortLeavesNothing(t *testing.T) {
	api, bucket := testenv.S3(t)
	ctx := context.Background()
	w := newObjectWriter(ctx, api, bucket, "aborted", "application/octet-stream", nil, minPartSize)
	if _, err := w.Write(bytes.Repeat([]byte("y"), 2*minPartSize+1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := exists(ctx, api, bucket, "aborted"); ok || err != nil {
		t.Fatalf("exists=%v err=%v after abort", ok, err)
	}
	uploads, err := api.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left after abort", len(uploads.Uploads))
	}
}
