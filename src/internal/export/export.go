package export

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
)

// Defaults of the Exporter's tunables.
const (
	DefaultLag            = 30 * time.Second
	DefaultChunkRows      = 100_000
	DefaultRowGroupRows   = 128 * 1024
	DefaultCompression    = "zstd"
	DefaultDeadlineMargin = 30 * time.Second
	DefaultPartSize       = bucket.MinPartSize
)

// Memory bounds besides row counts: a batch handed from the reader to the
// writer, and a Parquet row group, end early when their variable-length
// values (text, binary, large decimals) reach these sizes.
const maxBatchBytes = 8 << 20

var maxRowGroupBytes int64 = 64 << 20 // a variable for tests

// unlimited as a chunk size means one query for every due row.
const unlimited = math.MaxInt

// Exporter copies the rows of MySQL tables that are new or changed since
// its last run to S3, as a CSV and a Parquet file per table and run. See
// the package documentation for the watermark scheme.
type Exporter struct {
	DB     *sql.DB
	Bucket *bucket.Bucket
	Prefix string // e.g. bucket.DefaultExportPrefix; checked by bucket.ValidateExportPrefix

	Lag            time.Duration // the upper bound is the database clock minus Lag
	ChunkRows      int           // rows per keyset query: snapshot chunks, and incremental ones when an index serves the order (DefaultChunkRows)
	RowGroupRows   int           // rows per Parquet row group (DefaultRowGroupRows)
	Compression    string        // Parquet codec: zstd (default), snappy, gzip, none
	PartSize       int           // multipart part size (DefaultPartSize, at least 5 MiB)
	DeadlineMargin time.Duration // stop reading this long before ctx's deadline (DefaultDeadlineMargin)

	// RangeRows > 0 and a Ranges sender fan a table out: when more rows
	// than RangeRows are due, the run splits them into primary-key ranges
	// for range workers (ExportRange) instead of exporting them itself.
	RangeRows int
	Ranges    RangeSender

	RunID string           // recorded in the watermark and object metadata; random when empty
	Now   func() time.Time // file names, updated_at and deadline checks; time.Now when nil
	// DBClock reads the database's clock; nil means SELECT NOW(6). Tests
	// replace it to play a timeline.
	DBClock func(ctx context.Context, tx *sql.Tx) (time.Time, error)
}

func (e *Exporter) fanOut() bool { return e.RangeRows > 0 && e.Ranges != nil }

func (e *Exporter) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// begin starts a read-only REPEATABLE READ transaction on a connection of
// its own: the reader runs its queries on that connection directly
// (sql.Conn.Raw), inside the transaction. The caller rolls the transaction
// back, then closes the connection.
func (e *Exporter) begin(ctx context.Context) (*sql.Conn, *sql.Tx, error) {
	conn, err := e.DB.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("starting a read-only transaction: %w", err)
	}
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("starting a read-only transaction: %w", err)
	}
	return conn, tx, nil
}

func (e *Exporter) dbClock(ctx context.Context, tx *sql.Tx) (time.Time, error) {
	if e.DBClock != nil {
		return e.DBClock(ctx, tx)
	}
	var t time.Time
	if err := tx.QueryRowContext(ctx, "SELECT NOW(6)").Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("reading the database clock: %w", err)
	}
	return t.UTC(), nil
}

// Validate checks the Exporter's settings.
func (e *Exporter) Validate() error {
	var errs []error
	if e.DB == nil || e.Bucket == nil {
		errs = append(errs, errors.New("exporter needs a database and a bucket"))
	}
	if err := bucket.ValidateExportPrefix(e.Prefix); err != nil {
		errs = append(errs, err)
	}
	if _, err := codec(e.Compression); err != nil {
		errs = append(errs, err)
	}
	if e.Lag < 0 || e.ChunkRows < 0 || e.RowGroupRows < 0 || e.DeadlineMargin < 0 {
		errs = append(errs, errors.New("negative lag, chunk size, row group size or deadline margin"))
	}
	return errors.Join(errs...)
}

// Run exports every table of specs, one after the other. A table's failure
// does not stop the others; Result.Err reports them all. Tables not started
// when the deadline margin is reached are deferred to the next run.
func (e *Exporter) Run(ctx context.Context, specs []TableSpec) Result {
	if e.RunID == "" {
		e.RunID = NewRunID(e.now())
	}
	res := Result{RunID: e.RunID}
	if err := e.Validate(); err != nil {
		return FailedResult(e.RunID, specs, err)
	}
	stamp := e.now().UTC().Format("20060102_150405")
	for _, s := range specs {
		if stop, ok := e.stopAt(ctx); ok && !e.now().Before(stop) {
			res.Tables = append(res.Tables, TableResult{Table: s.Name, Status: StatusDeferred})
			continue
		}
		res.Tables = append(res.Tables, e.exportTable(ctx, s, stamp))
	}
	return res
}

// NewRunID returns a sortable, unique run id.
func NewRunID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

func (e *Exporter) stopAt(ctx context.Context) (time.Time, bool) {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}, false
	}
	margin := e.DeadlineMargin
	if margin == 0 {
		margin = DefaultDeadlineMargin
	}
	return d.Add(-margin), true
}

// position is a row's place in export order.
type position struct {
	TS  time.Time
	Key []json.RawMessage
}

func (p *position) String() string {
	if p == nil {
		return ""
	}
	return p.TS.UTC().Format(TimeLayout) + " " + jsonText(p.Key)
}

// tableRun is the state of one table's export.
type tableRun struct {
	e     *Exporter
	spec  TableSpec
	stamp string
	res   *TableResult

	wmKey string
	etag  string // of the watermark object; "" when there was none
	old   *Watermark
	// snapshot: the table's first export, read in primary-key order up to a
	// fixed upper bound; from then holds the last key exported.
	snapshot bool
	from     *position
	t        *tableInfo
	upper    time.Time
	out      *objects       // the run's files, once a row was read
	count    <-chan counted // the validation count, started when the last row was read
	// The validation count of a snapshot, counted chunk by chunk by the
	// reader (nil: not counted so), and the time that took; both set when
	// the reader is done.
	chunkCount    *counted
	chunkCounting time.Duration
	// readEnd is the greatest position of a snapshot that this run read
	// whole: what snapshotEnd would select.
	readEnd *position
	// A range of a fanned-out run (ranged): rows in key order after from's
	// key and up to through's (nil: no end), after the position since (nil:
	// a snapshot), up to upper.
	ranged  bool
	since   *position
	through *position
	parts   *[2]string // a range's CSV and Parquet keys
	conn    *sql.Conn  // the transaction's connection
	connID  int64      // of the transaction's connection, to cancel its query at the deadline
	killed  bool       // a query was cancelled with KILL QUERY
}

func (e *Exporter) exportTable(ctx context.Context, spec TableSpec, stamp string) (res TableResult) {
	start := time.Now()
	res = TableResult{Table: spec.Name, Status: StatusFailed}
	r := &tableRun{e: e, spec: spec, stamp: stamp, res: &res}
	defer func() {
		if p := recover(); p != nil {
			r.abort(ctx)
			err := fmt.Errorf("internal error: %v\n%s", p, debug.Stack())
			res.Status, res.Error, res.err = StatusFailed, fmt.Sprint("internal error: ", p), &TableError{spec.Name, err}
		}
		res.Duration = time.Since(start)
	}()
	status, err := r.run(ctx)
	if err != nil {
		r.abort(ctx)
		res.Status = StatusFailed
		if errors.Is(err, bucket.ErrPrecondition) && status == StatusConflict {
			res.Status = StatusConflict
		}
		res.Error = err.Error()
		res.err = &TableError{spec.Name, err}
		return res
	}
	res.Status = status
	return res
}

func (r *tableRun) abort(ctx context.Context) {
	r.out.abort(ctx)
}

func (r *tableRun) run(ctx context.Context) (Status, error) {
	e, name := r.e, r.spec.Name
	if name == "" || strings.ContainsAny(name, "/\\") || strings.ContainsFunc(name, func(c rune) bool { return c < 0x20 }) {
		return StatusFailed, configError("table name %q cannot be part of an object key", name)
	}
	cols := r.spec.WatermarkColumns
	if len(cols) == 0 {
		cols = DefaultWatermarkColumns
	}
	r.wmKey = bucket.WatermarkKey(e.Prefix, name)

	// 1. The watermark: read first, with its ETag, so that the final write
	// can be conditional on nobody having moved it meanwhile. Only a
	// missing object means "no watermark yet": a missing bucket or a
	// denied access fails the table, naming the bucket.
	body, info, err := e.Bucket.ReadAll(ctx, r.wmKey, maxWatermarkSize)
	switch {
	case errors.Is(err, bucket.ErrGone):
	case err != nil:
		return StatusFailed, fmt.Errorf("reading the watermark: %w", err)
	default:
		w, err := ParseWatermark(body)
		if err != nil {
			return StatusFailed, fmt.Errorf("watermark %s: %w (fix it, or delete it to export the whole table again)", e.Bucket.URL(r.wmKey), err)
		}
		if w.Table != name {
			return StatusFailed, fmt.Errorf("watermark %s belongs to table %q", e.Bucket.URL(r.wmKey), w.Table)
		}
		r.old, r.etag = &w, info.ETag
	}

	// A fanned-out run not finished yet goes on first.
	if e.fanOut() {
		if status, handled, err := r.resume(ctx); handled {
			return status, err
		}
	}

	// 2. One read-only REPEATABLE READ transaction: every chunk and the final
	// count see the same snapshot.
	conn, tx, err := e.begin(ctx)
	if err != nil {
		return StatusFailed, err
	}
	defer conn.Close()
	defer tx.Rollback() //nolint:errcheck // read-only
	r.conn = conn

	if err := tx.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&r.connID); err != nil {
		return StatusFailed, fmt.Errorf("reading the connection id: %w", err)
	}
	r.t, err = loadTable(ctx, tx, name, cols)
	if err != nil {
		return StatusFailed, err
	}
	r.res.Warnings = append(r.res.Warnings, r.t.warnings...)
	if r.old != nil {
		if err := r.checkOld(); err != nil {
			return StatusFailed, err
		}
		r.from = &position{TS: r.old.Timestamp, Key: r.old.Key}
		r.res.From = r.old.Phase + " " + r.from.String()
	}
	clock, err := e.dbClock(ctx, tx)
	if err != nil {
		return StatusFailed, err
	}
	r.upper = clock.Add(-e.Lag).Truncate(time.Microsecond)
	switch {
	case r.old == nil:
		r.snapshot = true
	case r.old.Phase == PhaseSnapshot:
		// Go on with the snapshot, under the bound it started with.
		r.snapshot, r.upper = true, r.old.Timestamp
	}
	r.res.UpperBound = r.upper.UTC().Format(TimeLayout)

	// Too many due rows for one run: range workers export them.
	if e.fanOut() {
		due, err := r.countDue(ctx, tx)
		if err != nil {
			return StatusFailed, err
		}
		if due > int64(e.RangeRows) {
			return r.fanOut(ctx, tx, due)
		}
	}

	// 3. Stream the due rows to both files.
	last, rows, complete, countable, err := r.stream(ctx, tx)
	if err != nil {
		return StatusFailed, err
	}
	if rows == 0 {
		if !complete {
			return StatusDeferred, nil
		}
		if r.old == nil || !r.snapshot {
			return StatusUpToDate, nil
		}
		// The snapshot ended exactly where the last run stopped: record
		// that the table is now exported incrementally.
		end, err := r.snapshotEnd(ctx, tx)
		if err != nil {
			return StatusFailed, err
		}
		return r.moveWatermark(ctx, end, 0, true)
	}

	// 4. Validate before anything becomes visible.
	if err := r.validate(last, rows, countable); err != nil {
		return StatusFailed, fmt.Errorf("validation failed, watermark kept at %s: %w", r.from.String(), err)
	}

	// 5. Publish the files (never replacing an object), then check them.
	if err := r.commitFiles(ctx); err != nil {
		return StatusConflict, err
	}
	for _, w := range []*bucket.Writer{r.out.csv, r.out.pq} {
		info, err := e.Bucket.Head(ctx, w.Key())
		if err != nil {
			return StatusFailed, err
		}
		if info.Size != w.Size() {
			return StatusFailed, fmt.Errorf("%s holds %d bytes, %d were written", e.Bucket.URL(w.Key()), info.Size, w.Size())
		}
	}

	// 6. Move the watermark, only if it is still the one read in step 1.
	if r.snapshot && complete {
		if last, err = r.snapshotEnd(ctx, tx); err != nil {
			return StatusFailed, err
		}
	} else if r.snapshot {
		last.TS = r.upper
	}
	return r.moveWatermark(ctx, last, rows, complete)
}

// snapshotEnd is the incremental position a complete snapshot hands over:
// the greatest position among the rows up to the snapshot's bound. Every
// row at or before it was exported (the snapshot took every row up to the
// bound); a row committed late with a timestamp between it and the bound
// is still taken by the next run.
func (r *tableRun) snapshotEnd(ctx context.Context, tx *sql.Tx) (position, error) {
	if r.readEnd != nil {
		return *r.readEnd, nil
	}
	t := r.t
	enc := newEncoder(t.Key, 1)
	dest := append([]any{enc.dest[len(enc.dest)-1]}, enc.dest[:len(t.Key)]...)
	err := tx.QueryRowContext(ctx, t.lastPositionSQL(), r.upper.UTC().Format("2006-01-02 15:04:05.000000")).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		// Every row was changed after the bound: they all come next run.
		p := position{TS: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}
		if r.old != nil {
			p.Key = r.old.Key
		}
		return p, nil
	}
	if err != nil {
		return position{}, fmt.Errorf("reading the end of the snapshot: %w", err)
	}
	enc.scanned()
	ts, ok := (*enc.cells[len(t.Key)].value).(time.Time)
	if !ok {
		return position{}, fmt.Errorf("the watermark expression returned %T", *enc.cells[len(t.Key)].value)
	}
	p := position{TS: ts.UTC()}
	for i, k := range t.Key {
		v, err := k.keyValue(enc.cells[i])
		if err != nil {
			return position{}, err
		}
		p.Key = append(p.Key, v)
	}
	return p, nil
}

// moveWatermark writes the new watermark, conditional on the one read at
// the start. A snapshot that read every row becomes the incremental
// position (upper bound, last key): every row with a timestamp up to the
// bound was exported, and none at the bound has a greater key (the
// snapshot read keys in order up to the greatest).
func (r *tableRun) moveWatermark(ctx context.Context, last position, rows int64, complete bool) (Status, error) {
	e := r.e
	phase := PhaseIncremental
	if r.snapshot && !complete {
		phase = PhaseSnapshot
	}
	wm := Watermark{
		Phase: phase, Table: r.t.Name, Columns: names(r.t.Watermark), KeyColumns: names(r.t.Key),
		Timestamp: last.TS, Key: last.Key, Rows: rows, Files: r.res.Files,
		RunID: e.RunID, Complete: complete, UpdatedAt: e.now().UTC(),
	}
	put := bucket.PutOptions{ContentType: "text/plain; charset=utf-8", IfMatch: r.etag, IfNoneMatch: r.etag == ""}
	if _, err := e.Bucket.Put(ctx, r.wmKey, wm.Format(), put); err != nil {
		if errors.Is(err, bucket.ErrPrecondition) {
			return StatusConflict, fmt.Errorf("another run moved the watermark meanwhile; this run's files stay and its rows will be exported again: %w", err)
		}
		return StatusFailed, err
	}
	r.res.To = phase + " " + last.String()
	switch {
	case rows == 0:
		return StatusUpToDate, nil
	case complete:
		return StatusExported, nil
	}
	return StatusPartial, nil
}

func names(cols []*column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// checkOld makes sure the stored position means the same thing today.
func (r *tableRun) checkOld() error {
	same := func(a, b []string) bool {
		return slices.EqualFunc(a, b, strings.EqualFold)
	}
	if !same(r.old.Columns, names(r.t.Watermark)) {
		return configError("the watermark was written for watermark columns %v, the configuration says %v: restore the configuration, or delete s3://%s/%s to export the whole table again",
			r.old.Columns, names(r.t.Watermark), r.e.Bucket.Name(), r.wmKey)
	}
	if !same(r.old.KeyColumns, names(r.t.Key)) {
		return configError("the watermark was written for primary key %v, the table's key is now %v: delete s3://%s/%s to export the whole table again",
			r.old.KeyColumns, names(r.t.Key), r.e.Bucket.Name(), r.wmKey)
	}
	for i, c := range r.t.Key {
		if _, err := c.keyArg(r.old.Key[i]); err != nil {
			return configError("%v", err)
		}
	}
	return nil
}
