package transformfn

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestSampleEvent runs events/transform-s3-put.json (what `sam local invoke`
// uses) against MinIO, with a page at its URL-decoded key (the first page of
// characters, which `make run` leaves in the local stack).
func TestSampleEvent(t *testing.T) {
	b, err := os.ReadFile("../../../events/transform-s3-put.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.S3Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	const key = "raw/character/page-0001.json"
	if got := ev.Records[0].S3.Object.URLDecodedKey; got != key {
		t.Fatalf("URLDecodedKey = %q, want %q", got, key)
	}
	h, c, bkt, outs := newHandler(t)
	ev.Records[0].S3.Bucket.Name = bkt // the sample names the local stack's bucket
	put(t, c, bkt, key, golden(t, "character-page.json"), map[string]string{"fetched-at": goldenFetchedAt})
	if err := h.Handle(context.Background(), ev); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	for table, want := range map[string]string{
		"characters":         "character-page.characters.golden.csv",
		"character_episodes": "character-page.character_episodes.golden.csv",
	} {
		pkey := "processed/" + table + "/character/page-0001.csv"
		got, out := get(t, c, bkt, pkey)
		if !bytes.Equal(got, golden(t, want)) {
			t.Errorf("%s:\n%s\nwant the golden %s", pkey, got, want)
		}
		if out == nil {
			continue
		}
		if m := out.Metadata; m["source-key"] != key || m["fetched-at"] != goldenFetchedAt || m["source-etag"] == "" {
			t.Errorf("%s metadata %v", pkey, m)
		}
		if ct := aws.ToString(out.ContentType); ct != "text/csv; charset=utf-8" {
			t.Errorf("%s content type %q", pkey, ct)
		}
	}
	if got := list(t, c, bkt, "rejected/"); len(got) != 0 {
		t.Errorf("rejected files %v", got)
	}
	if len(*outs) != 1 || (*outs)[0].Status != Transformed || (*outs)[0].Report.Rows["characters"] != 4 {
		t.Errorf("outcomes %+v", *outs)
	}
}
