package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/parquet-go/parquet-go"
)

// objects are a run's (or a range's) CSV and Parquet files, streamed to the
// bucket and published together. Two goroutines encode them at once: CSV
// records and Parquet pages from the same batches of encoded rows, which
// each releases when done; parts upload in the background as they fill
// (bucket.Writer). Nothing is visible until commit.
type objects struct {
	csv, pq *bucket.Writer
	pqw     *parquet.GenericWriter[any]
	rg      *parquet.ConcurrentRowGroupWriter // the Parquet row group being filled
	csvEnc  *encoder
	csvBuf  []byte
	// rows and variable-length bytes in the Parquet row group being filled
	groupRows, maxGroupRows int64
	groupBytes              int64
	closed                  bool

	csvIn, pqIn chan *batch
	free        chan<- *batch
	wg          sync.WaitGroup
	mu          sync.Mutex
	err         error // the first encoder failure
	// stage times, each written by one goroutine
	csvEncode, csvUpload time.Duration
	pqEncode, pqUpload   time.Duration
}

// openObjects starts the CSV and Parquet objects of table t at csvKey and
// pqKey and their encoders; batches they are done with go back to free.
// With replace they overwrite what is there (a range's parts, written again
// by a redelivered message); otherwise they never replace an object.
func (e *Exporter) openObjects(ctx context.Context, t *tableInfo, csvKey, pqKey string, replace bool, free chan<- *batch) (*objects, error) {
	meta := map[string]string{bucket.MetaRunID: e.RunID, bucket.MetaTable: t.Name}
	o := &objects{
		csvEnc: newEncoder(t.Columns, 0), free: free,
		csv: e.Bucket.NewWriter(ctx, csvKey, bucket.WriteOptions{
			ContentType: "text/csv; charset=utf-8; header=present", Metadata: meta, IfNoneMatch: !replace, PartSize: e.PartSize}),
		pq: e.Bucket.NewWriter(ctx, pqKey, bucket.WriteOptions{
			ContentType: "application/vnd.apache.parquet", Metadata: meta, IfNoneMatch: !replace, PartSize: e.PartSize}),
	}
	cw := tablecsv.NewWriter(o.csv)
	if err := cw.WriteHeader(names(t.Columns)); err != nil {
		return nil, fmt.Errorf("writing the CSV header: %w", err)
	}
	if err := cw.Flush(); err != nil {
		return nil, fmt.Errorf("writing the CSV header: %w", err)
	}
	codec, err := codec(e.Compression)
	if err != nil {
		return nil, err
	}
	groupRows := e.RowGroupRows
	if groupRows <= 0 {
		groupRows = DefaultRowGroupRows
	}
	o.pqw = parquet.NewGenericWriter[any](timed{o.pq, &o.pqUpload}, t.parquetSchema(),
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(int64(groupRows)),
		parquet.DataPageVersion(1), // the most widely readable (pyarrow's and Spark's default)
		parquet.CreatedBy("rickmorty-pipeline exporter", "1", ""),
		parquet.KeyValueMetadata("mysql.table", t.Name),
		parquet.KeyValueMetadata("export.run_id", e.RunID),
	)
	o.rg, o.maxGroupRows = o.pqw.BeginRowGroup(), int64(groupRows)
	o.csvIn, o.pqIn = make(chan *batch, batchPool), make(chan *batch, batchPool)
	o.wg.Add(2)
	go o.encode(o.csvIn, o.writeCSV)
	go o.encode(o.pqIn, o.writeParquet)
	return o, nil
}

// timed is a writer that adds the time its writes take to d: the time an
// encoder waits for a part buffer (every one uploading) or for the commit.
type timed struct {
	w io.Writer
	d *time.Duration
}

func (t timed) Write(p []byte) (int, error) {
	start := time.Now()
	n, err := t.w.Write(p)
	*t.d += time.Since(start)
	return n, err
}

// write hands b to both encoders.
func (o *objects) write(b *batch) {
	b.pending.Store(2)
	o.csvIn <- b
	o.pqIn <- b
}

// encode runs one encoder: it writes every batch until the first error
// (then only releases them) and turns a panic into its error.
func (o *objects) encode(in <-chan *batch, write func(*batch) error) {
	defer o.wg.Done()
	var err error
	defer func() {
		if p := recover(); p != nil {
			o.fail(fmt.Errorf("internal error: %v\n%s", p, debug.Stack()))
			for b := range in {
				o.release(b)
			}
		}
	}()
	for b := range in {
		if err == nil {
			if err = write(b); err != nil {
				o.fail(err)
			}
		}
		o.release(b)
	}
}

func (o *objects) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

// failed is the first encoder failure, or nil.
func (o *objects) failed() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (o *objects) release(b *batch) {
	if b.pending.Add(-1) == 0 {
		o.free <- b
	}
}

func (o *objects) writeCSV(b *batch) error {
	start := time.Now()
	o.csvBuf = o.csvBuf[:0]
	for r := range b.n {
		o.csvBuf = o.csvEnc.appendCSV(o.csvBuf, b.cols, r)
	}
	o.csvEncode += time.Since(start)
	if _, err := (timed{o.csv, &o.csvUpload}).Write(o.csvBuf); err != nil {
		return fmt.Errorf("writing the CSV file: %w", err)
	}
	return nil
}

func (o *objects) writeParquet(b *batch) error {
	start, uploading := time.Now(), o.pqUpload
	defer func() { o.pqEncode += time.Since(start) - (o.pqUpload - uploading) }()
	// Column by column, 64 rows at a time (as parquet-go writes rows: a
	// page ends between two such writes), ending the row group at
	// EXPORT_ROW_GROUP_ROWS rows.
	for lo := 0; lo < b.n; {
		if o.groupRows == o.maxGroupRows {
			if err := o.endRowGroup(); err != nil {
				return err
			}
		}
		hi := lo + int(min(64, int64(b.n-lo), o.maxGroupRows-o.groupRows))
		for i, w := range o.rg.ColumnWriters() {
			if _, err := w.WriteRowValues(b.cols[i][lo:hi]); err != nil {
				return fmt.Errorf("writing the Parquet file: %w", err)
			}
		}
		o.groupRows += int64(hi - lo)
		lo = hi
	}
	// Rows with large values: end the row group by size too, or it could
	// hold EXPORT_ROW_GROUP_ROWS rows of megabytes each in memory.
	if o.groupBytes += int64(len(b.arena)); o.groupBytes >= maxRowGroupBytes {
		return o.endRowGroup()
	}
	return nil
}

// endRowGroup writes the row group being filled to the Parquet file.
func (o *objects) endRowGroup() error {
	if _, err := o.rg.Commit(); err != nil {
		return fmt.Errorf("writing the Parquet file: %w", err)
	}
	o.groupRows, o.groupBytes = 0, 0
	return nil
}

// finish waits for both encoders; with ok, it then ends both files (the
// Parquet footer, the last parts), which stay invisible until commit.
func (o *objects) finish(ok bool) error {
	if o.closed {
		return nil
	}
	o.closed = true
	close(o.csvIn)
	close(o.pqIn)
	o.wg.Wait()
	if err := o.failed(); err != nil || !ok {
		return err
	}
	pqStart, uploading := time.Now(), o.pqUpload
	if err := o.endRowGroup(); err != nil {
		return err
	}
	if err := o.pqw.Close(); err != nil {
		return fmt.Errorf("finishing the Parquet file: %w", err)
	}
	o.pqEncode += time.Since(pqStart) - (o.pqUpload - uploading)
	start := time.Now()
	defer func() { o.csvUpload += time.Since(start) }()
	if err := o.csv.Close(); err != nil {
		return err
	}
	return o.pq.Close()
}

// abort discards both objects.
func (o *objects) abort(ctx context.Context) {
	if o == nil {
		return
	}
	if !o.closed {
		_ = o.finish(false)
	}
	_ = o.csv.Abort(ctx)
	_ = o.pq.Abort(ctx)
}

// stages adds the objects' stage times to s.
func (o *objects) stages(s *Stages) {
	s.EncodeCSV += o.csvEncode
	s.EncodeParquet += o.pqEncode
	s.Upload += o.csvUpload + o.pqUpload
}

// open picks the run's file names and starts both files.
func (r *tableRun) open(ctx context.Context, free chan<- *batch) error {
	if r.parts != nil {
		var err error
		r.out, err = r.e.openObjects(ctx, r.t, r.parts[0], r.parts[1], true, free)
		return err
	}
	stem, err := r.freeStem(ctx, 0)
	if err != nil {
		return err
	}
	r.out, err = r.e.openObjects(ctx, r.t, r.csvKey(stem), r.pqKey(stem), false, free)
	return err
}

func (r *tableRun) csvKey(stem string) string {
	return bucket.ExportKey(r.e.Prefix, r.t.Name, bucket.CSV, stem)
}

func (r *tableRun) pqKey(stem string) string {
	return bucket.ExportKey(r.e.Prefix, r.t.Name, bucket.Parquet, stem)
}

// freeStem returns the first file stem from attempt on, <table>_data_<stamp>
// then <table>_data_<stamp>_1, _2, ..., whose CSV and Parquet names are both free.
func (r *tableRun) freeStem(ctx context.Context, attempt int) (string, error) {
	for i := attempt; i < attempt+100; i++ {
		stem := bucket.ExportStem(r.t.Name, r.stamp, i)
		taken := false
		for _, key := range []string{r.csvKey(stem), r.pqKey(stem)} {
			ok, err := r.e.Bucket.Exists(ctx, key)
			if err != nil {
				return "", err
			}
			taken = taken || ok
		}
		if !taken {
			return stem, nil
		}
	}
	return "", fmt.Errorf("no free file name for %s after 100 attempts", r.t.Name)
}

// validate checks, before the files become visible, that every count agrees.
func (r *tableRun) validate(last position, rows int64, countable bool) error {
	if r.out == nil {
		return errors.New("rows read but no file opened")
	}
	if n := r.out.pqw.File().NumRows(); n != rows {
		return fmt.Errorf("the Parquet file holds %d rows, %d were read from MySQL", n, rows)
	}
	r.res.Rows = rows
	r.res.CSVBytes, r.res.ParquetBytes = r.out.csv.Size(), r.out.pq.Size()
	if !countable {
		return nil
	}
	start := time.Now()
	c := <-r.count
	r.res.Stages.Validate += time.Since(start)
	n, err := c.n, c.err
	if err != nil {
		if r.killed {
			// KILL QUERY raced with the end of the read and hit the count.
			r.res.Warnings = append(r.res.Warnings, "the snapshot count check was interrupted after stopping at the deadline: "+err.Error())
			return nil
		}
		return fmt.Errorf("counting the exported range: %w", err)
	}
	if n != rows {
		return fmt.Errorf("the database holds %d rows between %s and %s, %d were exported", n, r.from.String(), last.String(), rows)
	}
	return nil
}

// commitFiles makes both files visible, never replacing an object. Small
// files (one part) that lose a name race move to the next free name;
// multipart ones cannot be renamed, so the race is reported.
func (r *tableRun) commitFiles(ctx context.Context) error {
	start := time.Now()
	defer func() { r.res.Stages.Upload += time.Since(start) }()
	o := r.out
	attempt := 0
	for {
		_, err := o.csv.Commit(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, bucket.ErrPrecondition) || attempt >= 10 {
			return err
		}
		attempt++
		stem, serr := r.freeStem(ctx, attempt)
		if serr != nil {
			return serr
		}
		if !o.csv.Rename(r.csvKey(stem)) || !o.pq.Rename(r.pqKey(stem)) {
			return fmt.Errorf("%w (a concurrent run took the name; this run's rows will be exported again)", err)
		}
	}
	r.res.Files = append(r.res.Files, o.csv.Key())
	if _, err := o.pq.Commit(ctx); err != nil {
		return fmt.Errorf("%w (its CSV twin %s stays; its rows will be exported again)", err, r.e.Bucket.URL(o.csv.Key()))
	}
	r.res.Files = append(r.res.Files, o.pq.Key())
	return nil
}
