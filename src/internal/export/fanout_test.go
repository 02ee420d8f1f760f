package export

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
)

// queue is a hand-written range queue: it keeps what it is sent.
type queue struct {
	mu   sync.Mutex
	msgs []RangeMessage
}

func (q *queue) SendRanges(_ context.Context, msgs []RangeMessage) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, msgs...)
	return nil
}

func (q *queue) take() []RangeMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.msgs
	q.msgs = nil
	return m
}

// work runs every queued range on workers at once, as the queue's event
// source mapping would, until the queue is empty; it returns the results.
func work(t *testing.T, q *queue, newWorker func() *Exporter) []RangeResult {
	t.Helper()
	var out []RangeResult
	for msgs := q.take(); len(msgs) > 0; msgs = q.take() {
		res := make([]RangeResult, len(msgs))
		var wg sync.WaitGroup
		for i, m := range msgs {
			wg.Go(func() { res[i] = newWorker().ExportRange(context.Background(), m) })
		}
		wg.Wait()
		out = append(out, res...)
	}
	return out
}

// seedCharacters inserts ids from..to with timestamps in ties of seven.
func seedCharacters(h *harness, from, to int, base time.Time) {
	for i := from; i <= to; i += 500 {
		q := "INSERT INTO characters VALUES "
		var args []any
		for j := i; j <= min(i+499, to); j++ {
			if j > i {
				q += ", "
			}
			q += "(?, 'n', 's', NULL, ?, ?, ?, NULL)"
			ts := dt3(base.Add(time.Duration(j/7) * time.Second))
			args = append(args, j, ts, ts, ts)
		}
		h.exec(q, args...)
	}
}

// checkParts asserts that the CSV and Parquet files of the table hold every
// row of it exactly once (exported files replayed equal the table, and no
// key appears twice in one format).
func checkParts(t *testing.T, h *harness, table string, wantRows int) {
	t.Helper()
	_, key, want := h.dump(table)
	for _, format := range []string{"csv", "parquet"} {
		seen := map[string]int{}
		for _, f := range h.dataFiles(table, format) {
			var recs []record
			if format == "csv" {
				_, recs = readCSV(t, h.get(f))
			} else {
				recs = parquetRecords(t, h.get(f))
			}
			for _, r := range recs {
				seen[keyOf(names(mustTable(t, h, table).Columns), key, r)]++
			}
		}
		total := 0
		for k, n := range seen {
			total += n
			if _, ok := want[k]; !ok {
				t.Errorf("%s: row %q is not in the table", format, k)
			}
		}
		if len(seen) != len(want) || total != wantRows {
			t.Errorf("%s: %d distinct rows in %d records, want %d rows in %d records", format, len(seen), total, len(want), wantRows)
		}
	}
	h.checkReplay(table)
}

func mustTable(t *testing.T, h *harness, table string) *tableInfo {
	t.Helper()
	ti, err := loadTable(context.Background(), h.db, table, DefaultWatermarkColumns)
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

// A table with more due rows than EXPORT_RANGE_ROWS is split into key
// ranges that workers export at once into part files; the watermark moves
// once, when the last range is stored; every row is in the parts exactly
// once, in CSV and in Parquet; an idle run writes nothing; a changed row
// comes with the next (incremental, fanned-out) run.
func TestFanOutExportsEveryRowOnce(t *testing.T) {
	h := newHarness(t)
	h.exec(warehouseLike)
	seedCharacters(h, 1, 2000, h.now().Add(-24*time.Hour))
	q := &queue{}
	exporter := func() *Exporter {
		e := h.exporter(0, 150)
		e.RangeRows, e.Ranges = 450, q
		return e
	}
	res := h.run(exporter(), specsOf("characters")...)
	if tr := res.Tables[0]; tr.Status != StatusFannedOut || tr.Rows != 2000 || len(q.msgs) != 5 {
		t.Fatalf("first run: %+v, %d messages", tr, len(q.msgs))
	}
	if _, ok := h.watermark("characters"); ok {
		t.Fatal("the watermark moved before the ranges were exported")
	}
	results := work(t, q, exporter)
	finished := 0
	for _, r := range results {
		if r.Err() != nil || (r.Status != RangeExported && r.Status != RangeFinished) {
			t.Fatalf("range %d: %+v", r.Range, r)
		}
		if r.Status == RangeFinished {
			finished++
		}
		want := "characters_data_20300101_000000_part-000" + string(rune('0'+r.Range))
		if len(r.Files) != 2 || !strings.Contains(r.Files[0], want+".csv") || !strings.Contains(r.Files[1], want+".parquet") {
			t.Errorf("range %d files %v", r.Range, r.Files)
		}
	}
	if finished != 1 {
		t.Fatalf("%d workers finished the run, want 1", finished)
	}
	w, ok := h.watermark("characters")
	if !ok || w.Phase != PhaseIncremental || w.Rows != 2000 || len(w.Files) != 10 || !w.Complete {
		t.Fatalf("watermark %+v", w)
	}
	checkParts(t, h, "characters", 2000)

	// Idle: nothing due, nothing written.
	before := h.list("")
	h.advance(time.Minute)
	if tr := h.run(exporter(), specsOf("characters")...).Tables[0]; tr.Status != StatusUpToDate || len(q.msgs) != 0 {
		t.Fatalf("idle run: %+v", tr)
	}
	if after := h.list(""); !slices.Equal(before, after) {
		t.Fatalf("an idle run wrote %v", after)
	}

	// 600 rows change and 400 arrive: an incremental run, fanned out too.
	h.exec("UPDATE characters SET status = 'changed', modifiedDate = ? WHERE id % 3 = 0 AND id <= 1800", dt3(h.now().Add(-time.Second)))
	seedCharacters(h, 2001, 2400, h.now().Add(-2*time.Hour))
	h.advance(time.Minute)
	if tr := h.run(exporter(), specsOf("characters")...).Tables[0]; tr.Status != StatusFannedOut || tr.Rows != 1000 {
		t.Fatalf("incremental run: %+v", tr)
	}
	for _, r := range work(t, q, exporter) {
		if r.Err() != nil {
			t.Fatalf("range %d: %v", r.Range, r.Err())
		}
	}
	h.checkReplay("characters")
	if w, _ := h.watermark("characters"); w.Rows != 1000 {
		t.Errorf("incremental watermark %+v", w)
	}
}

// partKiller fails the upload of one range's Parquet part: the worker
// dies halfway, its message is not acknowledged.
type partKiller struct {
	bucket.API
	part string
}

func (k *partKiller) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if in.Key != nil && strings.HasSuffix(*in.Key, k.part+".parquet") {
		return nil, errKilled
	}
	return k.API.PutObject(ctx, in, o...)
}

// A range worker killed halfway leaves the watermark where it was; the
// message comes again (or the next scheduled run resumes the run, sending
// what is not done) and the export completes with no duplicate and no gap.
// A range delivered twice rewrites the same part names.
func TestFanOutKilledRangeIsRedoneAlone(t *testing.T) {
	h := newHarness(t)
	h.exec(warehouseLike)
	seedCharacters(h, 1, 1000, h.now().Add(-24*time.Hour))
	q := &queue{}
	exporter := func() *Exporter {
		e := h.exporter(0, 100)
		e.RangeRows, e.Ranges = 300, q
		return e
	}
	h.run(exporter(), specsOf("characters")...)
	msgs := q.take()
	if len(msgs) != 4 {
		t.Fatalf("%d ranges", len(msgs))
	}
	// Range 2's worker dies; the others finish.
	for _, m := range msgs {
		e := exporter()
		if m.Range == 2 {
			e.Bucket = bucket.New(&partKiller{API: h.s3, part: "_part-0002"}, h.name)
		}
		r := e.ExportRange(context.Background(), m)
		if (m.Range == 2) != (r.Err() != nil) || (m.Range == 2 && !errors.Is(r.Err(), errKilled)) {
			t.Fatalf("range %d: %+v", m.Range, r)
		}
	}
	if _, ok := h.watermark("characters"); ok {
		t.Fatal("the watermark moved with a range missing")
	}
	// A redelivered range that is done is acknowledged and writes nothing.
	if r := exporter().ExportRange(context.Background(), msgs[0]); r.Status != RangeSkipped || r.Err() != nil {
		t.Fatalf("redelivered done range: %+v", r)
	}
	// The next scheduled run finds the run unfinished and sends range 2 alone.
	h.advance(time.Hour)
	tr := h.run(exporter(), specsOf("characters")...).Tables[0]
	again := q.take()
	if tr.Status != StatusFannedOut || len(again) != 1 || again[0] != msgs[1] {
		t.Fatalf("resumed run: %+v, sent %v", tr, again)
	}
	// Delivered twice (the SQS retry and the resumed run's message): the
	// first finishes the run, the second has nothing left to do.
	first := exporter().ExportRange(context.Background(), again[0])
	second := exporter().ExportRange(context.Background(), msgs[1])
	if first.Status != RangeFinished || second.Status != RangeSkipped {
		t.Fatalf("range 2: %+v then %+v", first, second)
	}
	checkParts(t, h, "characters", 1000)
	if n := len(h.dataFiles("characters", "csv")); n != 4 {
		t.Errorf("%d CSV parts, want 4", n)
	}
	// A worker that stored its parts but died before recording them: the
	// same range again rewrites the same names.
	m, etag, err := exporter().readManifest(context.Background(), bucket.ExportManifestKey("characters", "20300101_000000"))
	if err != nil || m.State != RunDone {
		t.Fatalf("manifest %+v %v", m, err)
	}
	m.State, m.Ranges[2].State = RunRunning, RangePending
	if _, err := exporter().writeManifest(context.Background(), m, etag); err != nil {
		t.Fatal(err)
	}
	if r := exporter().ExportRange(context.Background(), RangeMessage{Table: "characters", Run: m.ID, Range: 3}); r.Err() != nil || r.Status != RangeFinished {
		t.Fatalf("range 3 again: %+v", r)
	}
	if n := len(h.dataFiles("characters", "parquet")); n != 4 {
		t.Errorf("%d Parquet parts after a rewrite, want 4", n)
	}
	checkParts(t, h, "characters", 1000)
}

// parquetRecords reads every row of a Parquet file as text fields.
func parquetRecords(t *testing.T, b []byte) []record {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("opening Parquet: %v", err)
	}
	fields := f.Schema().Fields()
	r := parquet.NewReader(f)
	defer r.Close()
	var out []record
	rows := make([]parquet.Row, 1)
	for {
		n, _ := r.ReadRows(rows)
		if n == 0 {
			break
		}
		rec := make(record, len(fields))
		for j, fl := range fields {
			rec[j] = tablecsv.Field{Value: fromParquet(t, fl, rows[0][j]), Null: rows[0][j].IsNull()}
		}
		out = append(out, rec)
	}
	if int64(len(out)) != f.NumRows() {
		t.Fatalf("read %d of %d Parquet rows", len(out), f.NumRows())
	}
	return out
}
