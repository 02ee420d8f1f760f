package transformfn

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

func newWriter(s3c s3API, bucket, key string) *objectWriter {
	return &objectWriter{ctx: context.Background(), s3: s3c, bucket: bucket, key: key, contentType: "text/csv",
		meta: map[string]string{"source-key": "raw/x.json"}, partSize: 5 << 20}
}

// write writes data in odd-sized chunks.
func write(t *testing.T, w *objectWriter, data []byte) error {
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

func TestObjectWriter(t *testing.T) {
	c, bucket := testenv.S3(t)
	data := bytes.Repeat([]byte("0123456789abcdef\n"), (12<<20)/17)
	for _, tc := range []struct {
		name string
		size int
		// multipart: the ETag of a multipart object ends in -<parts>
		parts string
	}{
		{"small", 1000, ""},
		{"one byte", 1, ""},
		{"exactly one part", 5 << 20, "-1"},
		{"parts", len(data), "-3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "processed/t/" + tc.name + ".csv"
			w := newWriter(c, bucket, key)
			if err := write(t, w, data[:tc.size]); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, out := get(t, c, bucket, key)
			if !bytes.Equal(got, data[:tc.size]) {
				t.Fatalf("object has %d bytes, want %d", len(got), tc.size)
			}
			if etag := strings.Trim(aws.ToString(out.ETag), `"`); tc.parts != "" && !strings.HasSuffix(etag, tc.parts) || tc.parts == "" && strings.Contains(etag, "-") {
				t.Errorf("ETag %s, want parts %q", etag, tc.parts)
			}
			if out.Metadata["source-key"] != "raw/x.json" || aws.ToString(out.ContentType) != "text/csv" {
				t.Errorf("metadata %v, content type %s", out.Metadata, aws.ToString(out.ContentType))
			}
		})
	}
	if got := uploadsInProgress(t, c, bucket); len(got) != 0 {
		t.Errorf("uploads left in progress: %q", got)
	}
}

// TestObjectWriterLeavesNothingOnFailure: a failed part, a failed Close or
// an Abort midway leave no object and no multipart upload in progress.
func TestObjectWriterLeavesNothingOnFailure(t *testing.T) {
	c, bucket := testenv.S3(t)
	data := bytes.Repeat([]byte("x"), 16<<20)
	flaky := &flakyS3{Client: c, failPut: func(k string) bool { return strings.Contains(k, "fail") }}

	w := newWriter(flaky, bucket, "processed/t/fail-part.csv")
	err := write(t, w, data)
	if err == nil {
		err = w.Close()
	}
	if !errors.Is(err, errUnavailable) {
		t.Errorf("failed part: err = %v", err)
	}
	_ = w.Abort()

	w = newWriter(c, bucket, "processed/t/aborted.csv")
	if err := write(t, w, data[:11<<20]); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}

	w = newWriter(flaky, bucket, "processed/t/fail-small.csv")
	if err := write(t, w, data[:100]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, errUnavailable) {
		t.Errorf("failed put: err = %v", err)
	}

	if got := list(t, c, bucket, ""); len(got) != 0 {
		t.Errorf("objects left: %q", got)
	}
	if got := uploadsInProgress(t, c, bucket); len(got) != 0 {
		t.Errorf("uploads left in progress: %q", got)
	}
}
