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
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
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

// Compressions lists the Parquet codecs Compression accepts.
var Compressions = []string{"zstd", "snappy", "gzip", "none"}

func codec(name string) (compress.Codec, error) {
	switch name {
	case "", "zstd":
		return &zstd.Codec{Level: zstd.SpeedFastest}, nil
	case "snappy":
		return &snappy.Codec{}, nil
	case "gzip":
		return &gzip.Codec{Level: gzip.BestSpeed}, nil
	case "none":
		return &uncompressed.Codec{}, nil
	}
	return nil, fmt.Errorf("unknown Parquet compression %q (want one of %s)", name, strings.Join(Compressions, ", "))
}

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

	RunID string           // recorded in the watermark and object metadata; random when empty
	Now   func() time.Time // file names, updated_at and deadline checks; time.Now when nil
	// DBClock reads the database's clock; nil means SELECT NOW(6). Tests
	// replace it to play a timeline.
	DBClock func(ctx context.Context, tx *sql.Tx) (time.Time, error)
}

func (e *Exporter) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
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
	csv      *bucket.Writer
	pq       *bucket.Writer
	pqw      *parquet.GenericWriter[any]
	closed   bool
	csvEnc   *encoder // renders the CSV records on the writer goroutine
	csvBuf   []byte
	// variable-length bytes in the Parquet row group being written
	groupBytes int64
	connID     int64 // of the transaction's connection, to cancel its query at the deadline
	killed     bool  // a query was cancelled with KILL QUERY
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
	for _, w := range []*bucket.Writer{r.csv, r.pq} {
		if w != nil {
			_ = w.Abort(ctx)
		}
	}
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

	// 2. One read-only REPEATABLE READ transaction: every chunk and the final
	// count see the same snapshot.
	tx, err := e.DB.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return StatusFailed, fmt.Errorf("starting a read-only transaction: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only

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
	if err := r.validate(ctx, tx, last, rows, countable); err != nil {
		return StatusFailed, fmt.Errorf("validation failed, watermark kept at %s: %w", r.from.String(), err)
	}

	// 5. Publish the files (never replacing an object), then check them.
	if err := r.commitFiles(ctx); err != nil {
		return StatusConflict, err
	}
	for _, w := range []*bucket.Writer{r.csv, r.pq} {
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
	t := r.t
	q := "SELECT " + t.orderBy
	for _, k := range t.Key {
		q += ", " + quoteIdent(k.Name)
	}
	q += " FROM " + quoteIdent(t.Name) + " WHERE " + t.orderBy + " <= CAST(? AS DATETIME(6)) ORDER BY " + t.orderBy + " DESC"
	for _, k := range t.Key {
		q += ", " + quoteIdent(k.Name) + " DESC"
	}
	q += " LIMIT 1"
	enc := newEncoder(t.Key, 1)
	dest := append([]any{enc.dest[len(enc.dest)-1]}, enc.dest[:len(t.Key)]...)
	err := tx.QueryRowContext(ctx, q, r.upper.UTC().Format("2006-01-02 15:04:05.000000")).Scan(dest...)
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

// batch is a group of encoded rows handed from the reader to the writer.
type batch struct {
	rows  []parquet.Row
	n     int
	arena []byte
	last  position
}

// stream reads the due rows in keyset chunks and writes them to both files.
// It returns the position of the last row written, the row count, whether
// every due row was read (false: stopped at the deadline), and whether the
// transaction is still usable for the validation count.
func (r *tableRun) stream(ctx context.Context, tx *sql.Tx) (last position, rows int64, complete, countable bool, err error) {
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stop, ok := r.e.stopAt(ctx); ok {
		var c2 context.CancelFunc
		readCtx, c2 = context.WithDeadline(readCtx, stop)
		defer c2()
	}
	const pool = 3
	full := make(chan *batch, pool-1)
	free := make(chan *batch, pool)
	for range pool {
		free <- &batch{}
	}
	type outcome struct {
		read     int64
		complete bool
		err      error
	}
	done := make(chan outcome, 1)
	go func() {
		n, complete, err := r.read(readCtx, tx, full, free)
		close(full)
		done <- outcome{n, complete, err}
	}()
	var werr error
	for b := range full {
		if werr == nil {
			werr = r.write(ctx, b)
			if werr == nil {
				rows += int64(b.n)
				last = position{TS: b.last.TS, Key: slices.Clone(b.last.Key)}
			} else {
				cancel() // stop the reader; keep draining
			}
		}
		free <- b
	}
	out := <-done
	if werr != nil {
		return last, rows, false, false, werr
	}
	switch {
	case out.err == nil:
		complete, countable = out.complete, true
	case ctx.Err() == nil && errors.Is(readCtx.Err(), context.DeadlineExceeded):
		// The safety net: a query outlived the deadline margin. Rows written
		// so far stand; the transaction is gone with the cancelled query.
		r.res.Warnings = append(r.res.Warnings, "a query was cancelled at the deadline margin; the snapshot count check was skipped")
		complete, countable = false, false
	default:
		return last, rows, false, false, out.err
	}
	if out.read != rows {
		return last, rows, false, false, fmt.Errorf("%d rows read from MySQL but %d written to the CSV file", out.read, rows)
	}
	if err := r.closeFiles(); err != nil {
		return last, rows, false, false, err
	}
	return last, rows, complete, countable, nil
}

// chunkSQL is the keyset query. The position predicate is the row
// comparison (ts, k1, ..., kn) > (?, ?, ..., ?) written out as nested
// OR/AND, the form MySQL's range optimizer turns into index ranges.
func (t *tableInfo) chunkSQL(after bool, limit int) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.Name))
	}
	b.WriteString(", " + t.posExpr + " FROM " + quoteIdent(t.Name) + " WHERE " + t.orderBy + " <= CAST(? AS DATETIME(6))")
	if after {
		b.WriteString(" AND " + t.afterSQL())
	}
	b.WriteString(" ORDER BY " + t.orderBy)
	for _, k := range t.Key {
		b.WriteString(", " + quoteIdent(k.Name))
	}
	if limit < unlimited {
		b.WriteString(" LIMIT " + strconv.Itoa(limit))
	}
	return b.String()
}

// snapshotSQL is the snapshot's query: rows up to the bound, in key order
// after the last key read (a range of the primary key: cheap for every table).
func (t *tableInfo) snapshotSQL(after bool, limit int) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.Name))
	}
	b.WriteString(", " + t.posExpr + " FROM " + quoteIdent(t.Name) + " WHERE " + t.posExpr + " <= CAST(? AS DATETIME(6))")
	if after {
		b.WriteString(" AND " + t.keyAfterSQL())
	}
	b.WriteString(" ORDER BY ")
	for i, k := range t.Key {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(k.Name))
	}
	b.WriteString(" LIMIT " + strconv.Itoa(limit))
	return b.String()
}

// keyAfterSQL is the predicate "key > (?...)"; arguments from keyArgs.
func (t *tableInfo) keyAfterSQL() string {
	s, closing := "(", ")"
	for i, k := range t.Key {
		q, ph := quoteIdent(k.Name), k.keyPlaceholder()
		if i == len(t.Key)-1 {
			s += q + " > " + ph
			break
		}
		s += "(" + q + " > " + ph + " OR (" + q + " = " + ph + " AND "
		closing += "))"
	}
	return s + closing
}

func (t *tableInfo) keyArgs(p *position) ([]any, error) {
	var args []any
	for i, k := range t.Key {
		v, err := k.keyArg(p.Key[i])
		if err != nil {
			return nil, err
		}
		args = append(args, v)
		if i < len(t.Key)-1 {
			args = append(args, v)
		}
	}
	return args, nil
}

// afterSQL is the predicate "position > (?, key...)"; its arguments come
// from afterArgs.
func (t *tableInfo) afterSQL() string {
	ts := "CAST(? AS DATETIME(6))"
	s := "(" + t.orderBy + " > " + ts + " OR (" + t.orderBy + " = " + ts + " AND "
	closing := "))"
	for i, k := range t.Key {
		q, ph := quoteIdent(k.Name), k.keyPlaceholder()
		if i == len(t.Key)-1 {
			s += q + " > " + ph
			break
		}
		s += "(" + q + " > " + ph + " OR (" + q + " = " + ph + " AND "
		closing += "))"
	}
	return s + closing
}

func (t *tableInfo) afterArgs(p *position) ([]any, error) {
	ts := p.TS.UTC().Format("2006-01-02 15:04:05.000000")
	args := []any{ts, ts}
	for i, k := range t.Key {
		v, err := k.keyArg(p.Key[i])
		if err != nil {
			return nil, err
		}
		args = append(args, v)
		if i < len(t.Key)-1 {
			args = append(args, v)
		}
	}
	return args, nil
}

// read runs the chunk queries and sends encoded batches. It returns
// complete=false when it stopped at the deadline margin.
func (r *tableRun) read(ctx context.Context, tx *sql.Tx, full chan<- *batch, free <-chan *batch) (total int64, complete bool, err error) {
	e, t := r.e, r.t
	chunk := e.ChunkRows
	if chunk <= 0 {
		chunk = DefaultChunkRows
	}
	if !t.indexed && !r.snapshot {
		// Without an index every keyset query scans and sorts the table:
		// one query for all due rows is the cheapest (still streamed, and
		// stoppable at any batch by the deadline).
		chunk = unlimited
	}
	batchRows := min(1024, max(e.ChunkRows, 1))
	stop, hasStop := e.stopAt(ctx)
	enc := newEncoder(t.Columns, 1)
	tsCell := enc.cells[len(enc.cells)-1]
	keyCells := make([]cell, len(t.Key))
	keySnap := make([]snapshot, len(t.Key))
	for i, k := range t.Key {
		keyCells[i] = enc.cells[k.Index]
	}
	from := r.from
	upper := r.upper.UTC().Format("2006-01-02 15:04:05.000000")
	var b *batch
	send := func() error {
		if b == nil || b.n == 0 {
			return nil
		}
		b.last.Key = b.last.Key[:0]
		for i, k := range t.Key {
			v, err := k.keyValue(keySnap[i].cell())
			if err != nil {
				return err
			}
			b.last.Key = append(b.last.Key, v)
		}
		select {
		case full <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		b = nil
		return nil
	}
	var lastTS time.Time
	for {
		args := []any{upper}
		var q string
		var more []any
		var err error
		switch {
		case r.snapshot:
			q = t.snapshotSQL(from != nil, chunk)
			if from != nil {
				more, err = t.keyArgs(from)
			}
		default:
			q = t.chunkSQL(from != nil, chunk)
			if from != nil {
				more, err = t.afterArgs(from)
			}
		}
		if err != nil {
			return total, false, err
		}
		args = append(args, more...)
		rs, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return total, false, fmt.Errorf("querying %s: %w", t.Name, err)
		}
		n := 0
		stopped := false
		for rs.Next() {
			if err := rs.Scan(enc.dest...); err != nil {
				rs.Close()
				return total, false, fmt.Errorf("reading %s: %w", t.Name, err)
			}
			if b == nil {
				select {
				case b = <-free:
				case <-ctx.Done():
					rs.Close()
					return total, false, ctx.Err()
				}
				b.rows, b.arena, b.n = b.rows[:0], b.arena[:0], 0
			}
			var row parquet.Row
			if len(b.rows) < cap(b.rows) {
				row = b.rows[:len(b.rows)+1][len(b.rows)][:0]
			}
			row, b.arena, err = enc.encode(row, b.arena)
			if err != nil {
				rs.Close()
				return total, false, fmt.Errorf("table %s, row after %s: %w", t.Name, r.positionText(lastTS, keySnap), err)
			}
			b.rows = append(b.rows, row)
			b.n++
			n++
			total++
			ts, ok := (*tsCell.value).(time.Time)
			if !ok {
				rs.Close()
				return total, false, fmt.Errorf("table %s: watermark expression returned %T", t.Name, *tsCell.value)
			}
			lastTS = ts.UTC()
			b.last.TS = lastTS
			for i, c := range keyCells {
				keySnap[i].take(c)
			}
			if b.n == batchRows || len(b.arena) >= maxBatchBytes {
				if err := send(); err != nil {
					rs.Close()
					return total, false, err
				}
				if hasStop && !e.now().Before(stop) {
					stopped = true
					break
				}
			}
		}
		if stopped && chunk == unlimited {
			// Closing would drain every remaining due row: stop the query
			// instead (the transaction and its snapshot survive KILL QUERY).
			r.killQuery(ctx)
		}
		if err := rs.Close(); err != nil && !stopped {
			return total, false, fmt.Errorf("reading %s: %w", t.Name, err)
		}
		if err := rs.Err(); err != nil && !stopped {
			return total, false, fmt.Errorf("reading %s: %w", t.Name, err)
		}
		if err := send(); err != nil {
			return total, false, err
		}
		if stopped {
			return total, false, nil
		}
		if n < chunk {
			return total, true, nil
		}
		if hasStop && !e.now().Before(stop) {
			return total, false, nil
		}
		p := position{TS: lastTS}
		for i, k := range t.Key {
			v, err := k.keyValue(keySnap[i].cell())
			if err != nil {
				return total, false, err
			}
			p.Key = append(p.Key, v)
		}
		from = &p
	}
}

// killQuery interrupts the statement running on the transaction's
// connection, from another connection (a user may kill its own queries).
func (r *tableRun) killQuery(ctx context.Context) {
	if r.connID == 0 {
		return
	}
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := r.e.DB.ExecContext(kctx, "KILL QUERY ?", r.connID); err == nil {
		r.killed = true
	}
}

func (r *tableRun) positionText(ts time.Time, snaps []snapshot) string {
	if ts.IsZero() {
		return r.from.String()
	}
	p := position{TS: ts}
	for i, k := range r.t.Key {
		v, err := k.keyValue(snaps[i].cell())
		if err != nil {
			return "?"
		}
		p.Key = append(p.Key, v)
	}
	return p.String()
}

// snapshot keeps a copy of a key cell beyond the next Scan.
type snapshot struct {
	raw   sql.RawBytes
	isRaw bool
	value any
}

func (s *snapshot) take(c cell) {
	if c.raw != nil {
		s.isRaw = true
		if s.raw == nil {
			s.raw = make(sql.RawBytes, 0, 32)
		}
		s.raw = append(s.raw[:0], *c.raw...) // key columns are never NULL
		return
	}
	s.value = *c.value
}

func (s *snapshot) cell() cell {
	if s.isRaw {
		return cell{raw: &s.raw}
	}
	return cell{value: &s.value}
}

// write appends a batch to both files, opening them on the first batch.
func (r *tableRun) write(ctx context.Context, b *batch) error {
	if r.csv == nil {
		if err := r.open(ctx); err != nil {
			return err
		}
	}
	r.csvBuf = r.csvBuf[:0]
	for _, row := range b.rows {
		r.csvBuf = r.csvEnc.appendCSV(r.csvBuf, row)
	}
	if _, err := r.csv.Write(r.csvBuf); err != nil {
		return fmt.Errorf("writing the CSV file: %w", err)
	}
	if _, err := r.pqw.WriteRows(b.rows); err != nil {
		return fmt.Errorf("writing the Parquet file: %w", err)
	}
	// Rows with large values: end the row group by size too, or it could
	// hold EXPORT_ROW_GROUP_ROWS rows of megabytes each in memory.
	if r.groupBytes += int64(len(b.arena)); r.groupBytes >= maxRowGroupBytes {
		if err := r.pqw.Flush(); err != nil {
			return fmt.Errorf("writing the Parquet file: %w", err)
		}
		r.groupBytes = 0
	}
	return nil
}

// open picks the run's file names and starts both files.
func (r *tableRun) open(ctx context.Context) error {
	e, name := r.e, r.t.Name
	stem, err := r.freeStem(ctx, 0)
	if err != nil {
		return err
	}
	r.csvEnc = newEncoder(r.t.Columns, 0)
	meta := map[string]string{bucket.MetaRunID: e.RunID, bucket.MetaTable: name}
	r.csv = e.Bucket.NewWriter(ctx, r.csvKey(stem), bucket.WriteOptions{
		ContentType: "text/csv; charset=utf-8; header=present", Metadata: meta, IfNoneMatch: true, PartSize: e.PartSize})
	r.pq = e.Bucket.NewWriter(ctx, r.pqKey(stem), bucket.WriteOptions{
		ContentType: "application/vnd.apache.parquet", Metadata: meta, IfNoneMatch: true, PartSize: e.PartSize})

	cw := tablecsv.NewWriter(r.csv)
	if err := cw.WriteHeader(names(r.t.Columns)); err != nil {
		return fmt.Errorf("writing the CSV header: %w", err)
	}
	if err := cw.Flush(); err != nil {
		return fmt.Errorf("writing the CSV header: %w", err)
	}
	codec, err := codec(e.Compression)
	if err != nil {
		return err
	}
	groupRows := e.RowGroupRows
	if groupRows <= 0 {
		groupRows = DefaultRowGroupRows
	}
	r.pqw = parquet.NewGenericWriter[any](r.pq, r.t.parquetSchema(),
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(int64(groupRows)),
		parquet.DataPageVersion(1), // the most widely readable (pyarrow's and Spark's default)
		parquet.CreatedBy("rickmorty-pipeline exporter", "1", ""),
		parquet.KeyValueMetadata("mysql.table", name),
		parquet.KeyValueMetadata("export.run_id", e.RunID),
	)
	return nil
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

func (r *tableRun) closeFiles() error {
	if r.csv == nil || r.closed {
		return nil
	}
	r.closed = true
	if err := r.pqw.Close(); err != nil {
		return fmt.Errorf("finishing the Parquet file: %w", err)
	}
	if err := r.csv.Close(); err != nil {
		return err
	}
	return r.pq.Close()
}

// validate checks, before the files become visible, that every count agrees.
func (r *tableRun) validate(ctx context.Context, tx *sql.Tx, last position, rows int64, countable bool) error {
	if r.pqw == nil {
		return errors.New("rows read but no file opened")
	}
	if n := r.pqw.File().NumRows(); n != rows {
		return fmt.Errorf("the Parquet file holds %d rows, %d were read from MySQL", n, rows)
	}
	r.res.Rows = rows
	r.res.CSVBytes, r.res.ParquetBytes = r.csv.Size(), r.pq.Size()
	if !countable {
		return nil
	}
	q := "SELECT COUNT(*) FROM " + quoteIdent(r.t.Name) + " WHERE " + r.t.orderBy + " IS NOT NULL"
	var args []any
	after, argsOf := r.t.afterSQL, r.t.afterArgs
	if r.snapshot {
		q += " AND " + r.t.posExpr + " <= CAST(? AS DATETIME(6))"
		args = append(args, r.upper.UTC().Format("2006-01-02 15:04:05.000000"))
		after, argsOf = r.t.keyAfterSQL, r.t.keyArgs
	}
	if r.from != nil {
		q += " AND " + after()
		more, err := argsOf(r.from)
		if err != nil {
			return err
		}
		args = append(args, more...)
	}
	q += " AND NOT " + after()
	more, err := argsOf(&last)
	if err != nil {
		return err
	}
	args = append(args, more...)
	var n int64
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
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
	attempt := 0
	for {
		_, err := r.csv.Commit(ctx)
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
		if !r.csv.Rename(r.csvKey(stem)) || !r.pq.Rename(r.pqKey(stem)) {
			return fmt.Errorf("%w (a concurrent run took the name; this run's rows will be exported again)", err)
		}
	}
	r.res.Files = append(r.res.Files, r.csv.Key())
	if _, err := r.pq.Commit(ctx); err != nil {
		return fmt.Errorf("%w (its CSV twin %s stays; its rows will be exported again)", err, r.e.Bucket.URL(r.csv.Key()))
	}
	r.res.Files = append(r.res.Files, r.pq.Key())
	return nil
}

// parquetSchema is the file schema: one column per MySQL column, in table order.
func (t *tableInfo) parquetSchema() *parquet.Schema {
	fields := make([]parquet.Field, len(t.Columns))
	for i, c := range t.Columns {
		fields[i] = namedField{Node: c.parquetNode(), name: c.Name}
	}
	return parquet.NewSchema(t.Name, orderedGroup{fields: fields})
}

// orderedGroup is a group node whose fields keep the order given
// (parquet.Group sorts them by name).
type orderedGroup struct {
	parquet.Group
	fields []parquet.Field
}

func (g orderedGroup) Fields() []parquet.Field { return g.fields }

type namedField struct {
	parquet.Node
	name string
}

func (f namedField) Name() string { return f.name }

// Value is only used when Go values are deconstructed, which the exporter
// never does (it writes parquet.Row values); it supports maps for completeness.
func (f namedField) Value(base reflect.Value) reflect.Value {
	if base.Kind() == reflect.Map {
		return base.MapIndex(reflect.ValueOf(f.name))
	}
	return reflect.Value{}
}
