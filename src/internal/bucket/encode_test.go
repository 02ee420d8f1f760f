package bucket

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

func TestCopySource(t *testing.T) {
	for _, c := range []struct{ bucket, key, version, want string }{
		{"b", "raw/a+b c%ζ.json", "v1", "b/raw/a%2Bb%20c%25%CE%B6.json?versionId=v1"},
		{"b", "raw/x.json", "null", "b/raw/x.json"},
		{"b", "processed/x?y#z.csv", "", "b/processed/x%3Fy%23z.csv"},
		{"b", "k", "a+b/c", "b/k?versionId=a%2Bb%2Fc"},
	} {
		if got := CopySource(c.bucket, c.key, c.version); got != c.want {
			t.Errorf("CopySource(%q, %q, %q) = %q, want %q", c.bucket, c.key, c.version, got, c.want)
		}
	}
}

// Any key decodes back exactly, with no '+', space, '?', '#' or control
// byte left for a server to misread.
func FuzzCopySource(f *testing.F) {
	for _, k := range []string{"raw/character/page-0001.json", "raw/a b+c%.json", "raw/%41%2F.json", "processed/ζ-ünï€-日本.csv", "semi;colon&amp=x?y#z", "/"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if key == "" || !utf8.ValidString(key) { // S3 keys are non-empty UTF-8
			return
		}
		cs := CopySource("b", key, "")
		back, err := url.PathUnescape(strings.TrimPrefix(cs, "b/"))
		if err != nil || back != key {
			t.Fatalf("CopySource(%q) = %q decodes to %q (%v)", key, cs, back, err)
		}
		for i := 0; i < len(cs); i++ {
			if c := cs[i]; c <= ' ' || c >= 0x7f || c == '+' || c == '?' || c == '#' {
				t.Fatalf("CopySource(%q) = %q holds %q", key, cs, c)
			}
		}
	})
}

// FuzzEncodeKey: any key S3 announces comes out of the notification that
// EventRecord builds decoded exactly, as aws-lambda-go decodes it for the
// handlers; its quarantine copy and report stay under quarantine/ and within
// S3's key length.
func FuzzEncodeKey(f *testing.F) {
	for _, k := range []string{"processed/characters/character/page-0001.csv", "processed/characters/a b+c%.csv", "processed/x/%41%2F.csv",
		"processed/locations/ζ-ünï€-日本.csv", "processed/semi;colon&amp=x?y#z.csv", "processed/characters/", "processed//x.csv", "a", "/"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if key == "" || !utf8.ValidString(key) || len(key) > MaxKeyBytes { // S3 keys are non-empty UTF-8, at most 1,024 bytes
			return
		}
		body, err := json.Marshal(EventRecord(Created{Bucket: "b", Key: key, Size: 1, ETag: `"e"`}))
		if err != nil {
			t.Fatal(err)
		}
		var rec events.S3EventRecord
		if err := json.Unmarshal(body, &rec); err != nil {
			t.Fatalf("the notification of %q does not decode: %v", key, err)
		}
		if got := rec.S3.Object.URLDecodedKey; got != key {
			t.Fatalf("key %q came out of the notification as %q", key, got)
		}
		if q := QuarantineKey(key); !strings.HasPrefix(q, QuarantinePrefix) || len(ReportKey(key)) > MaxKeyBytes {
			t.Fatalf("QuarantineKey(%q) = %q", key, q)
		}
	})
}

func TestEventRecordShape(t *testing.T) {
	rec := EventRecord(Created{Bucket: "data", Key: "raw/character/page 1+2.json", Size: 42, ETag: `"abc"`, VersionID: "null", Time: time.Unix(0, 0)})
	if rec.S3.Object.Key != "raw/character/page+1%2B2.json" || rec.S3.Object.ETag != "abc" || rec.S3.Object.VersionID != "" ||
		rec.EventName != "ObjectCreated:Put" || rec.EventSource != "aws:s3" || rec.S3.Bucket.Arn != "arn:aws:s3:::data" {
		t.Errorf("record %+v", rec)
	}
}
