package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// TestTransformPrefix runs the command's core against MinIO: every object
// under the prefix goes through the handler as an S3 event, keys with
// spaces, '+', '%' and unicode included.
func TestTransformPrefix(t *testing.T) {
	c, bkt := testenv.S3(t)
	page, err := os.ReadFile("../../internal/transform/testdata/episode-page.json")
	if err != nil {
		t.Fatal(err)
	}
	objects := map[string][]byte{
		"raw/episode/page-0001.json":   page,
		"raw/manual/a+b c 100% ζ.json": page,
		"raw/manual/broken.json":       page[:100],
		"other/episode/x.json":         page,
	}
	for k, b := range objects {
		if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bkt), Key: aws.String(k), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := transformPrefix(context.Background(), c, bkt, "raw/", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 3 || res.Transformed != 2 || res.Quarantined != 1 || res.Rows["episodes"] != 8 || len(res.Problems) != 1 {
		t.Errorf("result %+v", res)
	}
	for _, k := range []string{"raw/episode/page-0001.json", "raw/manual/a+b c 100% ζ.json"} {
		if _, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bkt), Key: aws.String(bucket.ProcessedKey("episodes", k))}); err != nil {
			t.Errorf("%s: %v", bucket.ProcessedKey("episodes", k), err)
		}
	}
	var human strings.Builder
	res.Human(&human)
	if !strings.Contains(human.String(), "transformed 2 of 3 objects") || !strings.Contains(human.String(), "quarantined raw/manual/broken.json") {
		t.Errorf("human output:\n%s", human.String())
	}
}
