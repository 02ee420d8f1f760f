package dashboard_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/dashboard"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// hostileKey is a raw key that would run script if a page put it in as
// markup.
const hostileKey = `raw/character/<img src=x onerror="window.__pwned=1">'&.json`

// hostileFile reads a file of the reliability suite's hostile corpus.
func hostileFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "src", "internal", "reliability", "testdata", "hostile", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tableNames() []string {
	var names []string
	for _, t := range warehouse.Tables() {
		names = append(names, t.Name)
	}
	return names
}

// stage is a bucket on MinIO holding what the pipeline leaves behind: a
// quarantined object with its report, a rejected file, a watermark.
type stage struct {
	b        *bucket.Bucket
	name     string
	rejected string
	mark     export.Watermark
}

func newStage(t *testing.T) *stage {
	t.Helper()
	client, name := testenv.S3(t)
	ctx := context.Background()
	s := &stage{b: bucket.New(client, name), name: name}
	put := func(key string, body []byte) string {
		t.Helper()
		etag, err := s.b.Put(ctx, key, body, bucket.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return etag
	}
	put("raw/character/page-0001.json", hostileFile(t, "raw/good-characters.json"))
	etag := put(hostileKey, hostileFile(t, "raw/html.json"))
	if err := s.b.Quarantine(ctx, bucket.Report{Stage: "transform", Key: hostileKey, ETag: etag, Size: 51,
		Reason: `invalid character '<' looking for beginning of value: <script>window.__pwned=2</script>`, Time: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	s.rejected = bucket.RejectedKey("raw/character/wrong-shapes.json")
	put(s.rejected, []byte(`{"key":"raw/character/wrong-shapes.json","index":0,"reason":"url: not an API resource URL: \"javascript:alert(1)\"","record":{}}
{"key":"raw/character/wrong-shapes.json","index":1,"reason":"id: not an integer","record":{}}
{"key":"raw/character/wrong-shapes.json","index":2,"reason":"id: not an integer","record":{}}
`))
	s.mark = export.Watermark{Phase: export.PhaseIncremental, Table: warehouse.Characters, Columns: []string{"modifiedDate", "createdDate"},
		KeyColumns: []string{"id"}, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Key: []json.RawMessage{json.RawMessage("42")},
		Rows: 42, Files: []string{}, RunID: "run-1", Complete: true, UpdatedAt: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)}
	put(bucket.WatermarkKey(bucket.DefaultExportPrefix, warehouse.Characters), s.mark.Format())
	put(bucket.WatermarkKey(bucket.DefaultExportPrefix, warehouse.Episodes), []byte("not a watermark\n"))
	return s
}

// The monitor counts the bucket's areas, reads reports, rejected files and
// watermarks, and each table's rows, changes since the run and last
// modifiedDate, from a real S3 and a real MariaDB.
func TestMonitorReadsBucketAndWarehouse(t *testing.T) {
	s := newStage(t)
	db, dsn := testenv.MySQL(t)
	ctx := context.Background()
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO character_episodes (character_id, episode_id, createdDate, modifiedDate) VALUES " +
		"(1, 1, '2020-01-01', NULL), (1, 2, '2020-01-01', '2021-05-05 10:00:00.25'), (3, 3, '2023-01-01', NULL)"); err != nil {
		t.Fatal(err)
	}
	conn := mysqldb.NewConnector(mysqldb.Config{DSN: dsn, MaxOpenConns: 2}, nil)
	defer conn.Close()
	now := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	m := dashboard.New(dashboard.Config{Bucket: s.b, BucketName: s.name, DB: conn, Tables: tableNames(), Now: func() time.Time { return now }, MaxBusy: 1})

	st := m.Refresh(ctx)
	if len(st.Errors) != 0 {
		t.Fatalf("errors: %v", st.Errors)
	}
	if len(st.Tables) != 4 || st.Tables["character_episodes"] != 3 || st.Tables["characters"] != 0 {
		t.Errorf("tables = %v, want all four, character_episodes 3", st.Tables)
	}
	for _, ti := range st.TableInfo {
		if ti.ChangedLastRun != nil {
			t.Errorf("%s: changed in the last run = %d before any run", ti.Name, *ti.ChangedLastRun)
		}
	}
	wantObjects := map[string]int{"raw/": 2, "quarantine/": 1, "rejected/": 1, "exports/": 2}
	for a, n := range wantObjects {
		if st.Objects[a] != n {
			t.Errorf("objects[%s] = %d, want %d (all: %v)", a, st.Objects[a], n, st.Objects)
		}
	}

	if len(st.Problems) != 2 {
		t.Fatalf("problems = %+v, want the quarantined object and the rejected file", st.Problems)
	}
	byKind := map[string]dashboard.Problem{}
	for _, p := range st.Problems {
		byKind[p.Kind] = p
	}
	q := byKind[dashboard.Quarantined]
	if q.Source != hostileKey || q.Key != bucket.QuarantineKey(hostileKey) || q.Report != bucket.ReportKey(hostileKey) || q.Stage != "transform" || !strings.Contains(q.Reason, "<script>") {
		t.Errorf("quarantined = %+v", q)
	}
	r := byKind[dashboard.Rejected]
	if r.Key != s.rejected || r.Source != "raw/character/wrong-shapes.json" || r.Records != 3 || !strings.Contains(r.Reason, "javascript:alert(1)") || !strings.Contains(r.Reason, "id: not an integer") {
		t.Errorf("rejected = %+v", r)
	}

	w := st.Watermarks[warehouse.Characters]
	if w == nil || !w.Timestamp.Equal(s.mark.Timestamp) || w.Rows != 42 || w.RunID != "run-1" || w.AgeSeconds != now.Sub(s.mark.Timestamp).Seconds() {
		t.Errorf("characters watermark = %+v", w)
	}
	if bad := st.Watermarks[warehouse.Episodes]; bad == nil || !strings.Contains(bad.Error, "invalid watermark") {
		t.Errorf("an unreadable watermark is shown with its error: %+v", bad)
	}
	if ti := st.TableInfo[3]; ti.Name != "character_episodes" || ti.LastModified == nil || ti.LastModified.Format(time.RFC3339Nano) != "2021-05-05T10:00:00.25Z" {
		t.Errorf("character_episodes = %+v, want last modifiedDate 2021-05-05 10:00:00.25", ti)
	}

	// A run starts: rows created or modified since then are counted.
	m.RunStarted()
	st = m.Refresh(ctx)
	for _, ti := range st.TableInfo {
		want := int64(0)
		if ti.Name == "character_episodes" {
			want = 1
		}
		if ti.ChangedLastRun == nil || *ti.ChangedLastRun != want {
			t.Errorf("%s changed in the last run = %v, want %d", ti.Name, ti.ChangedLastRun, want)
		}
	}

	// The details of a quarantined object: its report and its first bytes, as
	// stored; nothing outside quarantine/ and rejected/.
	d, err := m.Detail(ctx, q.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Report, `window.__pwned=2`) || d.Head != string(hostileFile(t, "raw/html.json")) || d.Binary || d.Size != int64(len(d.Head)) {
		t.Errorf("detail = %+v", d)
	}
	if d, err := m.Detail(ctx, s.rejected); err != nil || d.Kind != dashboard.Rejected || !strings.Contains(d.Head, "javascript:alert(1)") {
		t.Errorf("detail of the rejected file = %+v, %v", d, err)
	}
	for _, key := range []string{"raw/character/page-0001.json", q.Report, bucket.WatermarkKey(bucket.DefaultExportPrefix, "characters"), "quarantine/../raw/x"} {
		if _, err := m.Detail(ctx, key); err == nil {
			t.Errorf("Detail(%q) read it: only quarantined copies and rejected files may be shown", key)
		}
	}
}

// Events, actions and objects written are kept in memory, newest first,
// and bounded.
func TestMonitorKeepsEventsAndActions(t *testing.T) {
	s := newStage(t)
	m := dashboard.New(dashboard.Config{Bucket: s.b, BucketName: s.name, Tables: tableNames()})
	for i := range 250 {
		m.Event(dashboard.Event{Key: "processed/x/" + string(rune('a'+i%26)) + ".csv", Function: "LoadFunction", Outcome: "loaded", Rows: 2})
	}
	m.ObjectCreated("raw/character/page-0001.json", true)
	m.ObjectCreated("processed/characters/page-0001.csv", false)
	m.ObjectCreated(bucket.QuarantineKey("raw/character/x.json"), false)
	m.ObjectCreated(bucket.ReportKey("raw/character/x.json"), false)
	a := m.Queue("export", "page")
	st := m.Refresh(context.Background())
	if len(st.Events) != 200 || st.RowsLoaded != 500 || st.Written["raw/"] != 1 || st.Written["processed/"] != 1 || st.Written["quarantine/"] != 1 || st.LastRunStart == nil {
		t.Errorf("events %d (want the last 200), rows loaded %d (want 500), written %v, last run %v", len(st.Events), st.RowsLoaded, st.Written, st.LastRunStart)
	}
	if len(st.Actions) != 1 || st.Actions[0].State != dashboard.Queued {
		t.Errorf("actions = %+v", st.Actions)
	}
	a.Start()
	a.Finish("4 tables", nil)
	st = m.Refresh(context.Background())
	if st.Actions[0].State != dashboard.Done || st.Runs["export"] != 1 {
		t.Errorf("actions = %+v, runs %v", st.Actions, st.Runs)
	}
}

// While changes keep coming, the bucket and the database are read again
// only once the last read's time, divided by MaxBusy, has passed; the rest
// of the status is always current.
func TestMonitorBoundsItsReads(t *testing.T) {
	s := newStage(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := dashboard.New(dashboard.Config{Bucket: s.b, BucketName: s.name, Tables: tableNames(), Now: func() time.Time { return now }, MaxBusy: 1e-9})
	ctx := context.Background()
	first := m.Refresh(ctx)
	if !first.FactsTime.Equal(now) || first.Objects["raw/"] != 2 {
		t.Fatalf("first refresh: facts of %v, objects %v", first.FactsTime, first.Objects)
	}
	if _, err := s.b.Put(ctx, "raw/character/page-0002.json", []byte("{}"), bucket.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	m.ObjectCreated("raw/character/page-0002.json", true)
	now = now.Add(time.Second)
	st := m.Refresh(ctx)
	if !st.FactsTime.Equal(first.FactsTime) || st.Objects["raw/"] != 2 || st.Written["raw/"] != 1 {
		t.Errorf("a change right after a read: facts of %v, objects %v, written %v; want the old facts and the new count", st.FactsTime, st.Objects, st.Written)
	}
	now = now.Add(time.Hour)
	if st := m.Refresh(ctx); !st.FactsTime.Equal(now) || st.Objects["raw/"] != 3 {
		t.Errorf("once the wait passed: facts of %v, objects %v", st.FactsTime, st.Objects)
	}
}
