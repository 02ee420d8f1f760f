package transformfn

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket/buckettest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// A missing bucket or a denied access fails the record (Lambda retries the
// event, then sends it to the on-failure destination); only an object
// really gone is skipped. On MinIO and the local stack's S3.
func TestMissingBucketOrDeniedIsNeverGone(t *testing.T) {
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			run := func(client bucket.API, name string) (Outcome, error) {
				h := New(Config{Bucket: name}, client, slog.New(slog.DiscardHandler))
				var out Outcome
				h.Observe = func(o Outcome) { out = o }
				err := h.Handle(context.Background(), s3Event(t, name, "ObjectCreated:Put", "raw/character/page-0001.json"))
				return out, err
			}
			missing := "no-such-bucket-" + strings.ReplaceAll(testenv.RandomName(""), "_", "-")
			out, err := run(srv.Client, missing)
			if !errors.Is(err, bucket.ErrNoBucket) || out.Status != Failed || !strings.Contains(out.Reason, missing) {
				t.Errorf("missing bucket: %+v, %v; want the record failed, naming the bucket", out, err)
			}
			out, err = run(srv.Client, srv.Bucket)
			if err != nil || out.Status != Skipped || out.Reason != "the object no longer exists" {
				t.Errorf("object gone: %+v, %v; want it skipped", out, err)
			}
			if srv.ChecksAccess {
				out, err = run(buckettest.Denied(), srv.Bucket)
				if !errors.Is(err, bucket.ErrDenied) || out.Status != Failed {
					t.Errorf("access denied: %+v, %v; want the record failed", out, err)
				}
			}
		})
	}
}
