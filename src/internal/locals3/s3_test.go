//lint:file-ignore SA1019 the SDK's manager.Uploader is what many users still call; the endpoint must serve it

package locals3_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
)

const bucket = "data"

// events records the notifications of a server.
type events struct {
	mu  sync.Mutex
	evs []locals3.ObjectCreated
}

func (e *events) add(ev locals3.ObjectCreated) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) list() []locals3.ObjectCreated {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.evs)
}

// startS3 starts a server on a fresh data dir and returns it with a client
// and the recorder of its notifications.
func startS3(tb testing.TB, dataDir string) (*locals3.Server, *s3.Client, *events) {
	tb.Helper()
	srv, err := locals3.Start(context.Background(), locals3.Options{DataDir: dataDir, Bucket: bucket})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Error(err)
		}
	})
	evs := &events{}
	srv.OnObjectCreated(evs.add)
	return srv, srv.Client(), evs
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// onlyReader hides every method but Read: the SDK cannot seek it nor learn its length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(tb testing.TB, c *s3.Client, key, body string, optFns ...func(*s3.PutObjectInput)) *s3.PutObjectOutput {
	tb.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
	for _, fn := range optFns {
		fn(in)
	}
	out, err := c.PutObject(context.Background(), in)
	if err != nil {
		tb.Fatalf("put %s: %v", key, err)
	}
	return out
}

func get(tb testing.TB, c *s3.Client, key string) (string, *s3.GetObjectOutput) {
	tb.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		tb.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b), out
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func readFile(tb testing.TB, p string) string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// filesUnder lists the regular files under dir, relative and slash-separated.
func filesUnder(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestPutGetHeadStoresPlainFiles(t *testing.T) {
	dir := t.TempDir()
	srv, c, evs := startS3(t, dir)
	ctx := context.Background()
	body := "{\"name\":\"Rick Sánchez’s ζ\"}\n"

	out := put(t, c, "raw/character/page-0001.json", body, func(in *s3.PutObjectInput) {
		in.ContentType = aws.String("application/json")
		in.Metadata = map[string]string{"fetched-at": "2024-01-02T03:04:05.000Z", "Source-Key": "x"}
	})
	if got, want := strings.Trim(aws.ToString(out.ETag), `"`), md5hex([]byte(body)); got != want {
		t.Errorf("PutObject ETag = %s, want %s", got, want)
	}

	got, gout := get(t, c, "raw/character/page-0001.json")
	if got != body {
		t.Errorf("GetObject body = %q, want %q", got, body)
	}
	if ct := aws.ToString(gout.ContentType); ct != "application/json" {
		t.Errorf("GetObject ContentType = %q", ct)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("raw/character/page-0001.json")})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"fetched-at": "2024-01-02T03:04:05.000Z", "source-key": "x"}; !equalMaps(head.Metadata, want) {
		t.Errorf("HeadObject Metadata = %v, want %v", head.Metadata, want)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(body)) || aws.ToString(head.ETag) != aws.ToString(out.ETag) {
		t.Errorf("HeadObject = length %d ETag %s", aws.ToInt64(head.ContentLength), aws.ToString(head.ETag))
	}
	if lm := aws.ToTime(head.LastModified); time.Since(lm) > time.Minute || time.Until(lm) > time.Minute {
		t.Errorf("HeadObject LastModified = %v", lm)
	}

	// The folder holds exactly the object's bytes, and nothing else.
	if got := readFile(t, filepath.Join(dir, "s3", bucket, "raw", "character", "page-0001.json")); got != body {
		t.Errorf("file holds %q", got)
	}
	if got := filesUnder(t, srv.Dir(bucket)); !slices.Equal(got, []string{"raw/character/page-0001.json"}) {
		t.Errorf("bucket folder holds %v", got)
	}

	// A PUT replaces the metadata too.
	put(t, c, "raw/character/page-0001.json", "{}")
	head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("raw/character/page-0001.json")})
	if err != nil {
		t.Fatal(err)
	}
	if len(head.Metadata) != 0 || aws.ToString(head.ContentType) == "application/json" {
		t.Errorf("after a PUT without metadata: Metadata %v, ContentType %q", head.Metadata, aws.ToString(head.ContentType))
	}

	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("missing")})
	var nf *types.NotFound
	if !errors.As(err, &nf) {
		t.Errorf("HeadObject(missing) error = %v, want NotFound", err)
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("missing")})
	var nsk *types.NoSuchKey
	if !errors.As(err, &nsk) {
		t.Errorf("GetObject(missing) error = %v, want NoSuchKey", err)
	}

	if n := len(evs.list()); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

func equalMaps(a, b map[string]string) bool {
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

// TestPutUnseekableBody documents the SDK over plain HTTP: PutObject must
// hash the payload for SigV4, which an unseekable body does not allow, unless
// the client signs UNSIGNED-PAYLOAD; manager.Uploader buffers and works.
func TestPutUnseekableBody(t *testing.T) {
	_, c, _ := startS3(t, t.TempDir())
	ctx := context.Background()
	body := strings.Repeat("line of text ’ ζ Á\n", 1000)
	in := func(key string) *s3.PutObjectInput {
		return &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: onlyReader{strings.NewReader(body)}, ContentLength: aws.Int64(int64(len(body)))}
	}
	if _, err := c.PutObject(ctx, in("plain")); err == nil || !strings.Contains(err.Error(), "not seekable") {
		t.Errorf("PutObject of an unseekable body over HTTP: %v; the SDK used to fail with \"request stream is not seekable\"", err)
	}
	if _, err := c.PutObject(ctx, in("unsigned"), s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)); err != nil {
		t.Errorf("PutObject with UNSIGNED-PAYLOAD: %v", err)
	} else if got, _ := get(t, c, "unsigned"); got != body {
		t.Errorf("body differs: %d bytes, want %d", len(got), len(body))
	}
	if _, err := manager.NewUploader(c).Upload(ctx, in("uploader")); err != nil {
		t.Errorf("manager.Uploader: %v", err)
	} else if got, _ := get(t, c, "uploader"); got != body {
		t.Errorf("body differs: %d bytes, want %d", len(got), len(body))
	}
}

func TestRangedGet(t *testing.T) {
	_, c, _ := startS3(t, t.TempDir())
	put(t, c, "k", "0123456789")
	for _, tc := range []struct{ rng, want string }{
		{"bytes=2-4", "234"},
		{"bytes=7-", "789"},
		{"bytes=-3", "789"},
		{"bytes=8-100", "89"},
	} {
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Range: aws.String(tc.rng)})
		if err != nil {
			t.Fatalf("%s: %v", tc.rng, err)
		}
		b, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(b) != tc.want {
			t.Errorf("%s = %q, want %q", tc.rng, b, tc.want)
		}
		if out.ContentRange == nil {
			t.Errorf("%s: no Content-Range", tc.rng)
		}
	}
}

func TestListObjectsV2PrefixAndPagination(t *testing.T) {
	_, c, _ := startS3(t, t.TempDir())
	keys := []string{"raw/a/1.json", "raw/a/2.json", "raw/b/1.json", "raw/a-b.json", "raw/c.json", "processed/t/x.csv", "rawx"}
	for _, k := range keys {
		put(t, c, k, k)
	}
	ctx := context.Background()

	var got []string
	pages := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("raw/"), MaxKeys: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range out.Contents {
			got = append(got, aws.ToString(o.Key))
			if aws.ToInt64(o.Size) != int64(len(aws.ToString(o.Key))) || strings.Trim(aws.ToString(o.ETag), `"`) != md5hex([]byte(aws.ToString(o.Key))) || o.LastModified == nil {
				t.Errorf("listed %s: size %d etag %s", aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToString(o.ETag))
			}
		}
	}
	// S3 order is byte order of the whole key: "raw/a-b.json" < "raw/a/1.json".
	want := []string{"raw/a-b.json", "raw/a/1.json", "raw/a/2.json", "raw/b/1.json", "raw/c.json"}
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("listed %v in %d pages, want %v in 3", got, pages, want)
	}

	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("raw/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	var prefixes, files []string
	for _, p := range out.CommonPrefixes {
		prefixes = append(prefixes, aws.ToString(p.Prefix))
	}
	for _, o := range out.Contents {
		files = append(files, aws.ToString(o.Key))
	}
	if !slices.Equal(prefixes, []string{"raw/a/", "raw/b/"}) || !slices.Equal(files, []string{"raw/a-b.json", "raw/c.json"}) {
		t.Errorf("delimited listing: prefixes %v files %v", prefixes, files)
	}

	out, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("nothing/")})
	if err != nil || len(out.Contents) != 0 {
		t.Errorf("empty listing: %v %v", out.Contents, err)
	}
}

func TestCopyObjectMetadataDirective(t *testing.T) {
	_, c, evs := startS3(t, t.TempDir())
	ctx := context.Background()
	put(t, c, "raw/p 1.json", "{}", func(in *s3.PutObjectInput) {
		in.ContentType = aws.String("application/json")
		in.Metadata = map[string]string{"fetched-at": "t1", "old": "x"}
	})

	// Copying onto itself needs REPLACE, as on S3.
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String("raw/p 1.json"), CopySource: aws.String(bucket + "/raw/p%201.json")})
	if apiCode(err) != "InvalidRequest" {
		t.Errorf("copy onto itself without REPLACE: %v, want InvalidRequest", err)
	}

	out, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("raw/p 1.json"), CopySource: aws.String(bucket + "/raw/p%201.json"),
		MetadataDirective: types.MetadataDirectiveReplace, ContentType: aws.String("application/json"),
		Metadata: map[string]string{"fetched-at": "t2"},
	})
	if err != nil {
		t.Fatalf("copy onto itself with REPLACE: %v", err)
	}
	if strings.Trim(aws.ToString(out.CopyObjectResult.ETag), `"`) != md5hex([]byte("{}")) {
		t.Errorf("copy ETag = %s", aws.ToString(out.CopyObjectResult.ETag))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("raw/p 1.json")})
	if err != nil {
		t.Fatal(err)
	}
	if !equalMaps(head.Metadata, map[string]string{"fetched-at": "t2"}) || aws.ToString(head.ContentType) != "application/json" {
		t.Errorf("after REPLACE: metadata %v content type %q", head.Metadata, aws.ToString(head.ContentType))
	}

	// COPY (the default) keeps the source's metadata.
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String("copy/p.json"), CopySource: aws.String("/" + bucket + "/raw/p%201.json"),
		Metadata: map[string]string{"ignored": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	head, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("copy/p.json")})
	if err != nil {
		t.Fatal(err)
	}
	if !equalMaps(head.Metadata, map[string]string{"fetched-at": "t2"}) || aws.ToString(head.ContentType) != "application/json" {
		t.Errorf("after COPY: metadata %v content type %q", head.Metadata, aws.ToString(head.ContentType))
	}

	var names []string
	for _, ev := range evs.list() {
		names = append(names, ev.EventName+" "+ev.Key)
	}
	want := []string{"ObjectCreated:Put raw/p 1.json", "ObjectCreated:Copy raw/p 1.json", "ObjectCreated:Copy copy/p.json"}
	if !slices.Equal(names, want) {
		t.Errorf("events %q, want %q", names, want)
	}
}

func TestDeleteObject(t *testing.T) {
	dir := t.TempDir()
	srv, c, _ := startS3(t, dir)
	ctx := context.Background()
	put(t, c, "a/b/c.txt", "x")
	put(t, c, "a/d.txt", "y")
	for _, k := range []string{"a/b/c.txt", "never/was"} {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)}); err != nil {
			t.Errorf("delete %s: %v", k, err)
		}
	}
	if got := filesUnder(t, srv.Dir(bucket)); !slices.Equal(got, []string{"a/d.txt"}) {
		t.Errorf("bucket folder holds %v", got)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir(bucket), "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty folder a/b left behind: %v", err)
	}
	// Now "a/b" can be a key (it was a folder).
	put(t, c, "a/b", "z")
}

func TestKeysWithSpacesAndUnicode(t *testing.T) {
	srv, c, evs := startS3(t, t.TempDir())
	ctx := context.Background()
	key := "raw/ζ é/page+1 (copy) 100%.json"
	put(t, c, key, "{}")
	if got := readFile(t, filepath.Join(srv.Dir(bucket), "raw", "ζ é", "page+1 (copy) 100%.json")); got != "{}" {
		t.Errorf("file holds %q", got)
	}
	if got, _ := get(t, c, key); got != "{}" {
		t.Errorf("object = %q", got)
	}
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("raw/ζ")})
	if err != nil || len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != key {
		t.Errorf("list: %v %v", out, err)
	}
	if ev := evs.list(); len(ev) != 1 || ev[0].Key != key {
		t.Errorf("events %+v", ev)
	}
	_, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String(key)}, {Key: aws.String("other")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := filesUnder(t, srv.Dir(bucket)); len(got) != 0 {
		t.Errorf("after DeleteObjects the bucket folder holds %v", got)
	}
}

func TestUnsupportedSubresourceLeavesObjectAlone(t *testing.T) {
	_, c, _ := startS3(t, t.TempDir())
	put(t, c, "k", "data")
	_, err := c.PutObjectTagging(context.Background(), &s3.PutObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String("k"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}})
	if apiCode(err) != "NotImplemented" {
		t.Errorf("PutObjectTagging: %v, want NotImplemented", err)
	}
	if got, _ := get(t, c, "k"); got != "data" {
		t.Errorf("object = %q", got)
	}
}

func TestKeysThatAFolderCannotHold(t *testing.T) {
	_, c, _ := startS3(t, t.TempDir())
	put(t, c, "a/b", "x")
	for _, k := range []string{"a", "a/b/c", "x//y", "x/./y", "dir/"} {
		_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("v")})
		if apiCode(err) != "InvalidArgument" {
			t.Errorf("put %q: %v, want InvalidArgument", k, err)
		}
	}
}

func TestConditionalPut(t *testing.T) {
	_, c, evs := startS3(t, t.TempDir())
	ctx := context.Background()
	key := "exports/_watermark.json"
	first := put(t, c, key, "v1", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })

	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("v2"), IfNoneMatch: aws.String("*")})
	if apiCode(err) != "PreconditionFailed" {
		t.Errorf("If-None-Match * on an existing key: %v, want PreconditionFailed", err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("v2"), IfMatch: aws.String(`"0123"`)})
	if apiCode(err) != "PreconditionFailed" {
		t.Errorf("If-Match with another ETag: %v, want PreconditionFailed", err)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("missing"), Body: strings.NewReader("v2"), IfMatch: first.ETag})
	if apiCode(err) != "PreconditionFailed" {
		t.Errorf("If-Match on a missing key: %v, want PreconditionFailed", err)
	}
	put(t, c, key, "v2", func(in *s3.PutObjectInput) { in.IfMatch = first.ETag })
	if got, _ := get(t, c, key); got != "v2" {
		t.Errorf("object = %q after If-Match with the current ETag", got)
	}
	if n := len(evs.list()); n != 2 {
		t.Errorf("%d events, want 2 (failed writes announce nothing)", n)
	}
}

func TestConditionalPutIsAtomic(t *testing.T) {
	_, c, evs := startS3(t, t.TempDir())
	const writers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("lock"),
				Body: strings.NewReader(fmt.Sprint(i)), IfNoneMatch: aws.String("*")})
			switch {
			case err == nil:
				mu.Lock()
				won++
				mu.Unlock()
			case apiCode(err) != "PreconditionFailed":
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || len(evs.list()) != 1 {
		t.Errorf("%d writers won, %d events; want 1 and 1", won, len(evs.list()))
	}
}

func TestMultipartUpload(t *testing.T) {
	dir := t.TempDir()
	srv, c, evs := startS3(t, dir)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16+3) // 11 MiB + 48 bytes: 3 parts of 5 MiB

	up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 5 << 20; u.Concurrency = 2 })
	key := "exports/characters/csv/part-0001.csv"
	out, err := up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: onlyReader{bytes.NewReader(data)},
		ContentType: aws.String("text/csv"), Metadata: map[string]string{"rows": "42"}, IfNoneMatch: aws.String("*")})
	if err != nil {
		t.Fatalf("multipart upload: %v", err)
	}
	if got := readFile(t, filepath.Join(srv.Dir(bucket), filepath.FromSlash(key))); got != string(data) {
		t.Errorf("file holds %d bytes, want %d", len(got), len(data))
	}
	if !strings.HasSuffix(aws.ToString(out.ETag), `-3"`) {
		t.Errorf("multipart ETag = %s, want \"<md5>-3\"", aws.ToString(out.ETag))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ETag) != aws.ToString(out.ETag) || aws.ToString(head.ContentType) != "text/csv" || head.Metadata["rows"] != "42" || aws.ToInt64(head.ContentLength) != int64(len(data)) {
		t.Errorf("head: ETag %s type %s meta %v length %d", aws.ToString(head.ETag), aws.ToString(head.ContentType), head.Metadata, aws.ToInt64(head.ContentLength))
	}
	lst, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("exports/")})
	if err != nil || len(lst.Contents) != 1 || aws.ToString(lst.Contents[0].ETag) != aws.ToString(out.ETag) {
		t.Errorf("list: %v %v", lst, err)
	}
	evl := evs.list()
	if len(evl) != 1 || evl[0].EventName != locals3.EventMultipart || evl[0].Size != int64(len(data)) || `"`+evl[0].ETag+`"` != aws.ToString(out.ETag) {
		t.Errorf("events = %+v", evl)
	}

	// The uploader passes IfNoneMatch to CompleteMultipartUpload.
	_, err = up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: onlyReader{bytes.NewReader(data)}, IfNoneMatch: aws.String("*")})
	if apiCode(err) != "PreconditionFailed" {
		t.Errorf("second multipart upload with If-None-Match *: %v, want PreconditionFailed", err)
	}
	// If-Match with the multipart ETag works.
	_, err = up.Upload(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: onlyReader{bytes.NewReader(data)}, IfMatch: out.ETag})
	if err != nil {
		t.Errorf("multipart upload with If-Match of the current ETag: %v", err)
	}
	if n := len(evs.list()); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

func TestMultipartUploadChecksParts(t *testing.T) {
	_, c, _ := startS3(t, t.TempDir())
	ctx := context.Background()
	key := aws.String("small-parts")
	cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i := int32(1); i <= 2; i++ {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: key, UploadId: cr.UploadId, PartNumber: aws.Int32(i), Body: strings.NewReader("part")})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(i)})
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(bucket), Key: key, UploadId: cr.UploadId})
	if err != nil || len(lp.Parts) != 2 {
		t.Errorf("ListParts: %v %v", lp, err)
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: key, UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if apiCode(err) != "EntityTooSmall" {
		t.Errorf("complete with a small first part: %v, want EntityTooSmall", err)
	}
	// One small part alone is fine (it is the last).
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: key, UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts[1:]}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := get(t, c, *key); got != "part" {
		t.Errorf("object = %q", got)
	}
	_, err = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: key, UploadId: cr.UploadId})
	if apiCode(err) != "NoSuchUpload" {
		t.Errorf("abort a completed upload: %v, want NoSuchUpload", err)
	}
}

// TestInterruptedPutKeepsPreviousVersion sends a PUT whose body stops short
// and checks that the object is untouched and nothing is left behind.
func TestInterruptedPutKeepsPreviousVersion(t *testing.T) {
	dir := t.TempDir()
	srv, c, evs := startS3(t, dir)
	put(t, c, "raw/p.json", "complete")

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.Endpoint(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /%s/raw/p.json HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial", bucket)
	conn.Close()

	if got := readFile(t, filepath.Join(srv.Dir(bucket), "raw", "p.json")); got != "complete" {
		t.Errorf("file holds %q", got)
	}
	if err := srv.Close(); err != nil { // waits for the interrupted request
		t.Fatal(err)
	}
	if got := filesUnder(t, filepath.Join(dir, "s3tmp")); len(got) != 0 {
		t.Errorf("scratch files left: %v", got)
	}
	if got := readFile(t, filepath.Join(srv.Dir(bucket), "raw", "p.json")); got != "complete" {
		t.Errorf("file holds %q", got)
	}
	if n := len(evs.list()); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

func TestObjectsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := locals3.Start(context.Background(), locals3.Options{DataDir: dir, Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	put(t, srv.Client(), "k.json", "v", func(in *s3.PutObjectInput) { in.Metadata = map[string]string{"m": "1"} })
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	_, c, _ := startS3(t, dir)
	got, out := get(t, c, "k.json")
	if got != "v" || out.Metadata["m"] != "1" {
		t.Errorf("after restart: %q %v", got, out.Metadata)
	}
}

func TestNotificationSequencers(t *testing.T) {
	_, c, evs := startS3(t, t.TempDir())
	for i := range 5 {
		put(t, c, "k", fmt.Sprint(i))
	}
	var last string
	for _, ev := range evs.list() {
		if ev.Bucket != bucket || ev.Key != "k" || ev.Source != locals3.SourceAPI || ev.EventName != locals3.EventPut || ev.Size != 1 || ev.Time.IsZero() {
			t.Errorf("event %+v", ev)
		}
		if len(ev.Sequencer) != 16 || ev.Sequencer <= last {
			t.Errorf("sequencer %q after %q", ev.Sequencer, last)
		}
		last = ev.Sequencer
	}
}

// TestHookSeesObjectBeforeResponse checks that a hook runs before the PUT
// returns and can read the object through the endpoint.
func TestHookSeesObjectBeforeResponse(t *testing.T) {
	srv, c, _ := startS3(t, t.TempDir())
	var got string
	srv.OnObjectCreated(func(ev locals3.ObjectCreated) {
		got, _ = get(t, c, ev.Key)
	})
	put(t, c, "k", "hello")
	if got != "hello" {
		t.Errorf("hook read %q", got)
	}
}

// TestDefaultChecksumsOverHTTP: with the SDK's default checksum settings
// ("when supported"), uploads carry CRC32 checksums; the endpoint accepts
// them and returns none, so downloads are not validated.
func TestDefaultChecksumsOverHTTP(t *testing.T) {
	srv, _, _ := startS3(t, t.TempDir())
	cfg := srv.AWSConfig()
	cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
	cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	ctx := context.Background()
	body := strings.Repeat("default checksums ’ ζ Á\n", 3000)
	put(t, c, "seekable", body)
	if got, _ := get(t, c, "seekable"); got != body {
		t.Errorf("seekable: %d bytes, want %d", len(got), len(body))
	}
	data := bytes.Repeat([]byte("y"), 6<<20)
	if _, err := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 5 << 20 }).Upload(ctx,
		&s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("multipart"), Body: onlyReader{bytes.NewReader(data)}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := get(t, c, "multipart"); got != string(data) {
		t.Errorf("multipart: %d bytes, want %d", len(got), len(data))
	}
}

func TestAWSChunkedUploadWithTrailingChecksum(t *testing.T) {
	// Over TLS, with the SDK's default checksum behaviour, an unseekable body is
	// sent aws-chunked with a trailing checksum.
	srv, _, _ := startS3(t, t.TempDir())
	var mu sync.Mutex
	var seen []string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mu.Lock()
			seen = append(seen, r.Header.Get("X-Amz-Content-Sha256"))
			mu.Unlock()
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	cfg := srv.AWSConfig()
	cfg.BaseEndpoint = aws.String(ts.URL)
	cfg.HTTPClient = ts.Client()
	cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
	cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	body := strings.Repeat("chunked body ’ ζ Á\n", 5000)

	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("chunked"),
		Body: onlyReader{strings.NewReader(body)}, ContentLength: aws.Int64(int64(len(body)))})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(seen) != 1 || !strings.HasPrefix(seen[0], "STREAMING-") {
		t.Errorf("the SDK did not send aws-chunked: x-amz-content-sha256 %q", seen)
	}
	mu.Unlock()
	if got := readFile(t, filepath.Join(srv.Dir(bucket), "chunked")); got != body {
		t.Errorf("file holds %d bytes, want %d", len(got), len(body))
	}
	up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 5 << 20 })
	data := bytes.Repeat([]byte("x"), 6<<20)
	if _, err := up.Upload(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("chunked-mp"), Body: onlyReader{bytes.NewReader(data)}}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(srv.Dir(bucket), "chunked-mp")); got != string(data) {
		t.Errorf("multipart file holds %d bytes, want %d", len(got), len(data))
	}
}
