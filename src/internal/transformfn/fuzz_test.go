package transformfn

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
)

// goneS3 is a bucket where no object exists; the handler must not write.
type goneS3 struct{ bucket.API }

func (goneS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, &types.NoSuchKey{}
}

// FuzzEventKey: whatever key an S3 event carries, the handler gets it
// decoded exactly once (by aws-lambda-go), routes the record without
// panicking, and encodes it reversibly
// wherever it sends it back to S3 (CopySource of a quarantine, metadata);
// the keys it derives stay under their prefixes.
func FuzzEventKey(f *testing.F) {
	for _, k := range []string{"raw/character/page-0001.json", "raw/character/page 1.json", "raw/a+b.json", "raw/100%.json",
		"raw/%41%2F.json", "raw/ζ-ünï€-日本.json", "raw/semi;colon&amp=x?y#z.json", "raw/", "raw//x.json", "processed/x.csv", "raw/tab\there.json", "%zz", ""} {
		f.Add(k)
	}
	h := New(Config{Bucket: "b"}, goneS3{}, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, key string) {
		ctx := context.Background()
		if utf8.ValidString(key) { // S3 keys are UTF-8
			var rec events.S3EventRecord
			rec.EventSource, rec.EventName = "aws:s3", "ObjectCreated:Put"
			rec.S3.Bucket.Name, rec.S3.Object.Key = "b", bucket.EncodeKey(key)
			body, err := json.Marshal(events.S3Event{Records: []events.S3EventRecord{rec}})
			if err != nil {
				t.Fatal(err)
			}
			var ev events.S3Event
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatalf("S3's encoding %q of %q does not decode: %v", bucket.EncodeKey(key), key, err)
			}
			out := h.record(ctx, ev.Records[0])
			if out.Key != key {
				t.Fatalf("event key %q decoded to %q, want %q", bucket.EncodeKey(key), out.Key, key)
			}
			checkRouting(t, key, out)
		}

		meta := escapeMeta(key)
		for i := 0; i < len(meta); i++ {
			if meta[i] < 0x20 || meta[i] >= 0x7f {
				t.Fatalf("escapeMeta(%q) = %q is not printable ASCII", key, meta)
			}
		}
		if back, err := url.PathUnescape(meta); err != nil || back != key {
			t.Fatalf("escapeMeta(%q) = %q decodes to %q (%v)", key, meta, back, err)
		}
	})
}

// checkRouting: a record for key is skipped with a reason unless it is an
// object under raw/, which is read (and found gone here).
func checkRouting(t *testing.T, key string, out Outcome) {
	t.Helper()
	if out.Status != Skipped || out.Reason == "" {
		t.Fatalf("%q: %+v, want skipped with a reason (nothing exists)", key, out)
	}
	object := strings.HasPrefix(key, bucket.RawPrefix) && !strings.HasSuffix(key, "/")
	if got := out.Reason == "the object no longer exists"; got != object {
		t.Fatalf("%q: reason %q; an object under raw/ should be read, nothing else", key, out.Reason)
	}
	if object {
		for prefix, derived := range map[string]string{
			bucket.ProcessedPrefix: bucket.ProcessedKey("characters", key), bucket.RejectedPrefix: bucket.RejectedKey(key),
			bucket.QuarantinePrefix: bucket.QuarantineKey(key),
		} {
			if !strings.HasPrefix(derived, prefix) || strings.HasPrefix(derived, bucket.RawPrefix) {
				t.Fatalf("%q: derived key %q is not under %s", key, derived, prefix)
			}
		}
	}
}
