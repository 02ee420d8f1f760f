package loadfn

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// TestSnapshotChain runs the real API snapshot through the chain: raw
// objects in S3 → Transform's handler → processed objects → their S3
// notifications in SQS messages → Load's handler → rows: 826 characters,
// 126 locations, 51 episodes and 1268 links. Delivered twice, shuffled, it
// leaves the same tables.
func TestSnapshotChain(t *testing.T) {
	dir := testenv.Snapshot(t)
	e := newEnv(t)
	ctx := context.Background()
	tf := transformfn.New(transformfn.Config{Bucket: e.bucket, PathStyle: true}, e.s3, discard)
	for _, resource := range []string{"character", "location", "episode"} {
		b, err := os.ReadFile(filepath.Join(dir, resource+".json"))
		if err != nil {
			t.Fatal(err)
		}
		// The snapshot is one JSON array per resource, which Transform accepts as is.
		key := "raw/" + resource + "/snapshot.json"
		obj := e.put(key, b)
		ev := events.S3Event{Records: []events.S3EventRecord{{
			EventSource: "aws:s3", EventName: "ObjectCreated:Put", EventTime: time.Now(),
			S3: events.S3Entity{Bucket: events.S3Bucket{Name: e.bucket}, Object: events.S3Object{Key: key, URLDecodedKey: key, ETag: obj.ETag, Size: int64(len(b))}},
		}}}
		if err := tf.Handle(ctx, ev); err != nil {
			t.Fatalf("transforming %s: %v", key, err)
		}
	}
	var msgs []events.SQSMessage
	p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: aws.String(e.bucket), Prefix: aws.String(bucket.ProcessedPrefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			ref := load.ObjectRef{Bucket: e.bucket, Key: aws.ToString(o.Key), ETag: aws.ToString(o.ETag)}
			msgs = append(msgs, Message(aws.ToString(o.Key), ref, aws.ToInt64(o.Size), time.Now()))
		}
	}
	if len(msgs) == 0 {
		t.Fatal("Transform wrote nothing under processed/")
	}
	h := e.handler(nil, "")
	rejected := 0
	h.Observe = func(o Outcome) {
		if o.Status != Loaded && o.Status != Skipped {
			rejected++
			t.Errorf("%s: %s: %s", o.Key, o.Status, o.Reason)
		}
	}
	if failed := deliver(t, h, msgs); len(failed) > 0 || rejected > 0 {
		t.Fatalf("failed: %v", failed)
	}
	for table, want := range map[string]int{"characters": 826, "locations": 126, "episodes": 51, "character_episodes": 1268} {
		var n int
		if err := e.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil || n != want {
			t.Errorf("%s: %d rows (%v), want %d", table, n, err, want)
		}
	}
	var quirky int
	if err := e.db.QueryRow("SELECT COUNT(*) FROM characters WHERE name LIKE '%’%' OR name LIKE '%ζ%' OR name LIKE '%Á%' COLLATE utf8mb4_bin").Scan(&quirky); err != nil {
		t.Fatal(err)
	}
	t.Logf("characters with ’, ζ or Á in their name: %d", quirky)
	before := dumps(t, e.db, warehousedb.DumpAll)
	if failed := deliver(t, h, msgs); len(failed) > 0 {
		t.Fatalf("redelivery failed: %v", failed)
	}
	after := dumps(t, e.db, warehousedb.DumpAll)
	compareDumps(t, "after redelivering every file", after, before)
}
