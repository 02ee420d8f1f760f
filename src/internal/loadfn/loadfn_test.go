package loadfn

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load"
	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

var (
	crawl1 = loadtest.Crawl{Characters: 60, Locations: 12, Episodes: 8, PageSize: 10, FetchedAt: time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC)}
	crawl2 = loadtest.Crawl{Characters: 60, Locations: 12, Episodes: 8, PageSize: 10, FetchedAt: time.Date(2026, 5, 2, 6, 0, 0, 0, time.UTC), Revision: 1}
)

// TestThreeShuffledDeliveriesEqualOneClean: S3 objects → notifications in
// SQS messages → Handle. Every file of a crawl delivered three times in
// shuffled order, then every file of a later crawl the same way, leaves the
// same tables as one clean delivery of each: the same data, and modifiedDate
// set on exactly the same rows. createdDate is the time of the first load
// that inserted the row, modifiedDate the time of the load that changed it.
func TestThreeShuffledDeliveriesEqualOneClean(t *testing.T) {
	clean, messy := newEnv(t), newEnv(t)
	hc, hm := clean.handler(nil, ""), messy.handler(nil, "")
	seed := uint64(time.Now().UnixNano())
	t.Logf("shuffle seed %d", seed)
	rng := rand.New(rand.NewPCG(1, seed))

	for _, c := range []loadtest.Crawl{crawl1, crawl2} {
		files := c.Files()
		if failed := deliver(t, hc, clean.upload(files, "clean")); len(failed) > 0 {
			t.Fatalf("clean delivery failed: %v", failed)
		}
		if failed := deliver(t, hm, times(messy.upload(files, "messy"), 3, rng)); len(failed) > 0 {
			t.Fatalf("shuffled delivery failed: %v", failed)
		}
	}
	want := loadtest.Expected(append(crawl1.Files(), crawl2.Files()...))
	compareDumps(t, "clean delivery vs generated data", dumps(t, clean.db, warehousedb.DumpData), want)
	compareDumps(t, "3x shuffled vs clean (modifiedDate set or not)", dumps(t, messy.db, warehousedb.DumpModified), dumps(t, clean.db, warehousedb.DumpModified))
	var changed int
	if err := messy.db.QueryRow("SELECT COUNT(*) FROM characters WHERE modifiedDate IS NOT NULL").Scan(&changed); err != nil || changed != 60/5 {
		t.Errorf("characters changed = %d (%v), want %d", changed, err, 60/5)
	}
	checkBookkeeping(t, messy.db, append(crawl1.Files(), crawl2.Files()...))
}

// checkBookkeeping checks createdDate and modifiedDate against the load log:
// createdDate is the loaded_at of the earliest load of a file holding the
// row; modifiedDate, when set, the loaded_at of a later load of such a file.
func checkBookkeeping(t *testing.T, db *sql.DB, files []loadtest.File) {
	t.Helper()
	ctx := context.Background()
	log, err := warehousedb.LoadLog(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	loadsOf := map[string][]time.Time{} // object key -> load times
	for _, e := range log {
		loadsOf[e.Key] = append(loadsOf[e.Key], e.LoadedAt)
	}
	for _, tb := range warehouse.Tables() {
		holding := map[string][]time.Time{} // row key -> load times of files holding it
		for _, f := range files {
			if f.Table != tb.Name {
				continue
			}
			for _, r := range f.Rows {
				k := r[0].Value
				if len(tb.Key) == 2 {
					k += "/" + r[1].Value
				}
				holding[k] = append(holding[k], loadsOf[f.Key]...)
			}
		}
		keys := strings.Join(quoteAll(tb.Key), ", ")
		rows, err := db.QueryContext(ctx, "SELECT CONCAT_WS('/', "+keys+"), createdDate, modifiedDate FROM "+warehousedb.Quote(tb.Name))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			var created time.Time
			var modified sql.NullTime
			if err := rows.Scan(&k, &created, &modified); err != nil {
				t.Fatal(err)
			}
			first := holding[k][0]
			for _, at := range holding[k] {
				if at.Before(first) {
					first = at
				}
			}
			if !created.Equal(first) {
				t.Errorf("%s %s: createdDate %s, want the first load's time %s", tb.Name, k, created, first)
			}
			if modified.Valid {
				ok := false
				for _, at := range holding[k] {
					ok = ok || (modified.Time.Equal(at) && at.After(created))
				}
				if !ok {
					t.Errorf("%s %s: modifiedDate %s is not the time of a later load of the row (%v)", tb.Name, k, modified.Time, holding[k])
				}
			}
		}
		rows.Close()
	}
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = warehousedb.Quote(n)
	}
	return out
}

// TestBatchReportsExactlyTheBadMessages mixes good messages with every kind
// of bad one; only messages that cannot be handled are reported, bad objects
// are quarantined with a report, and the good ones load.
func TestBatchReportsExactlyTheBadMessages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	files := loadtest.Crawl{Characters: 10, Locations: 3, Episodes: 2, FetchedAt: crawl1.FetchedAt}.Files()
	good := e.put(files[0].Key, files[0].Body) // locations page 1
	odd := e.put("processed/characters/odd name+ζ%20&.csv", files[1].Body)
	unknown := e.put("processed/aliens/page-0001.csv", files[0].Body)
	badHeader := e.put("processed/locations/bad header+ζ%.csv", []byte("id,name\n1,Earth\n"))
	stale := e.put("processed/locations/stale.csv", files[0].Body)
	e.put("processed/locations/stale.csv", []byte("id\n")) // overwritten since: its own notification handles the new bytes
	badValue := e.put("processed/episodes/bad-value.csv", []byte(strings.Join(warehouse.Tables()[2].Header(), ",")+"\n1,Pilot,December 2 2013,S01E01,1,1,u,2017-11-10T12:56:33.798Z,2026-01-01T00:00:00.000Z\n"))
	gone := load.ObjectRef{Bucket: e.bucket, Key: "processed/characters/missing.csv", ETag: "0123456789abcdef0123456789abcdef"}
	outside := e.put("raw/character/page-0001.json", []byte("{}"))
	other := good
	other.Bucket = "someone-elses-bucket"
	removed := Message("removed", good, 0, time.Now())
	removed.Body = strings.Replace(removed.Body, "ObjectCreated:Put", "ObjectRemoved:Delete", 1)

	msgs := []events.SQSMessage{
		Message("good", good, 0, time.Now()),
		{MessageId: "not-json", Body: "this is not JSON"},
		{MessageId: "not-s3", Body: `{"hello":"world"}`},
		{MessageId: "empty-records", Body: `{"Records":[]}`},
		{MessageId: "test-event", Body: `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-22T05:59:00.000Z","Bucket":"` + e.bucket + `"}`},
		Message("unknown-table", unknown, 0, time.Now()),
		Message("bad-header", badHeader, 0, time.Now()),
		Message("bad-value", badValue, 0, time.Now()),
		Message("gone", gone, 0, time.Now()),
		Message("other-bucket", other, 0, time.Now()),
		Message("outside-processed", outside, 0, time.Now()),
		removed,
		Message("odd-key", odd, 0, time.Now()),
		Message("stale", stale, 0, time.Now()),
	}
	h := e.handler(nil, "")
	statuses := map[string]Status{}
	h.Observe = func(o Outcome) { statuses[o.MessageID] = o.Status }
	failed := deliver(t, h, msgs)
	if got, want := joinSorted(failed), "empty-records,not-json,not-s3,other-bucket,outside-processed"; got != want {
		t.Errorf("failed = %s\nwant     %s", got, want)
	}
	for id, want := range map[string]Status{
		"good": Loaded, "odd-key": Loaded, "not-json": Rejected, "not-s3": Rejected, "empty-records": Rejected,
		"test-event": Skipped, "unknown-table": Quarantined, "bad-header": Quarantined, "bad-value": Quarantined,
		"gone": Skipped, "other-bucket": Rejected, "outside-processed": Rejected, "removed": Skipped, "stale": Skipped,
	} {
		if statuses[id] != want {
			t.Errorf("message %s: status %q, want %q", id, statuses[id], want)
		}
	}
	for _, q := range []struct {
		obj    load.ObjectRef
		table  string
		line   int
		column string
		text   string
	}{
		{unknown, "aliens", 0, "", `unknown table "aliens"`},
		{badHeader, "locations", 1, "type", `missing column "type"`},
		{badValue, "episodes", 2, "air_date", `"December 2 2013" is not a date`},
	} {
		dst := bucket.QuarantineKey(q.obj.Key)
		if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(dst)}); err != nil {
			t.Errorf("%s not quarantined at %s: %v", q.obj.Key, dst, err)
		}
		out, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(dst + ".error.json")})
		if err != nil {
			t.Errorf("no report for %s: %v", q.obj.Key, err)
			continue
		}
		var rep bucket.Report
		err = json.NewDecoder(out.Body).Decode(&rep)
		out.Body.Close()
		if err != nil || rep.Stage != "load" || rep.Key != q.obj.Key || rep.Table != q.table || rep.Line != q.line || rep.Column != q.column ||
			!strings.Contains(rep.Reason, q.text) || !strings.Contains(rep.Reason, q.obj.Key) {
			t.Errorf("report of %s = %+v (%v), want table %s line %d column %q and an error naming the object and %q", q.obj.Key, rep, err, q.table, q.line, q.column, q.text)
		}
	}
	var locs, chars, eps int
	if err := e.db.QueryRow("SELECT (SELECT COUNT(*) FROM locations), (SELECT COUNT(*) FROM characters), (SELECT COUNT(*) FROM episodes)").Scan(&locs, &chars, &eps); err != nil {
		t.Fatal(err)
	}
	if locs != 3 || chars != 10 || eps != 0 {
		t.Errorf("locations=%d characters=%d episodes=%d, want 3 10 0", locs, chars, eps)
	}
}

// TestDatabaseLostMidBatchLosesNothing cuts the database off in the middle
// of a batch, while a file's transaction is open: that message and the
// following ones are reported failed, the others acknowledged; once the
// database is back, redelivering the failed ones gives the clean tables.
// Two ways: the network to the server cut (a proxy closes every connection
// and refuses new ones until restored), and the server killing our sessions.
func TestDatabaseLostMidBatchLosesNothing(t *testing.T) {
	faults := map[string]func(t *testing.T, e *env) (dsn string, fault, recover func()){
		"network cut": func(t *testing.T, e *env) (string, func(), func()) {
			p := startProxy(t, mustAddr(t, e.dsn))
			return dsnVia(t, e.dsn, p.addr), p.cut, p.restore
		},
		"sessions killed": func(t *testing.T, e *env) (string, func(), func()) {
			return e.dsn, func() { killSessions(t, e.db) }, func() {}
		},
	}
	for name, setup := range faults {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			files := crawl1.Files()
			msgs := e.upload(files, "m")
			dsn, fault, recover := setup(t, e)
			fs := &faultyS3{API: e.s3, n: 5, fault: fault}
			h := e.handler(fs, dsn)
			failed := deliver(t, h, msgs)
			if len(failed) == 0 {
				t.Fatal("no message failed: the fault did not hit")
			}
			if failed[0] != msgs[4].MessageId {
				t.Errorf("first failure %s, want %s, the message whose transaction was cut", failed[0], msgs[4].MessageId)
			}
			recover()
			byID := map[string]events.SQSMessage{}
			for _, m := range msgs {
				byID[m.MessageId] = m
			}
			var again []events.SQSMessage
			for _, id := range failed {
				again = append(again, byID[id])
			}
			if failed := deliver(t, h, again); len(failed) > 0 {
				t.Fatalf("redelivery failed: %v", failed)
			}
			compareDumps(t, "after the outage and redelivery", dumps(t, e.db, warehousedb.DumpData), loadtest.Expected(files))
			compareDumps(t, "modifiedDate after the outage", dumps(t, e.db, warehousedb.DumpModified), dumpsOfClean(t, files))
		})
	}
}

func dumpsOfClean(t *testing.T, files []loadtest.File) map[string]string {
	t.Helper()
	e := newEnv(t)
	if failed := deliver(t, e.handler(nil, ""), e.upload(files, "c")); len(failed) > 0 {
		t.Fatal(failed)
	}
	return dumps(t, e.db, warehousedb.DumpModified)
}

func mustAddr(t *testing.T, dsn string) string {
	t.Helper()
	i, j := strings.Index(dsn, "tcp("), strings.Index(dsn, ")/")
	if i < 0 || j < i {
		t.Fatalf("DSN without tcp(host:port): cannot proxy")
	}
	return dsn[i+4 : j]
}

// killSessions kills every other session using the test's database.
func killSessions(t *testing.T, db *sql.DB) {
	rows, err := db.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()")
	if err != nil {
		t.Error(err)
		return
	}
	var list []int64
	for rows.Next() {
		var id int64
		_ = rows.Scan(&id)
		list = append(list, id)
	}
	rows.Close()
	for _, id := range list {
		_, _ = db.Exec("KILL CONNECTION " + strconv.FormatInt(id, 10))
	}
}

// TestConcurrentWorkersSameRows: four workers (each its own handler and
// pool, as four Lambda instances) load three crawls delivered twice in a
// shuffled order, files overlapping on the same rows (the links especially).
// No deadlock or lock timeout surfaces as a failure, and the data equals the
// newest of every row.
func TestConcurrentWorkersSameRows(t *testing.T) {
	e := newEnv(t)
	var files []loadtest.File
	var msgs []events.SQSMessage
	for rev := range 3 {
		c := loadtest.Crawl{Characters: 120, Locations: 30, Episodes: 25, PageSize: 20, Revision: rev, FetchedAt: crawl1.FetchedAt.Add(time.Duration(rev) * time.Hour)}
		fs := c.Files()
		for i := range fs {
			fs[i].Key = strings.Replace(fs[i].Key, "/page-", fmt.Sprintf("/rev%d-page-", rev), 1)
		}
		files = append(files, fs...)
		msgs = append(msgs, e.upload(fs, fmt.Sprintf("r%d", rev))...)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("shuffle seed %d", seed)
	queue := times(msgs, 2, rand.New(rand.NewPCG(7, seed)))
	ch := make(chan []events.SQSMessage)
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for range 4 {
		h := e.handler(nil, "")
		wg.Go(func() {
			for batch := range ch {
				resp, err := h.Handle(context.Background(), events.SQSEvent{Records: batch})
				mu.Lock()
				if err != nil {
					failed = append(failed, err.Error())
				}
				for _, f := range resp.BatchItemFailures {
					failed = append(failed, f.ItemIdentifier)
				}
				mu.Unlock()
			}
		})
	}
	for i := 0; i < len(queue); i += 5 {
		ch <- queue[i:min(i+5, len(queue))]
	}
	close(ch)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("failures under concurrency: %v", failed)
	}
	compareDumps(t, "concurrent workers", dumps(t, e.db, warehousedb.DumpData), loadtest.Expected(files))
}

func TestParseBody(t *testing.T) {
	good := Message("x", load.ObjectRef{Bucket: "b", Key: "processed/characters/a b+c%.csv", ETag: "e"}, 1, time.Now()).Body
	for _, c := range []struct {
		body string
		ok   bool
		test bool
		key  string
	}{
		{good, true, false, "processed/characters/a b+c%.csv"},
		{`{"Service":"Amazon S3","Event":"s3:TestEvent"}`, true, true, ""},
		{`not json`, false, false, ""},
		{`[]`, false, false, ""},
		{`{}`, false, false, ""},
		{`{"Records":[{}]}`, false, false, ""},
		{`{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`, false, false, ""},
		{`{"Records":[{"eventSource":"aws:sqs","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`, false, false, ""},
	} {
		n, err := parseBody(c.body)
		if (err == nil) != c.ok || n.testEvent != c.test || (c.key != "" && n.records[0].S3.Object.URLDecodedKey != c.key) {
			t.Errorf("parseBody(%.60q) = %+v, %v", c.body, n, err)
		}
	}
}

func FuzzParseBody(f *testing.F) {
	f.Add(Message("x", load.ObjectRef{Bucket: "b", Key: "processed/characters/p.csv", ETag: "e"}, 1, time.Now()).Body)
	f.Add(`{"Service":"Amazon S3","Event":"s3:TestEvent"}`)
	f.Add(`{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"},"object":{"key":"a+b%2F"}}}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		n, err := parseBody(body)
		if err == nil && !n.testEvent {
			for _, r := range n.records {
				if r.S3.Bucket.Name == "" || r.S3.Object.Key == "" {
					t.Fatalf("accepted a record without bucket or key: %q", body)
				}
			}
		}
	})
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"BUCKET": "data", "S3_FORCE_PATH_STYLE": "true", "MYSQL_DSN": "root@tcp(127.0.0.1:3306)/w"}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil || c.Bucket != "data" || !c.PathStyle || c.DB.DSN == "" || c.Reserve != 5*time.Second {
		t.Errorf("ConfigFromEnv = %+v, %v", c, err)
	}
	_, err = ConfigFromEnv(func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "BUCKET") || !strings.Contains(err.Error(), "DB_HOST") {
		t.Errorf("empty env: %v, want BUCKET and DB_HOST reported together", err)
	}
}

// TestTransientS3FailureIsRetried: S3 unreachable is transient, not a quarantine.
func TestTransientS3FailureIsRetried(t *testing.T) {
	e := newEnv(t)
	files := loadtest.Crawl{Locations: 3, FetchedAt: crawl1.FetchedAt}.Files()
	msgs := e.upload(files, "s")
	h := e.handler(brokenS3{}, "")
	if failed := deliver(t, h, msgs); len(failed) != len(msgs) {
		t.Fatalf("failed = %v, want every message", failed)
	}
	testenv.EmptyBucket(t, e.s3, e.bucket, false)
	// nothing was quarantined (the bucket is empty) and the messages still load later
	e.upload(files, "s")
	if failed := deliver(t, e.handler(nil, ""), msgs); len(failed) != 0 {
		t.Fatalf("failed after S3 came back: %v", failed)
	}
}

type brokenS3 struct{ bucket.API }

func (brokenS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, io.ErrUnexpectedEOF
}

// TestNearTheDeadlineNothingStarts: with less than Reserve left, every
// object is reported failed (delivered again) without being started.
func TestNearTheDeadlineNothingStarts(t *testing.T) {
	e := newEnv(t)
	msgs := e.upload(loadtest.Crawl{Locations: 3, FetchedAt: crawl1.FetchedAt}.Files(), "d")
	h := e.handler(brokenS3{}, "") // S3 must not even be called
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	resp, err := h.Handle(ctx, events.SQSEvent{Records: msgs})
	if err != nil || len(resp.BatchItemFailures) != len(msgs) {
		t.Fatalf("Handle = %+v, %v; want every message failed", resp, err)
	}
	var tables int
	if err := e.db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&tables); err != nil || tables != 0 {
		t.Errorf("tables = %d (%v): nothing should have started, not even migrations", tables, err)
	}
}
