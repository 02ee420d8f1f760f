package loadfn

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// TestSampleEventBatch runs the batch `sam local invoke -e` uses: two
// processed-file notifications and an s3:TestEvent. The objects are put in
// the test bucket under the event's keys; the bodies are rewritten to name
// the test bucket and the uploaded objects' ETags (the sample's version ids
// belong to a versioned bucket that MinIO's test bucket is not).
func TestSampleEventBatch(t *testing.T) {
	b, err := os.ReadFile("../../../events/load-sqs-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) != 3 {
		t.Fatalf("records = %d, want 3", len(ev.Records))
	}
	e := newEnv(t)
	crawl := loadtest.Crawl{Characters: 20, Locations: 5, Episodes: 4, FetchedAt: crawl1.FetchedAt}
	files := map[string][]byte{}
	for _, f := range crawl.Files() {
		files[f.Key] = f.Body
	}
	for i := range ev.Records {
		var body map[string]any
		if err := json.Unmarshal([]byte(ev.Records[i].Body), &body); err != nil {
			t.Fatal(err)
		}
		if recs, ok := body["Records"].([]any); ok {
			for _, r := range recs {
				s3 := r.(map[string]any)["s3"].(map[string]any)
				s3["bucket"].(map[string]any)["name"] = e.bucket
				obj := s3["object"].(map[string]any)
				key := obj["key"].(string)
				data, ok := files[key]
				if !ok {
					t.Fatalf("the sample names %s, which the generated crawl lacks", key)
				}
				ref := e.put(key, data)
				obj["eTag"] = ref.ETag[1 : len(ref.ETag)-1]
				delete(obj, "versionId")
			}
		} else {
			body["Bucket"] = e.bucket
		}
		nb, _ := json.Marshal(body)
		ev.Records[i].Body = string(nb)
	}

	h := e.handler(nil, "")
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want no failures", resp, err)
	}
	var chars, links int
	if err := e.db.QueryRow("SELECT (SELECT COUNT(*) FROM characters), (SELECT COUNT(*) FROM character_episodes)").Scan(&chars, &links); err != nil {
		t.Fatal(err)
	}
	if chars != 20 || links == 0 {
		t.Errorf("characters = %d, links = %d; want 20 and the links of page 1", chars, links)
	}
	log, err := warehousedb.LoadLog(context.Background(), e.db)
	if err != nil || len(log) != 2 {
		t.Errorf("load log = %+v, %v; want the two objects", log, err)
	}
	// The whole batch again: skipped by the load log, nothing fails.
	if resp, err := h.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Errorf("redelivery: %+v, %v", resp, err)
	}
}
