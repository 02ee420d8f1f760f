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

	"github.com/dataeng/rickmorty-pipeline/src/internal/transform"
)

// goneS3 is a bucket where no object exists; the handler must not write.
type goneS3 struct{ s3API }

func (goneS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, &types.NoSuchKey{}
}

// FuzzEventKey: whatever key an S3 event carries, Transform decodes it
// exactly once (as aws-lambda-go does, or itself when URLDecodedKey is
// empty), routes the record without panicking, and encodes it reversibly
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
			rec.S3.Bucket.Name, rec.S3.Object.Key = "b", eventKey(key)
			body, err := json.Marshal(events.S3Event{Records: []events.S3EventRecord{rec}})
			if err != nil {
				t.Fatal(err)
			}
			var ev events.S3Event
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatalf("S3's encoding %q of %q does not decode: %v", eventKey(key), key, err)
			}
			out := h.record(ctx, ev.Records[0])
			if out.Key != key {
				t.Fatalf("event key %q decoded to %q, want %q", eventKey(key), out.Key, key)
			}
			checkRouting(t, key, out)
		}

		// An event whose key was not decoded by the runtime: the handler decodes it.
		var raw events.S3EventRecord
		raw.EventSource, raw.EventName = "aws:s3", "ObjectCreated:Put"
		raw.S3.Bucket.Name, raw.S3.Object.Key = "b", key
		out := h.record(ctx, raw)
		dec, err := url.QueryUnescape(key)
		switch {
		case key == "":
			if out.Status != Skipped {
				t.Fatalf("empty key: %+v", out)
			}
		case err != nil:
			if out.Status != Skipped || !strings.Contains(out.Reason, "not URL-encoded") {
				t.Fatalf("undecodable key %q: %+v", key, out)
			}
		default:
			if out.Key != dec {
				t.Fatalf("key %q decoded to %q, want %q", key, out.Key, dec)
			}
			checkRouting(t, dec, out)
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
	object := strings.HasPrefix(key, transform.RawPrefix) && !strings.HasSuffix(key, "/")
	if got := out.Reason == "the object no longer exists"; got != object {
		t.Fatalf("%q: reason %q; an object under raw/ should be read, nothing else", key, out.Reason)
	}
	if object {
		for prefix, derived := range map[string]string{
			transform.ProcessedPrefix: transform.ProcessedKey("characters", key), transform.RejectedPrefix: transform.RejectedKey(key),
			transform.QuarantinePrefix: transform.QuarantineKey(key),
		} {
			if !strings.HasPrefix(derived, prefix) || strings.HasPrefix(derived, transform.RawPrefix) {
				t.Fatalf("%q: derived key %q is not under %s", key, derived, prefix)
			}
		}
	}
}
