package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

// rawPage is a real API page Transform reads.
func rawPage(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../internal/transform/testdata/episode-page.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putRaw stores body at key as Extract does: JSON, with its source URL,
// fetch time and SHA-256 in the metadata.
func putRaw(t *testing.T, c *s3.Client, bkt, key string, body []byte) map[string]string {
	t.Helper()
	meta := map[string]string{
		bucket.MetaSourceURL: "https://rickandmortyapi.com/api/episode?page=1",
		bucket.MetaFetchedAt: "2024-05-01T10:20:30.123456789Z",
		"sha256":             strings.Repeat("ab", 32),
	}
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bkt), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"), Metadata: meta,
	})
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

// stored is what S3 says of one object.
type stored struct {
	etag     string
	modified time.Time // from the listing: millisecond precision, unlike HEAD's
}

func listStored(t *testing.T, c *s3.Client, bkt string) map[string]stored {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bkt)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]stored{}
	for _, o := range out.Contents {
		m[aws.ToString(o.Key)] = stored{etag: aws.ToString(o.ETag), modified: aws.ToTime(o.LastModified)}
	}
	return m
}

// spyS3 is the real client with its calls counted, the copies in flight
// measured and, per key, a fault injected after HEAD or instead of a copy.
type spyS3 struct {
	*s3.Client
	afterHead map[string]func() // run after the HEAD of the key
	failCopy  map[string]error  // returned instead of copying the key

	mu               sync.Mutex
	heads, copies    int
	inFlight, maxFly int
}

func (s *spyS3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	s.mu.Lock()
	s.heads++
	s.mu.Unlock()
	out, err := s.Client.HeadObject(ctx, in, opts...)
	if fn := s.afterHead[aws.ToString(in.Key)]; fn != nil {
		fn()
	}
	return out, err
}

func (s *spyS3) CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	s.mu.Lock()
	s.copies++
	s.inFlight++
	s.maxFly = max(s.maxFly, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if err := s.failCopy[aws.ToString(in.Key)]; err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Millisecond) // let copies overlap, so that a broken limit shows
	return s.Client.CopyObject(ctx, in, opts...)
}

// Copying onto itself keeps each object's bytes, ETag, Content-Type and
// every metadata entry, gives it a new LastModified, and touches nothing
// outside the prefix or not ending in .json.
func TestReprocessCopiesOntoThemselves(t *testing.T) {
	c, bkt := testenv.S3(t)
	page := rawPage(t)
	bodies := map[string][]byte{
		"raw/character/page-0001.json":    page,
		"raw/character/page-0002.json":    page[:200], // not valid JSON: reprocess does not read it
		"raw/character/a+b c 100% ζ.json": []byte(`[]`),
	}
	metas := map[string]map[string]string{}
	for k, b := range bodies {
		metas[k] = putRaw(t, c, bkt, k, b)
	}
	putRaw(t, c, bkt, "raw/character/notes.txt", []byte("not a page"))
	putRaw(t, c, bkt, "raw/episode/page-0001.json", page)
	before := listStored(t, c, bkt)
	time.Sleep(5 * time.Millisecond) // LastModified has millisecond precision: make "later" observable

	spy := &spyS3{Client: c}
	rp := reprocessor{bucket: bucket.New(spy, bkt), concurrency: 2}
	res, err := rp.run(context.Background(), "raw/character/", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 3 || res.Copied != 3 || res.Ignored != 1 || res.Failed != 0 || res.Skipped != 0 ||
		res.Bytes != int64(len(page)+200+2) || spy.copies != 3 {
		t.Errorf("result %+v, %d copies", res, spy.copies)
	}
	if spy.maxFly > 2 {
		t.Errorf("%d copies in flight, limit 2", spy.maxFly)
	}
	after := listStored(t, c, bkt)
	for k, want := range bodies {
		get, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bkt), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		got, err := io.ReadAll(get.Body)
		get.Body.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: bytes changed (%v): %q", k, err, got)
		}
		if ct := aws.ToString(get.ContentType); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", k, ct)
		}
		if !maps.Equal(get.Metadata, metas[k]) {
			t.Errorf("%s: metadata %v, want %v", k, get.Metadata, metas[k])
		}
		if after[k].etag != before[k].etag || !after[k].modified.After(before[k].modified) {
			t.Errorf("%s: before %+v, after %+v: want the same ETag and a later LastModified", k, before[k], after[k])
		}
	}
	for _, k := range []string{"raw/character/notes.txt", "raw/episode/page-0001.json"} {
		if after[k] != before[k] {
			t.Errorf("%s was rewritten: before %+v, after %+v", k, before[k], after[k])
		}
	}
}

// A dry run lists the keys, their sizes and the total, and writes nothing.
func TestReprocessDryRun(t *testing.T) {
	c, bkt := testenv.S3(t)
	putRaw(t, c, bkt, "raw/location/page-0001.json", []byte(`{"results":[]}`))
	putRaw(t, c, bkt, "raw/location/page-0002.json", []byte(`[]`))
	putRaw(t, c, bkt, "raw/location/readme.md", []byte(`#`))
	before := listStored(t, c, bkt)
	time.Sleep(5 * time.Millisecond)

	spy := &spyS3{Client: c}
	rp := reprocessor{bucket: bucket.New(spy, bkt), concurrency: 8}
	res, err := rp.run(context.Background(), "raw/", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []reprocessObject{
		{Key: "raw/location/page-0001.json", Size: 14, Status: reprocessListed},
		{Key: "raw/location/page-0002.json", Size: 2, Status: reprocessListed},
	}
	if !slices.Equal(res.Objects, want) || res.Count != 2 || res.Bytes != 16 || res.Ignored != 1 || !res.DryRun {
		t.Errorf("result %+v", res)
	}
	if spy.heads+spy.copies != 0 {
		t.Errorf("dry run made %d HEADs and %d copies", spy.heads, spy.copies)
	}
	if after := listStored(t, c, bkt); !maps.Equal(after, before) {
		t.Errorf("objects changed:\nbefore %v\nafter  %v", before, after)
	}
	var human strings.Builder
	res.Human(&human)
	for _, s := range []string{"14  raw/location/page-0001.json", "2  raw/location/page-0002.json", "would copy 2 objects (16 bytes)", "nothing written"} {
		if !strings.Contains(human.String(), s) {
			t.Errorf("human output lacks %q:\n%s", s, human.String())
		}
	}
}

// A failed copy names its key and reason and the others go on; an object
// rewritten between its HEAD and its copy is skipped, keeping the new
// write's bytes and metadata.
func TestReprocessFailuresDoNotStopTheOthers(t *testing.T) {
	c, bkt := testenv.S3(t)
	for _, k := range []string{"raw/a/page-0001.json", "raw/a/page-0002.json", "raw/a/page-0003.json"} {
		putRaw(t, c, bkt, k, []byte(`[]`))
	}
	newer := map[string]string{"sha256": "newer"}
	spy := &spyS3{
		Client:   c,
		failCopy: map[string]error{"raw/a/page-0001.json": errors.New("injected: access denied")},
		afterHead: map[string]func(){"raw/a/page-0002.json": func() {
			_, err := c.PutObject(context.Background(), &s3.PutObjectInput{
				Bucket: aws.String(bkt), Key: aws.String("raw/a/page-0002.json"),
				Body: strings.NewReader(`[{"id":1}]`), Metadata: newer,
			})
			if err != nil {
				t.Error(err)
			}
		}},
	}
	rp := reprocessor{bucket: bucket.New(spy, bkt), concurrency: 8}
	res, err := rp.run(context.Background(), "raw/a/", false)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 objects failed") {
		t.Errorf("error %v", err)
	}
	if res.Copied != 1 || res.Failed != 1 || res.Skipped != 1 {
		t.Errorf("result %+v", res)
	}
	byKey := map[string]reprocessObject{}
	for _, o := range res.Objects {
		byKey[o.Key] = o
	}
	if o := byKey["raw/a/page-0001.json"]; o.Status != reprocessFailed || !strings.Contains(o.Reason, "injected: access denied") {
		t.Errorf("failed object %+v", o)
	}
	if o := byKey["raw/a/page-0002.json"]; o.Status != reprocessSkipped || !strings.Contains(o.Reason, "rewritten") {
		t.Errorf("rewritten object %+v", o)
	}
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bkt), Key: aws.String("raw/a/page-0002.json")})
	if err != nil || !maps.Equal(head.Metadata, newer) || aws.ToInt64(head.ContentLength) != 10 {
		t.Errorf("the newer write was overwritten: %v %+v", err, head)
	}
	var human strings.Builder
	res.Human(&human)
	if !strings.Contains(human.String(), "failed s3://"+bkt+"/raw/a/page-0001.json: copying s3://"+bkt+"/raw/a/page-0001.json onto itself: injected: access denied") {
		t.Errorf("human output:\n%s", human.String())
	}
}

func TestCheckRawPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"raw/", true},
		{"raw/character/", true},
		{"raw/character/page-00", true},
		{"", false},
		{"raw", false},
		{"rawdata/", false},
		{"/raw/", false},
		{"processed/", false},
		{"processed/raw/", false},
		{"quarantine/raw/", false},
	} {
		err := checkRawPrefix(tc.prefix)
		if (err == nil) != tc.ok {
			t.Errorf("checkRawPrefix(%q) = %v, want ok %v", tc.prefix, err, tc.ok)
		}
	}
}

// The command refuses a prefix outside raw/ and a missing bucket before it
// talks to S3.
func TestReprocessCommandRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bucket", "b", "--prefix", "processed/"}, `--prefix "processed/" is not under raw/`},
		{[]string{"--bucket", "b", "--prefix", ""}, `--prefix "" is not under raw/`},
		{[]string{"--prefix", "raw/"}, "--bucket is required"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"reprocess"}, tc.args...), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// setAWSEnv points the default SDK configuration at env only, not at the
// user's profile.
func setAWSEnv(t *testing.T, env []string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	for _, name := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(name, "")
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// The command, with the SDK's default configuration aimed at MinIO by
// AWS_ENDPOINT_URL.
func TestReprocessCommandMinIO(t *testing.T) {
	c, bkt := testenv.S3(t)
	putRaw(t, c, bkt, "raw/episode/page-0001.json", rawPage(t))
	putRaw(t, c, bkt, "raw/episode/page-0002.json", []byte(`[]`))
	creds, err := testenv.S3Config().Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	setAWSEnv(t, []string{
		"AWS_ENDPOINT_URL=" + testenv.S3Endpoint(), "AWS_REGION=us-east-1", "S3_FORCE_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
	})
	before := listStored(t, c, bkt)
	time.Sleep(5 * time.Millisecond)

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"reprocess", "--bucket", bkt, "--dry-run"}, &stdout, &stderr); code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "would copy 2 objects") || !maps.Equal(listStored(t, c, bkt), before) {
		t.Errorf("dry run: %s", stdout.String())
	}

	stdout.Reset()
	if code := run(context.Background(), []string{"reprocess", "--bucket", bkt, "--prefix", "raw/episode/", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res reprocessResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if res.Copied != 2 || res.Count != 2 {
		t.Errorf("result %+v", res)
	}
	for k, s := range listStored(t, c, bkt) {
		if !s.modified.After(before[k].modified) {
			t.Errorf("%s was not copied: %+v", k, s)
		}
	}
}

// Against the local stack, each reprocessed object produces exactly one
// ObjectCreated notification, and the Transform handler given that
// notification transforms the object again (it has no "unchanged" skip).
func TestReprocessEmitsObjectCreated(t *testing.T) {
	srv, err := locals3.Start(context.Background(), locals3.Options{DataDir: t.TempDir(), Bucket: localBucket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c := srv.Client()
	page := rawPage(t)
	reprocessed := []string{"raw/episode/page-0001.json", "raw/episode/page-0002.json", "raw/manual/one episode.json"}
	for _, k := range reprocessed {
		putRaw(t, c, srv.Bucket(), k, page)
	}
	putRaw(t, c, srv.Bucket(), "raw/episode/notes.txt", []byte("x"))
	putRaw(t, c, srv.Bucket(), "processed/episodes/x.json", page)

	var mu sync.Mutex
	var events []locals3.ObjectCreated
	srv.OnObjectCreated(func(ev locals3.ObjectCreated) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	})
	setAWSEnv(t, srv.Env())
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"reprocess", "--bucket", srv.Bucket()}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "reprocessed 3 of 3 objects") {
		t.Errorf("output: %s", stdout.String())
	}

	mu.Lock()
	got := slices.Clone(events)
	mu.Unlock()
	var keys []string
	for _, ev := range got {
		keys = append(keys, ev.Key)
		if ev.EventName != locals3.EventCopy || ev.Bucket != srv.Bucket() || ev.Size != int64(len(page)) {
			t.Errorf("event %+v", ev)
		}
	}
	slices.Sort(keys)
	if !slices.Equal(keys, reprocessed) {
		t.Errorf("ObjectCreated for %q, want one each for %q", keys, reprocessed)
	}

	h := transformfn.New(transformfn.Config{Bucket: srv.Bucket(), PathStyle: true}, c, slog.New(slog.DiscardHandler))
	var outcomes []transformfn.Outcome
	h.Observe = func(o transformfn.Outcome) { outcomes = append(outcomes, o) }
	for _, ev := range got {
		s3ev, err := objectCreatedEvent(ev.Bucket, types.Object{Key: aws.String(ev.Key), Size: aws.Int64(ev.Size), ETag: aws.String(ev.ETag)}, ev.Time)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Handle(context.Background(), s3ev); err != nil {
			t.Error(err)
		}
	}
	for _, o := range outcomes {
		if o.Status != transformfn.Transformed || o.Report.Rows["episodes"] != 4 {
			t.Errorf("%s: %s %s", o.Key, o.Status, o.Reason)
		}
	}
	if len(outcomes) != len(reprocessed) {
		t.Errorf("%d outcomes", len(outcomes))
	}
}
