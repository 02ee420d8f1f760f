package transformfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transform"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transform/transformtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// TestHostileKeys: keys with spaces, '+', '%', unicode arrive URL-encoded
// in the event; outputs land under the decoded key.
func TestHostileKeys(t *testing.T) {
	h, c, bkt, outs := newHandler(t)
	keys := []string{
		"raw/manual/a+b c.json",
		"raw/manual/100% ζ/Ω page?.json",
		"raw/character/page 1 (copy)&x=y#z.json",
		"raw/manual/%41%2B.json",
	}
	page := golden(t, "location-page.json")
	for _, k := range keys {
		put(t, c, bkt, k, page, map[string]string{"fetched-at": goldenFetchedAt})
	}
	if err := h.Handle(context.Background(), s3Event(t, bkt, "ObjectCreated:Put", keys...)); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	want := golden(t, "location-page.locations.golden.csv")
	for i, k := range keys {
		if (*outs)[i].Key != k || (*outs)[i].Status != Transformed {
			t.Errorf("outcome %d: %+v", i, (*outs)[i])
		}
		pkey := bucket.ProcessedKey("locations", k)
		got, out := get(t, c, bkt, pkey)
		if !bytes.Equal(got, want) {
			t.Errorf("%q: got %q", pkey, got)
			continue
		}
		if m := out.Metadata["source-key"]; m != escapeMeta(k) {
			t.Errorf("%q source-key %q", pkey, m)
		}
	}
	if got := list(t, c, bkt, "processed/"); len(got) != len(keys) {
		t.Errorf("processed objects %q", got)
	}
}

// TestQuarantine: an unreadable object is copied to quarantine/ with a
// report, nothing reaches processed/, and the invocation succeeds.
func TestQuarantine(t *testing.T) {
	page := golden(t, "character-page.json")
	for _, tc := range []struct {
		name   string
		body   []byte
		reason string
	}{
		{"truncated", page[:len(page)-40], "truncated JSON"},
		{"empty", nil, "empty object"},
		{"not utf-8", append([]byte(`[{"name":"caf`), 0xE9, '"', '}', ']'), "not valid UTF-8 at byte 13"},
		{"api error", []byte(`{"error":"There is nothing here"}`), "an API error response"},
		{"wrong shape", []byte(`"results"`), "not an API response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, c, bkt, outs := newHandler(t)
			key := "raw/character/page 0001+" + tc.name + ".json"
			put(t, c, bkt, key, tc.body, map[string]string{"fetched-at": goldenFetchedAt})
			if err := h.Handle(context.Background(), s3Event(t, bkt, "ObjectCreated:Put", key)); err != nil {
				t.Fatalf("Handle = %v, want nil (quarantined)", err)
			}
			if o := (*outs)[0]; o.Status != Quarantined || !strings.Contains(o.Reason, tc.reason) {
				t.Errorf("outcome %+v, want quarantined for %q", o, tc.reason)
			}
			copied, _ := get(t, c, bkt, bucket.QuarantineKey(key))
			if copied == nil || !bytes.Equal(copied, tc.body) {
				t.Errorf("quarantined copy = %q, want the object", copied)
			}
			rb, _ := get(t, c, bkt, bucket.ReportKey(key))
			var rep bucket.Report
			if err := json.Unmarshal(rb, &rep); err != nil {
				t.Fatalf("error report %q: %v", rb, err)
			}
			if rep.Key != key || rep.Bucket != bkt || !strings.Contains(rep.Reason, tc.reason) || rep.Size != int64(len(tc.body)) ||
				rep.ETag == "" || rep.Time.IsZero() || rep.FetchedAt.Format(warehouse.TimeLayout) != goldenFetchedAt {
				t.Errorf("error report %+v", rep)
			}
			if got := list(t, c, bkt, "processed/"); len(got) != 0 {
				t.Errorf("processed objects %q after an invalid object", got)
			}
			if got := list(t, c, bkt, "quarantine/"); len(got) != 2 {
				t.Errorf("quarantine holds %q", got)
			}
		})
	}
}

// TestRejectedFile: rejected records go to rejected/<...>.jsonl; once the
// object is fixed, the stale file goes away.
func TestRejectedFile(t *testing.T) {
	h, c, bkt, _ := newHandler(t)
	key := "raw/character/rejects.json"
	put(t, c, bkt, key, golden(t, "character-rejects.json"), map[string]string{"fetched-at": goldenFetchedAt})
	ev := s3Event(t, bkt, "ObjectCreated:Put", key)
	if err := h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	got, out := get(t, c, bkt, "rejected/character/rejects.jsonl")
	if !bytes.Equal(got, golden(t, "character-rejects.rejected.golden.jsonl")) {
		t.Errorf("rejected file:\n%s", got)
	}
	if out != nil && out.Metadata["source-key"] != key {
		t.Errorf("rejected metadata %v", out.Metadata)
	}
	if got, _ := get(t, c, bkt, "processed/characters/character/rejects.csv"); !bytes.Equal(got, golden(t, "character-rejects.characters.golden.csv")) {
		t.Errorf("processed characters:\n%s", got)
	}
	put(t, c, bkt, key, golden(t, "character-page.json"), map[string]string{"fetched-at": goldenFetchedAt})
	if err := h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got := list(t, c, bkt, "rejected/"); len(got) != 0 {
		t.Errorf("stale rejected files %q", got)
	}
	if got, _ := get(t, c, bkt, "processed/characters/character/rejects.csv"); !bytes.Equal(got, golden(t, "character-page.characters.golden.csv")) {
		t.Errorf("processed characters after the fix:\n%s", got)
	}
}

// TestRerunWritesIdenticalObjects: the same raw object gives the same
// processed bytes and ETags.
func TestRerunWritesIdenticalObjects(t *testing.T) {
	h, c, bkt, _ := newHandler(t)
	key := "raw/episode/page-0001.json"
	put(t, c, bkt, key, golden(t, "episode-page.json"), map[string]string{"fetched-at": goldenFetchedAt})
	ev := s3Event(t, bkt, "ObjectCreated:Put", key)
	snapshot := func() map[string]string {
		m := map[string]string{}
		for _, k := range list(t, c, bkt, "processed/") {
			b, out := get(t, c, bkt, k)
			m[k] = string(b) + aws.ToString(out.ETag)
		}
		return m
	}
	if err := h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	first := snapshot()
	if err := h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if second := snapshot(); len(first) != 2 || !mapsEqual(first, second) {
		t.Errorf("first run %v\nsecond run %v", first, second)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestFetchedAtFallsBackToLastModified: without fetched-at metadata the
// rows carry the raw object's LastModified.
func TestFetchedAtFallsBackToLastModified(t *testing.T) {
	h, c, bkt, _ := newHandler(t)
	key := "raw/location/x.json"
	put(t, c, bkt, key, golden(t, "location-single.json"), nil)
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bkt), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(context.Background(), s3Event(t, bkt, "ObjectCreated:Put", key)); err != nil {
		t.Fatal(err)
	}
	got, out := get(t, c, bkt, "processed/locations/location/x.csv")
	want := warehouse.FormatTime(*head.LastModified)
	if !strings.HasSuffix(strings.TrimSpace(string(got)), ","+want) || out.Metadata["fetched-at"] != want {
		t.Errorf("got %q (metadata %v), want fetched_at %s", got, out.Metadata, want)
	}
}

// TestSkips: records that are not for this function do nothing and do not
// fail the invocation.
func TestSkips(t *testing.T) {
	h, c, bkt, outs := newHandler(t)
	put(t, c, bkt, "raw/character/p.json", golden(t, "character-page.json"), nil)
	put(t, c, bkt, "processed/characters/x.csv", []byte("id\n"), nil)
	ev := s3Event(t, bkt, "ObjectCreated:Put", "processed/characters/x.csv", "raw/character/gone.json", "raw/character/")
	ev.Records = append(ev.Records, s3Event(t, bkt, "ObjectRemoved:Delete", "raw/character/p.json").Records...)
	ev.Records = append(ev.Records, s3Event(t, "another-bucket", "ObjectCreated:Put", "raw/character/p.json").Records...)
	if err := h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	for _, o := range *outs {
		if o.Status != Skipped || o.Reason == "" {
			t.Errorf("outcome %+v, want skipped with a reason", o)
		}
	}
	if len(*outs) != 5 {
		t.Errorf("%d outcomes, want 5", len(*outs))
	}
	if got := list(t, c, bkt, ""); !slices.Equal(got, []string{"processed/characters/x.csv", "raw/character/p.json"}) {
		t.Errorf("bucket holds %q", got)
	}
}

// flakyS3 fails chosen calls of the real client.
type flakyS3 struct {
	*s3.Client
	failGet    string                // GetObject of this key fails
	brokenBody string                // GetObject of this key returns a body that breaks halfway
	failPut    func(key string) bool // PutObject and UploadPart of matching keys fail
}

var errUnavailable = errors.New("503 SlowDown: service unavailable")

func (f *flakyS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if aws.ToString(in.Key) == f.failGet {
		return nil, errUnavailable
	}
	out, err := f.Client.GetObject(ctx, in, opts...)
	if err == nil && aws.ToString(in.Key) == f.brokenBody {
		out.Body = &brokenBody{out.Body, aws.ToInt64(out.ContentLength) / 2}
	}
	return out, err
}

// brokenBody is a response body whose connection drops after left bytes.
type brokenBody struct {
	io.ReadCloser
	left int64
}

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

func (f *flakyS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.failPut != nil && f.failPut(aws.ToString(in.Key)) {
		return nil, errUnavailable
	}
	return f.Client.PutObject(ctx, in, opts...)
}

func (f *flakyS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if f.failPut != nil && f.failPut(aws.ToString(in.Key)) && aws.ToInt32(in.PartNumber) > 1 {
		return nil, errUnavailable
	}
	return f.Client.UploadPart(ctx, in, opts...)
}

// TestTransientFailures: S3 errors fail the invocation (Lambda retries) but
// every other record of the event is still transformed, and no partial
// processed object is left.
func TestTransientFailures(t *testing.T) {
	h, c, bkt, outs := newHandler(t)
	flaky := &flakyS3{Client: c, failGet: "raw/character/a.json", brokenBody: "raw/character/b.json",
		failPut: func(k string) bool { return strings.HasPrefix(k, "processed/character_episodes/character/c") }}
	h.bucket = bucket.New(flaky, bkt)
	keys := []string{"raw/character/a.json", "raw/character/b.json", "raw/character/c.json", "raw/character/ok.json"}
	for _, k := range keys {
		put(t, c, bkt, k, golden(t, "character-page.json"), nil)
	}
	err := h.Handle(context.Background(), s3Event(t, bkt, "ObjectCreated:Put", keys...))
	if !errors.Is(err, errUnavailable) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Handle = %v, want the S3 errors", err)
	}
	for i, want := range []Status{Failed, Failed, Failed, Transformed} {
		if (*outs)[i].Status != want {
			t.Errorf("%s: %+v, want %s", keys[i], (*outs)[i], want)
		}
	}
	got := list(t, c, bkt, "processed/")
	// c.json: characters was committed before character_episodes failed; the
	// retry rewrites it identically. b.json (broken stream) wrote nothing.
	want := []string{"processed/character_episodes/character/ok.csv", "processed/characters/character/c.csv", "processed/characters/character/ok.csv"}
	if !slices.Equal(got, want) {
		t.Errorf("processed objects %q, want %q", got, want)
	}
	if got := list(t, c, bkt, "quarantine/"); len(got) != 0 {
		t.Errorf("transient failures quarantined %q", got)
	}
	// The retry, with S3 healthy again, completes the work.
	h.bucket = bucket.New(c, bkt)
	*outs = nil
	if err := h.Handle(context.Background(), s3Event(t, bkt, "ObjectCreated:Put", keys...)); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := list(t, c, bkt, "processed/"); len(got) != 8 {
		t.Errorf("after the retry: %q", got)
	}
}

// TestLargeObjectMultipart streams a 36 MB raw page through 5 MiB parts and
// gets the same bytes as Transform into memory.
func TestLargeObjectMultipart(t *testing.T) {
	if testing.Short() {
		t.Skip("36 MB through MinIO")
	}
	h, c, bkt, outs := newHandler(t)
	h.partSize = 5 << 20
	raw, err := io.ReadAll(transformtest.CharacterPage(36 << 20))
	if err != nil {
		t.Fatal(err)
	}
	key := "raw/character/huge.json"
	put(t, c, bkt, key, raw, map[string]string{"fetched-at": goldenFetchedAt})
	if err := h.Handle(context.Background(), s3Event(t, bkt, "ObjectCreated:Put", key)); err != nil {
		t.Fatal(err)
	}
	mem := memSink{}
	ts, _ := time.Parse(time.RFC3339, goldenFetchedAt)
	if _, err := transform.Transform(context.Background(), key, ts, bytes.NewReader(raw), mem); err != nil {
		t.Fatal(err)
	}
	if mem["characters"].Len() <= h.partSize {
		t.Fatalf("characters CSV is %d bytes, not more than a part", mem["characters"].Len())
	}
	for name, want := range mem {
		got, out := get(t, c, bkt, bucket.ProcessedKey(name, key))
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: %d bytes, want %d", name, len(got), want.Len())
		}
		if len(got) > h.partSize && !strings.Contains(aws.ToString(out.ETag), "-") {
			t.Errorf("%s (%d bytes) was not a multipart upload: ETag %s", name, len(got), aws.ToString(out.ETag))
		}
	}
	if (*outs)[0].Status != Transformed {
		t.Errorf("outcome %+v", (*outs)[0])
	}
}

type memSink map[string]*bytes.Buffer

func (m memSink) Create(name string) (io.Writer, error) {
	b := new(bytes.Buffer)
	m[name] = b
	return b, nil
}
