package bucket_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket/buckettest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

var meanings = []error{bucket.ErrGone, bucket.ErrNoBucket, bucket.ErrDenied, bucket.ErrUnavailable, bucket.ErrPrecondition}

// means checks that err wraps want and no other meaning, and names the object.
func means(t *testing.T, what string, err, want error, names string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", what, want)
	}
	for _, m := range meanings {
		if got := errors.Is(err, m); got != (m == want) {
			t.Errorf("%s: errors.Is(%v) = %v, want %v (error: %v)", what, m, got, m == want, err)
		}
	}
	if !strings.Contains(err.Error(), names) {
		t.Errorf("%s: error %q does not name %q", what, err, names)
	}
}

func put(t *testing.T, b *bucket.Bucket, key, body string) string {
	t.Helper()
	etag, err := b.Put(context.Background(), key, []byte(body), bucket.PutOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	return etag
}

// Every meaning, on MinIO and on the local stack's S3, through the real SDK.
func TestErrorMeanings(t *testing.T) {
	ctx := context.Background()
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			b := bucket.New(srv.Client, srv.Bucket)
			missing := bucket.New(srv.Client, "no-such-bucket-"+strings.ReplaceAll(testenv.RandomName(""), "_", "-"))

			t.Run("object gone", func(t *testing.T) {
				_, _, err := b.Get(ctx, "processed/characters/gone.csv", bucket.Version{})
				means(t, "get", err, bucket.ErrGone, "s3://"+srv.Bucket+"/processed/characters/gone.csv")
				_, err = b.Head(ctx, "processed/characters/gone.csv")
				means(t, "head", err, bucket.ErrGone, "gone.csv")
				if ok, err := b.Exists(ctx, "processed/characters/gone.csv"); ok || err != nil {
					t.Errorf("Exists = %v, %v", ok, err)
				}
			})
			t.Run("bucket missing is never gone", func(t *testing.T) {
				_, _, err := missing.Get(ctx, "processed/characters/x.csv", bucket.Version{})
				means(t, "get", err, bucket.ErrNoBucket, missing.Name())
				_, err = missing.Head(ctx, "raw/character/page-0001.json")
				means(t, "head", err, bucket.ErrNoBucket, missing.Name())
				if _, err := missing.Exists(ctx, "exports/x/csv/last_extract.txt"); !errors.Is(err, bucket.ErrNoBucket) {
					t.Errorf("Exists: %v, want ErrNoBucket", err)
				}
				_, err = missing.Put(ctx, "raw/character/page-0001.json", []byte("{}"), bucket.PutOptions{})
				means(t, "put", err, bucket.ErrNoBucket, missing.Name())
				_, err = missing.Copy(ctx, "processed/a.csv", bucket.Version{}, "quarantine/processed/a.csv", bucket.CopyOptions{})
				means(t, "copy", err, bucket.ErrNoBucket, missing.Name())
			})
			t.Run("precondition", func(t *testing.T) {
				etag := put(t, b, "exports/t/csv/last_extract.txt", "v1")
				_, err := b.Put(ctx, "exports/t/csv/last_extract.txt", []byte("v2"), bucket.PutOptions{IfNoneMatch: true})
				means(t, "if-none-match", err, bucket.ErrPrecondition, "last_extract.txt")
				_, err = b.Put(ctx, "exports/t/csv/last_extract.txt", []byte("v2"), bucket.PutOptions{IfMatch: `"0123456789abcdef0123456789abcdef"`})
				means(t, "if-match", err, bucket.ErrPrecondition, "last_extract.txt")
				if _, err := b.Put(ctx, "exports/t/csv/last_extract.txt", []byte("v2"), bucket.PutOptions{IfMatch: etag}); err != nil {
					t.Errorf("if-match with the current ETag: %v", err)
				}
				_, _, err = b.Get(ctx, "exports/t/csv/last_extract.txt", bucket.Version{ETag: etag})
				means(t, "get of an overwritten ETag", err, bucket.ErrPrecondition, "last_extract.txt")
			})
			t.Run("access denied is never gone", func(t *testing.T) {
				if !srv.ChecksAccess {
					t.Logf("the %s S3 accepts any credentials: access cannot be denied there", srv.Name)
					return
				}
				denied := bucket.New(buckettest.Denied(), srv.Bucket)
				_, _, err := denied.Get(ctx, "processed/characters/x.csv", bucket.Version{})
				means(t, "get", err, bucket.ErrDenied, "x.csv")
				_, err = denied.Head(ctx, "processed/characters/x.csv")
				means(t, "head", err, bucket.ErrDenied, "x.csv")
			})
			t.Run("version gone", func(t *testing.T) {
				if !srv.Versioning {
					t.Logf("the %s S3 does not keep versions", srv.Name)
					return
				}
				buckettest.EnableVersioning(t, srv)
				put(t, b, "processed/characters/v.csv", "one")
				_, info, err := b.Get(ctx, "processed/characters/v.csv", bucket.Version{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := srv.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("processed/characters/v.csv"), VersionId: aws.String(info.VersionID)}); err != nil {
					t.Fatal(err)
				}
				_, _, err = b.Get(ctx, "processed/characters/v.csv", bucket.Version{ID: info.VersionID})
				means(t, "get of a deleted version", err, bucket.ErrGone, "v.csv")
			})
		})
	}
}

// Throttling and an unreachable endpoint both mean "retry".
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
	}))
	defer slow.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for name, endpoint := range map[string]string{"503 SlowDown": slow.URL, "nothing listening": closed} {
		t.Run(name, func(t *testing.T) {
			cfg := testenv.S3Config()
			cfg.BaseEndpoint = aws.String(endpoint)
			cfg.RetryMaxAttempts = 1
			b := bucket.New(s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }), "data")
			_, _, err := b.Get(ctx, "raw/character/page-0001.json", bucket.Version{})
			means(t, "get", err, bucket.ErrUnavailable, "page-0001.json")
			_, err = b.Put(ctx, "raw/character/page-0001.json", []byte("{}"), bucket.PutOptions{})
			means(t, "put", err, bucket.ErrUnavailable, "page-0001.json")
		})
	}
}

// Quarantine copies the version read and writes the one report type; a
// source deleted or overwritten since is ErrGone or ErrPrecondition.
func TestQuarantine(t *testing.T) {
	ctx := context.Background()
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			b := bucket.New(srv.Client, srv.Bucket)
			key := "processed/characters/bad file+1.csv"
			etag := put(t, b, key, "id\nnot a number\n")
			rep := bucket.Report{Stage: "load", Key: key, ETag: etag, Table: "characters", Reason: "line 2: id: not an integer", Line: 2, Column: "id"}
			if err := b.Quarantine(ctx, rep, map[string]string{"source-key": "x"}); err != nil {
				t.Fatal(err)
			}
			data, _, err := b.ReadAll(ctx, bucket.QuarantineKey(key), 1<<20)
			if err != nil || string(data) != "id\nnot a number\n" {
				t.Fatalf("quarantined copy %q, %v", data, err)
			}
			got, err := b.ReadReport(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if got.Bucket != srv.Bucket || got.Key != key || got.Reason != rep.Reason || got.Line != 2 || got.Column != "id" || got.Stage != "load" || got.Time.IsZero() {
				t.Errorf("report %+v", got)
			}

			put(t, b, key, "id\n1\n") // overwritten since the notification
			err = b.Quarantine(ctx, rep, nil)
			means(t, "overwritten", err, bucket.ErrPrecondition, key)
			if _, err := srv.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)}); err != nil {
				t.Fatal(err)
			}
			err = b.Quarantine(ctx, bucket.Report{Stage: "load", Key: key, Reason: "x"}, nil)
			means(t, "gone", err, bucket.ErrGone, key)
		})
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			b := bucket.New(srv.Client, srv.Bucket)
			for _, k := range []string{"raw/a.json", "raw/b/c.json", "processed/x.csv"} {
				put(t, b, k, k)
			}
			var keys []string
			if err := b.List(ctx, bucket.RawPrefix, func(i bucket.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
				t.Fatal(err)
			}
			if strings.Join(keys, ",") != "raw/a.json,raw/b/c.json" {
				t.Errorf("listed %v", keys)
			}
			var buf bytes.Buffer
			missing := bucket.New(srv.Client, "no-such-bucket-list")
			err := missing.List(ctx, bucket.RawPrefix, func(bucket.Info) error { buf.WriteString("x"); return nil })
			means(t, "list", err, bucket.ErrNoBucket, "no-such-bucket-list")
		})
	}
}
