package export

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/fooddb"
)

// faultyS3 passes calls to S3 but lets a test fail or intercept some.
type faultyS3 struct {
	bucket.API
	put      func(key string) error // before PutObject; an error fails it
	complete func(key string) error // before CompleteMultipartUpload
}

func (f *faultyS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.put != nil {
		if err := f.put(aws.ToString(in.Key)); err != nil {
			return nil, err
		}
	}
	return f.API.PutObject(ctx, in, o...)
}

func (f *faultyS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	if f.complete != nil {
		if err := f.complete(aws.ToString(in.Key)); err != nil {
			return nil, err
		}
	}
	return f.API.CompleteMultipartUpload(ctx, in, o...)
}

var errKilled = errors.New("killed")

// An export that dies after storing its files but before moving the
// watermark loses nothing: the next run exports the same rows again.
func TestKilledBeforeWatermarkLosesNothing(t *testing.T) {
	h := newHarness(t)
	seedFood(t, h, 1)
	h.advance(24 * 365 * time.Hour)
	e := h.exporter(0, 5)
	e.Bucket = bucket.New(&faultyS3{API: h.s3, put: func(key string) error {
		if isWatermark(key) {
			return errKilled
		}
		return nil
	}}, h.name)
	res := e.Run(context.Background(), specsOf(fooddb.Orders, fooddb.Menu))
	for _, tr := range res.Tables {
		if tr.Status != StatusFailed || len(tr.Files) != 2 || !errors.Is(tr.Err(), errKilled) {
			t.Fatalf("%s: %+v", tr.Table, tr)
		}
		if _, ok := h.watermark(tr.Table); ok {
			t.Fatalf("%s: watermark written", tr.Table)
		}
	}
	if err := res.Err(); err == nil || !strings.Contains(err.Error(), "orders") || !strings.Contains(err.Error(), "menu") {
		t.Errorf("Result.Err() = %v, want both tables named", err)
	}
	// Meanwhile the business changes some rows.
	if _, err := fooddb.Mutate(context.Background(), h.db, fooddb.MutateOptions{Inserts: 2, Updates: 2, At: h.now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Minute)
	res = h.run(h.exporter(0, 5), specsOf(fooddb.Orders, fooddb.Menu)...)
	for _, tr := range res.Tables {
		if tr.Status != StatusExported || tr.From != "" {
			t.Errorf("%s: %+v", tr.Table, tr)
		}
		h.checkReplay(tr.Table)
		if n := len(h.dataFiles(tr.Table, "csv")); n != 2 {
			t.Errorf("%s: %d CSV files, want the dead run's and this one's", tr.Table, n)
		}
	}
}

// A failure while publishing (the Parquet twin cannot be completed) aborts
// the run's uploads and keeps the watermark: the next run starts over.
func TestFailedPublishKeepsWatermark(t *testing.T) {
	h := newHarness(t)
	h.exec(warehouseLike)
	// about 7 MB of CSV: a multipart upload
	h.exec("INSERT INTO characters SELECT seq, REPEAT('x', 250), 'Alive', NULL, NOW(3), NOW(3), ? - INTERVAL seq SECOND, NULL FROM seq_1_to_25000",
		dt3(h.now()))
	h.advance(time.Hour)
	e := h.exporter(0, 1000)
	e.Bucket = bucket.New(&faultyS3{API: h.s3, complete: func(key string) error {
		if strings.HasSuffix(key, ".parquet") || strings.HasSuffix(key, ".csv") {
			return errKilled
		}
		return nil
	}}, h.name)
	res := e.Run(context.Background(), specsOf("characters"))
	tr := res.Tables[0]
	if tr.Status != StatusFailed || !errors.Is(tr.Err(), errKilled) {
		t.Fatalf("%+v", tr)
	}
	if keys := h.list(h.prefix); len(keys) != 0 {
		t.Fatalf("objects left after a failed publish: %v", keys)
	}
	uploads, err := h.s3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(h.name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Errorf("%d multipart uploads not aborted", len(uploads.Uploads))
	}
	h.run(h.exporter(0, 1000), specsOf("characters")...)
	h.checkReplay("characters")
}

// Two overlapping runs: the one that finishes second cannot move the
// watermark (it changed since it was read); it reports a conflict, its files
// stay, and nothing is lost.
func TestOverlappingRunsConflict(t *testing.T) {
	h := newHarness(t)
	seedFood(t, h, 1)
	h.advance(24 * 365 * time.Hour)
	var other Result
	var once atomic.Bool
	a := h.exporter(0, 5)
	a.Bucket = bucket.New(&faultyS3{API: h.s3, put: func(key string) error {
		if isWatermark(key) && once.CompareAndSwap(false, true) {
			// B starts and finishes while A is about to move the watermark.
			h.advance(time.Second)
			other = h.exporter(0, 5).Run(context.Background(), specsOf(fooddb.Customer))
		}
		return nil
	}}, h.name)
	res := a.Run(context.Background(), specsOf(fooddb.Customer))
	tr := res.Tables[0]
	if tr.Status != StatusConflict || !errors.Is(tr.Err(), bucket.ErrPrecondition) || len(tr.Files) != 2 {
		t.Fatalf("A: %+v", tr)
	}
	if other.Tables[0].Status != StatusExported {
		t.Fatalf("B: %+v", other.Tables[0])
	}
	w, _ := h.watermark(fooddb.Customer)
	if w.RunID != other.RunID {
		t.Errorf("watermark written by %s, want B's run %s", w.RunID, other.RunID)
	}
	if n := len(h.dataFiles(fooddb.Customer, "csv")); n != 2 {
		t.Errorf("%d CSV files, want A's and B's", n)
	}
	h.checkReplay(fooddb.Customer)
}

// Runs in the same second never overwrite each other's files.
func TestSameSecondRunsPickNewNames(t *testing.T) {
	h := newHarness(t)
	h.exec(warehouseLike)
	e := h.exporter(0, 100)
	for i := 1; i <= 3; i++ {
		h.exec("INSERT INTO characters VALUES (?, 'n', 's', NULL, NOW(3), NOW(3), ?, NULL)", i, dt3(h.now().Add(-time.Minute)))
		h.run(e, specsOf("characters")...) // the clock does not move
	}
	files := h.dataFiles("characters", "csv")
	want := []string{"characters_data_20300101_000000.csv", "characters_data_20300101_000000_1.csv", "characters_data_20300101_000000_2.csv"}
	if len(files) != 3 {
		t.Fatalf("files %v", files)
	}
	for i, f := range files {
		if !strings.HasSuffix(f, "/"+want[i]) {
			t.Errorf("file %d = %s, want %s", i, f, want[i])
		}
	}
	if pq := h.dataFiles("characters", "parquet"); len(pq) != 3 || !strings.HasSuffix(pq[2], "_000000_2.parquet") {
		t.Errorf("parquet files %v", pq)
	}
	h.checkReplay("characters")
}

// Bad configuration fails only the table it concerns, with a clear error,
// and leaves every other table's export and watermark alone.
func TestBadConfigurationIsolated(t *testing.T) {
	h := newHarness(t)
	seedFood(t, h, 1)
	h.exec(`CREATE TABLE audit (id INT PRIMARY KEY, note VARCHAR(10), logged_at DATETIME(6) NOT NULL)`)
	h.exec(`CREATE TABLE nokey (id INT, createdDate DATETIME(6) NOT NULL, modifiedDate DATETIME(6))`)
	h.exec(`CREATE VIEW v_orders AS SELECT * FROM orders`)
	h.advance(24 * 365 * time.Hour)
	h.run(h.exporter(0, 5), specsOf(fooddb.Customer)...)
	wmBefore := string(h.get(bucket.WatermarkKey(h.prefix, "customer")))
	if _, err := fooddb.Mutate(context.Background(), h.db, fooddb.MutateOptions{Inserts: 2, Updates: 2, At: h.now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Minute)

	specs := []TableSpec{
		{Name: fooddb.Orders},
		{Name: "no_such_table"},
		{Name: "Orders"},
		{Name: fooddb.Customer, WatermarkColumns: []string{"updated_at", "createdDate"}},
		{Name: "audit"}, // no modifiedDate
		{Name: "nokey"},
		{Name: "v_orders"},
		{Name: "audit/x"},
		{Name: fooddb.Menu},
	}
	for i := range specs {
		if specs[i].WatermarkColumns == nil {
			specs[i].WatermarkColumns = DefaultWatermarkColumns
		}
	}
	res := h.exporter(0, 5).Run(context.Background(), specs)
	want := map[string]string{
		fooddb.Orders:   "",
		"no_such_table": `table "no_such_table" not found`,
		"Orders":        `did you mean "orders"`,
		fooddb.Customer: `no watermark column "updated_at"`,
		"audit":         `no watermark column "modifiedDate"`,
		"nokey":         "no PRIMARY KEY",
		"v_orders":      "is a view, not a base table",
		"audit/x":       "cannot be part of an object key",
		fooddb.Menu:     "",
	}
	for _, tr := range res.Tables {
		w := want[tr.Table]
		if w == "" {
			if tr.Status != StatusExported {
				t.Errorf("%s: %+v", tr.Table, tr)
			}
			continue
		}
		if tr.Status != StatusFailed || !strings.Contains(tr.Error, w) || !strings.Contains(tr.Err().Error(), tr.Table) || !errors.Is(tr.Err(), ErrConfig) {
			t.Errorf("%s: status %s, error %q, want it to say %q", tr.Table, tr.Status, tr.Error, w)
		}
		if len(tr.Files) != 0 {
			t.Errorf("%s: files %v", tr.Table, tr.Files)
		}
	}
	if got := res.Failed(); len(got) != 7 {
		t.Errorf("Failed() = %v", got)
	}
	if got := string(h.get(bucket.WatermarkKey(h.prefix, "customer"))); got != wmBefore {
		t.Errorf("customer's watermark changed by a failed run:\n%s\nwas\n%s", got, wmBefore)
	}
	h.checkReplay(fooddb.Orders)
	h.checkReplay(fooddb.Menu)

	// A watermark-column override that fits works.
	h.exec("INSERT INTO audit VALUES (1, 'a', ?), (2, NULL, ?)", dt6(h.now().Add(-time.Hour)), dt6(h.now().Add(-time.Hour)))
	tr := h.run(h.exporter(0, 5), TableSpec{Name: "audit", WatermarkColumns: []string{"logged_at"}}).Tables[0]
	if tr.Status != StatusExported || tr.Rows != 2 {
		t.Errorf("audit with logged_at: %+v", tr)
	}
	// A watermark written for other columns is not silently reinterpreted.
	res = h.exporter(0, 5).Run(context.Background(), []TableSpec{{Name: "audit", WatermarkColumns: []string{"logged_at", "logged_at"}}})
	if !strings.Contains(res.Tables[0].Error, "listed twice") {
		t.Errorf("duplicate column: %+v", res.Tables[0])
	}
	h.exec("ALTER TABLE audit ADD COLUMN createdDate DATETIME(6) NOT NULL DEFAULT '2020-01-01', ADD COLUMN modifiedDate DATETIME(6) NULL")
	res = h.exporter(0, 5).Run(context.Background(), specsOf("audit"))
	if !strings.Contains(res.Tables[0].Error, "written for watermark columns [logged_at]") {
		t.Errorf("changed watermark columns: %+v", res.Tables[0])
	}
}

// A watermark file that is not valid stops its table with a clear error.
func TestCorruptWatermarkStopsTheTable(t *testing.T) {
	h := newHarness(t)
	seedFood(t, h, 1)
	h.advance(24 * 365 * time.Hour)
	if _, err := h.bucket().Put(context.Background(), bucket.WatermarkKey(h.prefix, "menu"), []byte("table=menu\ntimestamp=yesterday\n"), bucket.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	res := h.exporter(0, 5).Run(context.Background(), specsOf(fooddb.Menu, fooddb.Location))
	if tr := res.Tables[0]; tr.Status != StatusFailed || !errors.Is(tr.Err(), ErrWatermarkSyntax) || !strings.Contains(tr.Error, "delete it") {
		t.Errorf("menu: %+v", tr)
	}
	if tr := res.Tables[1]; tr.Status != StatusExported {
		t.Errorf("location: %+v", tr)
	}
}

// deadlineRuns runs exports whose deadline comes after a few batches until
// one finishes, calling between after each partial run, and returns the
// statuses.
func deadlineRuns(t *testing.T, h *harness, table string, between func()) []Status {
	t.Helper()
	var statuses []Status
	for run := 0; run < 40; run++ {
		// Each call of the exporter's clock moves it five minutes on; the
		// run must stop 10 minutes before a deadline 30 minutes away. (The
		// clock starts at the harness's, so file names follow run order.)
		start := h.advance(time.Hour)
		var calls atomic.Int64
		e := h.exporter(0, 250)
		e.DeadlineMargin = 10 * time.Minute
		e.Now = func() time.Time { return start.Add(time.Duration(calls.Add(1)) * 5 * time.Minute) }
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(30*time.Minute))
		res := e.Run(ctx, specsOf(table))
		cancel()
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		tr := res.Tables[0]
		statuses = append(statuses, tr.Status)
		for _, w := range tr.Warnings {
			if !strings.Contains(w, "no index") {
				t.Errorf("run %d: warning %s", run, w)
			}
		}
		w, _ := h.watermark(table)
		if tr.Status == StatusPartial && (w.Complete || w.Rows != tr.Rows) {
			t.Errorf("partial run's watermark %+v", w)
		}
		if tr.Status == StatusExported || tr.Status == StatusUpToDate {
			if w.Phase != PhaseIncremental {
				t.Errorf("finished, but the watermark is in phase %s", w.Phase)
			}
			break // (up to date: the last partial run happened to end at the last row)
		}
		if between != nil {
			between()
		}
	}
	if last := statuses[len(statuses)-1]; len(statuses) < 3 || statuses[0] != StatusPartial || (last != StatusExported && last != StatusUpToDate) {
		t.Fatalf("statuses %v: want partial runs, then exported", statuses)
	}
	return statuses
}

// When the deadline approaches the run closes its files and saves its
// position; a table larger than one run can handle is exported completely
// over several runs, while the business goes on: first the snapshot (key
// order, fixed bound), then incremental runs (one ordered query, cancelled
// at the deadline).
func TestDeadlineSpreadsTableOverRuns(t *testing.T) {
	h := newHarness(t)
	h.exec(warehouseLike)
	const n = 2500
	base := h.now().Add(-24 * time.Hour)
	for i := 0; i < n; i += 500 {
		q := "INSERT INTO characters VALUES "
		var args []any
		for j := i; j < i+500; j++ {
			if j > i {
				q += ", "
			}
			q += "(?, 'n', 's', NULL, ?, ?, ?, NULL)"
			ts := dt3(base.Add(time.Duration(j/7) * time.Second)) // ties of seven
			args = append(args, j+1, ts, ts, ts)
		}
		h.exec(q, args...)
	}
	next := n + 1
	business := func() {
		h.advance(time.Second)
		ts := dt3(h.now().Add(-time.Millisecond))
		// updates on both sides of the snapshot's progress, and new rows
		h.exec("UPDATE characters SET status = 'changed', modifiedDate = ? WHERE id IN (3, 700, 1400, 2100, 2499)", ts)
		h.exec("INSERT INTO characters VALUES (?, 'new', 's', NULL, ?, ?, ?, NULL)", next, ts, ts, ts)
		next++
	}
	snap := deadlineRuns(t, h, "characters", business)
	h.advance(time.Minute)
	h.run(h.exporter(0, 250), specsOf("characters")...)
	h.checkReplay("characters")

	// Every row changes, sharing a few timestamps: the incremental run is
	// one ordered query (no index), stopped at the deadline several times.
	h.advance(time.Minute)
	h.exec("UPDATE characters SET status = CONCAT('v2-', id), modifiedDate = ? - INTERVAL (id MOD 3) SECOND", dt3(h.now()))
	h.advance(time.Minute)
	inc := deadlineRuns(t, h, "characters", nil)
	h.checkReplay("characters")
	t.Logf("snapshot runs %v, incremental runs %v", snap, inc)
}

// The exporter uses an indexed generated column equal to the COALESCE, with
// the same result as the plain expression.
func TestGeneratedColumnIndexIsUsed(t *testing.T) {
	h := newHarness(t)
	if _, err := fooddb.Food(context.Background(), h.db, fooddb.Options{Seed: 9, ExportIndex: true, Rows: map[string]int{fooddb.Orders: 5000}}); err != nil {
		t.Fatal(err)
	}
	h.exec("ANALYZE TABLE orders")
	ti, err := loadTable(context.Background(), h.db, fooddb.Orders, DefaultWatermarkColumns)
	if err != nil {
		t.Fatal(err)
	}
	if ti.orderBy != "`export_position`" || !ti.indexed || ti.hint != "" {
		t.Fatalf("orderBy %s indexed %v hint %q", ti.orderBy, ti.indexed, ti.hint)
	}
	for _, c := range ti.Columns {
		if c.Name == "export_position" {
			t.Errorf("the invisible column is exported")
		}
	}
	plan := explain(t, h.db, ti.chunkSQL(true, 10), "2030-01-01 00:00:00", "2024-01-01 00:00:00", "2024-01-01 00:00:00", 3)
	if !strings.Contains(plan, "ix_export_position") || strings.Contains(plan, "filesort") {
		t.Errorf("plan does not use the index: %s", plan)
	}
	h.advance(24 * 365 * time.Hour)
	res := h.run(h.exporter(0, 4), specsOf(fooddb.Tables()...)...)
	for _, tr := range res.Tables {
		if len(tr.Warnings) != 0 {
			t.Errorf("%s: %v", tr.Table, tr.Warnings)
		}
		h.checkReplay(tr.Table)
	}
}
