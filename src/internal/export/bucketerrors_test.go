package export

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/locals3"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// s3Server is an S3 server the exporter's tests run against, through the
// real SDK: MinIO, and the local stack's S3 (`pipeline run`'s).
type s3Server struct {
	name   string
	api    *s3.Client
	bucket string
	// anonymous is a client without credentials (nil: the server checks
	// no signature, so nothing is ever denied).
	anonymous *s3.Client
}

func s3Servers(t *testing.T) []s3Server {
	t.Helper()
	api, name := testenv.S3(t)
	anon := testenv.S3Config()
	anon.Credentials = aws.AnonymousCredentials{}
	minio := s3Server{name: "minio", api: api, bucket: name,
		anonymous: s3.NewFromConfig(anon, func(o *s3.Options) { o.UsePathStyle = true })}

	srv, err := locals3.Start(context.Background(), locals3.Options{DataDir: t.TempDir(), Bucket: "export-local"})
	if err != nil {
		t.Fatalf("starting the local S3: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return []s3Server{minio, {name: "locals3", api: srv.Client(), bucket: srv.Bucket()}}
}

// A missing bucket is never "no watermark yet": every table fails with an
// error that names the bucket, whether rows are due or not, and the real
// bucket's watermark stays where it was. (Read as "no watermark", an idle
// table came back up_to_date with no error.)
func TestMissingBucketFailsTheExport(t *testing.T) {
	for _, srv := range s3Servers(t) {
		t.Run(srv.name, func(t *testing.T) {
			h := newHarnessOn(t, srv.api, srv.bucket)
			h.exec(warehouseLike)
			missing := srv.bucket + "-typo"
			check := func(what string, lag time.Duration) {
				t.Helper()
				before, _, _ := h.bucket().ReadAll(context.Background(), bucket.WatermarkKey(h.prefix, "characters"), maxWatermarkSize)
				objects := h.list("")
				h.advance(time.Minute)
				e := h.exporter(lag, 100)
				e.Bucket = bucket.New(srv.api, missing)
				res := e.Run(context.Background(), specsOf("characters"))
				tr := res.Tables[0]
				if tr.Status != StatusFailed || !errors.Is(tr.Err(), bucket.ErrNoBucket) || !strings.Contains(tr.Error, `"`+missing+`"`) {
					t.Fatalf("%s: status %s, error %q: want failed, naming bucket %q as missing", what, tr.Status, tr.Error, missing)
				}
				if err := res.Err(); err == nil || !strings.Contains(err.Error(), missing) {
					t.Fatalf("%s: Result.Err() = %v, want the bucket named", what, err)
				}
				after, _, _ := h.bucket().ReadAll(context.Background(), bucket.WatermarkKey(h.prefix, "characters"), maxWatermarkSize)
				if string(after) != string(before) {
					t.Fatalf("%s: the watermark moved:\n%s\nwas\n%s", what, after, before)
				}
				if got := h.list(""); !slices.Equal(got, objects) {
					t.Fatalf("%s: objects in the real bucket %v, before %v", what, got, objects)
				}
			}
			// No row due: an empty table, then rows younger than the lag.
			check("empty table, no watermark", 0)
			h.exec("INSERT INTO characters VALUES (1, 'a', 's', NULL, NOW(3), NOW(3), ?, NULL), (2, 'b', 's', NULL, NOW(3), NOW(3), ?, NULL)",
				dt3(h.now().Add(30*time.Second)), dt3(h.now().Add(30*time.Second)))
			check("rows within the lag, no watermark", time.Hour)
			// With a watermark in the real bucket: no row due, then one.
			h.advance(time.Hour)
			h.run(h.exporter(0, 100), specsOf("characters")...)
			check("no row due", 0)
			h.exec("INSERT INTO characters VALUES (3, 'c', 's', NULL, NOW(3), NOW(3), ?, NULL)", dt3(h.now().Add(-time.Second)))
			check("a row due", 0)

			// The right bucket exports the row that was due, and only it.
			h.advance(time.Minute)
			if tr := h.run(h.exporter(0, 100), specsOf("characters")...).Tables[0]; tr.Status != StatusExported || tr.Rows != 1 {
				t.Fatalf("next run on the real bucket: %+v", tr)
			}
			h.checkReplay("characters")
		})
	}
}

// A denied access is never "no watermark yet" either: the table fails,
// naming the bucket, and its watermark and files stay as they were. (The
// local S3 checks no signature: only MinIO can deny.)
func TestDeniedAccessFailsTheExport(t *testing.T) {
	for _, srv := range s3Servers(t) {
		if srv.anonymous == nil {
			continue
		}
		t.Run(srv.name, func(t *testing.T) {
			h := newHarnessOn(t, srv.api, srv.bucket)
			h.exec(warehouseLike)
			h.exec("INSERT INTO characters VALUES (1, 'a', 's', NULL, NOW(3), NOW(3), ?, NULL)", dt3(h.now().Add(-time.Hour)))
			h.run(h.exporter(0, 100), specsOf("characters")...)
			before := string(h.get(bucket.WatermarkKey(h.prefix, "characters")))
			files := h.list(h.prefix)

			for _, due := range []bool{false, true} {
				if due {
					h.exec("INSERT INTO characters VALUES (2, 'b', 's', NULL, NOW(3), NOW(3), ?, NULL)", dt3(h.now().Add(-time.Second)))
				}
				h.advance(time.Minute)
				e := h.exporter(0, 100)
				e.Bucket = bucket.New(srv.anonymous, srv.bucket)
				tr := e.Run(context.Background(), specsOf("characters")).Tables[0]
				if tr.Status != StatusFailed || !errors.Is(tr.Err(), bucket.ErrDenied) || !strings.Contains(tr.Error, "s3://"+srv.bucket+"/") {
					t.Fatalf("rows due %v: status %s, error %q: want failed as denied, naming the bucket", due, tr.Status, tr.Error)
				}
				if got := string(h.get(bucket.WatermarkKey(h.prefix, "characters"))); got != before {
					t.Fatalf("rows due %v: the watermark moved", due)
				}
				if got := h.list(h.prefix); len(got) != len(files) {
					t.Fatalf("rows due %v: objects %v, before %v", due, got, files)
				}
			}
		})
	}
}
