package reliability

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/exportfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/loadfn"
	"github.com/dataeng/rickmorty-pipeline/src/internal/logging"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/transformfn"
)

// hostileCorpus is the committed hostile input (testdata/hostile/README.md
// says what each file exercises).
const hostileCorpus = "testdata/hostile"

// hostileFile reads a file of the corpus.
func hostileFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hostileCorpus, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostileLog is the writer of the handlers' loggers: it keeps every line.
type hostileLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *hostileLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *hostileLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// records returns every log line decoded; a line that is not one JSON object
// fails the test (the pipeline logs slog JSON only).
func (l *hostileLog) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		out = append(out, m)
	}
	return out
}

// logged reports whether some log line has message msg and every attribute
// of attrs, compared as text (a value "~x" matches any value containing x).
func (l *hostileLog) logged(t *testing.T, msg string, attrs map[string]string) bool {
	t.Helper()
	for _, r := range l.records(t) {
		if r["msg"] != msg {
			continue
		}
		ok := true
		for k, want := range attrs {
			got := fmt.Sprint(r[k])
			if sub, isSub := strings.CutPrefix(want, "~"); isSub {
				ok = ok && strings.Contains(got, sub)
			} else {
				ok = ok && got == want
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// hostileWorld is one hostile case's pipeline: a fresh bucket on MinIO and a
// fresh database on MariaDB, with the real Transform, Load and Export
// handlers wired to them, logging to one hostileLog.
type hostileWorld struct {
	t      *testing.T
	s3     *s3.Client
	bucket string
	db     *sql.DB
	dsn    string
	log    *hostileLog

	transform *transformfn.Handler
	load      *loadfn.Handler

	mu        sync.Mutex
	tOutcomes []transformfn.Outcome
	lOutcomes []loadfn.Outcome
}

func newHostileWorld(t *testing.T) *hostileWorld {
	t.Helper()
	c, bucket := testenv.S3(t)
	db, dsn := testenv.MySQL(t)
	w := &hostileWorld{t: t, s3: c, bucket: bucket, db: db, dsn: dsn, log: &hostileLog{}}
	logger := logging.New(w.log, "debug")
	w.transform = transformfn.New(transformfn.Config{Bucket: bucket, PathStyle: true}, c, logger)
	w.transform.Observe = func(o transformfn.Outcome) {
		w.mu.Lock()
		w.tOutcomes = append(w.tOutcomes, o)
		w.mu.Unlock()
	}
	conn := mysqldb.NewConnector(mysqldb.Config{DSN: dsn, MaxOpenConns: 4, ConnMaxLifetime: time.Minute}, nil)
	t.Cleanup(func() { conn.Close() })
	w.load = loadfn.New(loadfn.Config{Bucket: bucket, Reserve: time.Second}, c, conn, logger)
	w.load.Observe = func(o loadfn.Outcome) {
		w.mu.Lock()
		w.lOutcomes = append(w.lOutcomes, o)
		w.mu.Unlock()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("handler logs:\n%s", hostileClip(w.log.String(), 20000))
		}
	})
	return w
}

// exporter returns the Export handler on the world, exporting with no lag.
func (w *hostileWorld) exporter() *exportfn.Handler {
	w.t.Helper()
	cfg, err := exportfn.ConfigFromEnv(func(k string) string {
		return map[string]string{"BUCKET": w.bucket, "MYSQL_DSN": w.dsn, "EXPORT_LAG": "0s", "S3_FORCE_PATH_STYLE": "true"}[k]
	})
	if err != nil {
		w.t.Fatal(err)
	}
	conn := mysqldb.NewConnector(cfg.DB, nil)
	w.t.Cleanup(func() { conn.Close() })
	return exportfn.New(cfg, w.s3, conn, logging.New(w.log, "debug"))
}

func (w *hostileWorld) put(key string, body []byte) load.ObjectRef {
	w.t.Helper()
	out, err := w.s3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(w.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
	})
	if err != nil {
		w.t.Fatalf("putting %s: %v", key, err)
	}
	return load.ObjectRef{Bucket: w.bucket, Key: key, ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId)}
}

// get returns an object's body, or false when there is none.
func (w *hostileWorld) get(key string) ([]byte, bool) {
	w.t.Helper()
	out, err := w.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return nil, false
	}
	if err != nil {
		w.t.Fatalf("getting %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		w.t.Fatalf("reading %s: %v", key, err)
	}
	return b, true
}

// keys lists the keys under prefix, sorted.
func (w *hostileWorld) keys(prefix string) []string {
	w.t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(w.s3, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			w.t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys
}

// s3Event is the event S3 sends for keys created in the world's bucket,
// decoded from JSON as the Lambda runtime does (URLDecodedKey included).
func (w *hostileWorld) s3Event(keys ...string) events.S3Event {
	w.t.Helper()
	var ev events.S3Event
	for _, k := range keys {
		var r events.S3EventRecord
		r.EventVersion, r.EventSource, r.AWSRegion, r.EventName = "2.1", "aws:s3", "us-east-1", "ObjectCreated:Put"
		r.EventTime = time.Now().UTC()
		r.S3.SchemaVersion, r.S3.Bucket.Name, r.S3.Bucket.Arn = "1.0", w.bucket, "arn:aws:s3:::"+w.bucket
		r.S3.Object.Key = bucket.EncodeKey(k)
		ev.Records = append(ev.Records, r)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		w.t.Fatal(err)
	}
	var back events.S3Event
	if err := json.Unmarshal(b, &back); err != nil {
		w.t.Fatal(err)
	}
	return back
}

// transformOutcomes returns the outcome of each raw key transformed so far
// (the last one per key).
func (w *hostileWorld) transformOutcomes() map[string]transformfn.Outcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]transformfn.Outcome{}
	for _, o := range w.tOutcomes {
		m[o.Key] = o
	}
	return m
}

// loadOutcomes returns every Load outcome so far, in order.
func (w *hostileWorld) loadOutcomes() []loadfn.Outcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lOutcomes)
}

// processedMessages returns one SQS message per object under processed/, as
// S3 announces them to the load queue.
func (w *hostileWorld) processedMessages() []events.SQSMessage {
	w.t.Helper()
	var msgs []events.SQSMessage
	for i, k := range w.keys("processed/") {
		head, err := w.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(k)})
		if err != nil {
			w.t.Fatal(err)
		}
		obj := load.ObjectRef{Bucket: w.bucket, Key: k, ETag: aws.ToString(head.ETag)}
		msgs = append(msgs, loadfn.Message(fmt.Sprintf("p-%04d", i), obj, aws.ToInt64(head.ContentLength), time.Now()))
	}
	return msgs
}

// hostileDelivery is what became of each message delivered through a
// hostileQueue.
type hostileDelivery struct {
	receives map[string]int  // message id -> times handed to the handler
	dead     map[string]bool // moved to the dead-letter queue
	rounds   int
}

// hostileMaxReceives is the load queue's maxReceiveCount (template.yaml):
// after that many receives a failing message moves to the dead-letter queue.
const hostileMaxReceives = 5

// deliver runs msgs through the Load handler with the SQS semantics the
// deployed queue has: batches of up to 10, each message deleted unless the
// response lists it as failed, failed ones received again, and moved to the
// dead-letter queue after hostileMaxReceives receives. It stops when the
// queue is empty; a queue that does not drain in 20 rounds is a retry loop
// and fails the test.
func (w *hostileWorld) deliver(msgs []events.SQSMessage) hostileDelivery {
	w.t.Helper()
	d := hostileDelivery{receives: map[string]int{}, dead: map[string]bool{}}
	queue := slices.Clone(msgs)
	for len(queue) > 0 {
		d.rounds++
		if d.rounds > 20 {
			w.t.Fatalf("the load queue did not drain after 20 rounds: %d messages keep failing", len(queue))
		}
		var again []events.SQSMessage
		for i := 0; i < len(queue); i += 10 {
			batch := queue[i:min(i+10, len(queue))]
			for j := range batch {
				d.receives[batch[j].MessageId]++
				batch[j].Attributes = map[string]string{"ApproximateReceiveCount": fmt.Sprint(d.receives[batch[j].MessageId])}
			}
			resp, err := w.load.Handle(context.Background(), events.SQSEvent{Records: batch})
			if err != nil {
				w.t.Fatalf("Load returned an error for the whole batch: %v", err)
			}
			failed := map[string]bool{}
			for _, f := range resp.BatchItemFailures {
				failed[f.ItemIdentifier] = true
			}
			for _, m := range batch {
				switch {
				case !failed[m.MessageId]:
				case d.receives[m.MessageId] >= hostileMaxReceives:
					d.dead[m.MessageId] = true
				default:
					again = append(again, m)
				}
			}
		}
		queue = again
	}
	return d
}

// checkQuarantined checks that src (a key under raw/ or processed/) was
// copied byte for byte to dst under quarantine/ with a report beside it
// that names the object and a reason containing reason.
func (w *hostileWorld) checkQuarantined(src, dst string, body []byte, reason string) {
	w.t.Helper()
	got, ok := w.get(dst)
	if !ok {
		w.t.Errorf("%s: not quarantined at %s", src, dst)
		return
	}
	if !bytes.Equal(got, body) {
		w.t.Errorf("%s: quarantined copy %s differs from the object (%d bytes, want %d)", src, dst, len(got), len(body))
	}
	rb, ok := w.get(dst + ".error.json")
	if !ok {
		w.t.Errorf("%s: no report %s.error.json", src, dst)
		return
	}
	var rep struct {
		Bucket, Key, Reason string
	}
	if err := json.Unmarshal(rb, &rep); err != nil {
		w.t.Errorf("%s: report is not JSON: %v", src, err)
		return
	}
	if rep.Bucket != w.bucket || rep.Key != src || !strings.Contains(rep.Reason, reason) {
		w.t.Errorf("%s: report names s3://%s/%s, reason %q; want this object and a reason containing %q", src, rep.Bucket, rep.Key, rep.Reason, reason)
	}
}

// ids returns the values of table's integer column col, sorted.
func (w *hostileWorld) ids(table, col string) []int64 {
	w.t.Helper()
	rows, err := w.db.Query("SELECT `" + col + "` FROM `" + table + "` ORDER BY 1")
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			w.t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// text returns column col of table's row id, byte for byte, and whether the
// row exists.
func (w *hostileWorld) text(table, col string, id int64) (string, bool) {
	w.t.Helper()
	var b []byte
	err := w.db.QueryRow("SELECT CAST(`"+col+"` AS BINARY) FROM `"+table+"` WHERE id = ?", id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b), true
}

func hostileClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n... (%d more bytes)", len(s)-n)
}
