package loadfn

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket/buckettest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// A missing bucket or a denied access is never "gone": the message stays
// failed, so SQS delivers it again and finally dead-letters it; nothing is
// acknowledged unloaded. An object really gone is acknowledged. On MinIO and
// on the local stack's S3.
func TestMissingBucketOrDeniedIsNeverGone(t *testing.T) {
	_, dsn := testenv.MySQL(t)
	conn := mysqldb.NewConnector(mysqldb.Config{DSN: dsn, MaxOpenConns: 2, ConnMaxLifetime: time.Minute}, nil)
	t.Cleanup(func() { conn.Close() })
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, srv := range buckettest.Servers(t) {
		t.Run(srv.Name, func(t *testing.T) {
			handle := func(client bucket.API, name string, msg events.SQSMessage) (failed bool, o Outcome) {
				h := New(Config{Bucket: name, Reserve: time.Second}, client, conn, logging.New(io.Discard, "info"))
				h.Observe = func(got Outcome) { o = got }
				resp, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{msg}})
				if err != nil {
					t.Fatal(err)
				}
				return len(resp.BatchItemFailures) == 1 && resp.BatchItemFailures[0].ItemIdentifier == msg.MessageId, o
			}
			key := "processed/characters/character/page-0001.csv"

			missing := "no-such-bucket-" + strings.ReplaceAll(testenv.RandomName(""), "_", "-")
			msg := Message("m-missing", load.ObjectRef{Bucket: missing, Key: key, ETag: "0123456789abcdef0123456789abcdef"}, 10, at)
			failed, o := handle(srv.Client, missing, msg)
			if !failed || o.Status != Failed || !strings.Contains(o.Reason, missing) || strings.Contains(o.Reason, "gone") {
				t.Errorf("missing bucket: failed=%v, outcome %+v; want the message failed, naming the bucket", failed, o)
			}

			msg = Message("m-gone", load.ObjectRef{Bucket: srv.Bucket, Key: key, ETag: "0123456789abcdef0123456789abcdef"}, 10, at)
			failed, o = handle(srv.Client, srv.Bucket, msg)
			if failed || o.Status != Skipped || !strings.Contains(o.Reason, "is gone") {
				t.Errorf("object gone: failed=%v, outcome %+v; want it acknowledged", failed, o)
			}

			if !srv.ChecksAccess {
				t.Logf("the %s S3 accepts any credentials: access cannot be denied there", srv.Name)
				return
			}
			failed, o = handle(buckettest.Denied(), srv.Bucket, msg)
			if !failed || o.Status != Failed || !strings.Contains(o.Reason, "access denied") {
				t.Errorf("access denied: failed=%v, outcome %+v; want the message failed", failed, o)
			}
		})
	}
}
