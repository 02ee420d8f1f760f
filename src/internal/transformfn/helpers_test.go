package transformfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// goldenFetchedAt is the fetch time of the transform package's golden files.
const goldenFetchedAt = "2026-11-22T06:00:03.512Z"

// newHandler returns a handler on a fresh MinIO bucket, and its outcomes.
func newHandler(t *testing.T) (*Handler, *s3.Client, string, *[]Outcome) {
	t.Helper()
	c, bkt := testenv.S3(t)
	h := New(Config{Bucket: bkt, PathStyle: true}, c, slog.New(slog.DiscardHandler))
	h.Now = func() time.Time { return time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC) }
	var outs []Outcome
	h.Observe = func(o Outcome) { outs = append(outs, o) }
	return h, c, bkt, &outs
}

// golden reads a file of the transform package's testdata.
func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "transform", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, c *s3.Client, bkt, key string, body []byte, meta map[string]string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bkt), Key: aws.String(key), Body: bytes.NewReader(body), Metadata: meta,
	}); err != nil {
		t.Fatalf("putting %s: %v", key, err)
	}
}

// get returns an object's body and metadata; nil when it does not exist.
func get(t *testing.T, c *s3.Client, bkt, key string) ([]byte, *s3.GetObjectOutput) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bkt), Key: aws.String(key)})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil, nil
	}
	if err != nil {
		t.Fatalf("getting %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, out
}

// list returns the keys under prefix, sorted.
func list(t *testing.T, c *s3.Client, bkt, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bkt), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys
}

// s3Event builds an event as S3 sends it, through JSON, so URLDecodedKey is
// decoded by aws-lambda-go exactly as in Lambda.
func s3Event(t *testing.T, bkt, name string, keys ...string) events.S3Event {
	t.Helper()
	var ev events.S3Event
	for _, k := range keys {
		ev.Records = append(ev.Records, bucket.EventRecord(bucket.Created{Bucket: bkt, Key: k, EventName: name,
			Time: time.Date(2026, 11, 22, 6, 0, 4, 0, time.UTC)}))
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var back events.S3Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}
