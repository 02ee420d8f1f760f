// Package load applies one processed CSV to its warehouse table: the whole
// file in one transaction, recorded in the load log in the same transaction
// so that a redelivery of the same object is skipped.
//
// The rows go to the server one of two ways (Path): streamed with LOAD DATA
// LOCAL INFILE where the server allows it (new keys inserted, existing keys
// staged and applied by one INSERT ... SELECT; see infile.go), else in
// multi-row upserts. Both apply the same rules, so applying is idempotent and
// order-independent either way: data fetched later overwrites data fetched
// earlier, never the reverse, and modifiedDate moves only when a value
// actually changes (see warehousedb.UpsertSQL).
package load

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// ObjectRef names the object a CSV was read from.
type ObjectRef struct {
	Bucket    string
	Key       string
	ETag      string // with or without quotes
	VersionID string // empty on unversioned buckets
}

func (o ObjectRef) String() string { return "s3://" + o.Bucket + "/" + o.Key }

// Version is what distinguishes two contents of the same key in the load
// log: the version id on versioned buckets, else the ETag.
func (o ObjectRef) Version() string {
	if o.VersionID != "" {
		return "version:" + o.VersionID
	}
	if e := strings.Trim(o.ETag, `"`); e != "" {
		return "etag:" + e
	}
	return ""
}

// Path names how Apply sends a file's rows to the database.
type Path string

// Paths.
const (
	// PathAuto (the zero Loader's): PathInfile where the server allows it,
	// else PathUpsert. The server's answer is remembered per *sql.DB for a
	// while (refusalTTL).
	PathAuto Path = ""
	// PathInfile streams the rows with LOAD DATA LOCAL INFILE: new keys
	// into the table, existing keys through a staging table applied by one
	// INSERT ... SELECT (see infile.go). A server that refuses it fails the
	// load.
	PathInfile Path = "load-data"
	// PathUpsert sends multi-row INSERT ... ON DUPLICATE KEY UPDATE statements.
	PathUpsert Path = "upsert"
)

// Result says what Apply did.
type Result struct {
	Table    string    `json:"table"`
	Rows     int64     `json:"rows"`               // data rows in the file
	Skipped  bool      `json:"skipped,omitempty"`  // the load log already held the object: nothing changed
	Attempts int       `json:"attempts"`           // transactions run (more than 1 after deadlocks)
	LoadedAt time.Time `json:"loadedAt"`           // the load time: createdDate/modifiedDate of the rows it touched
	Path     Path      `json:"path,omitempty"`     // how the rows were sent
	Fallback string    `json:"fallback,omitempty"` // with PathAuto, why the rows were not sent with LOAD DATA
}

// ContentError is a problem with the object itself: its header, a value, its
// CSV or UTF-8. Loading it again cannot succeed: the error is permanent.
type ContentError struct {
	Object   string // s3://bucket/key
	Line     int    // 0 when not about one line
	LastLine int    // > Line when about a range of lines (one batch)
	Column   string // "" when not about one column
	Err      error
}

func (e *ContentError) Error() string {
	var b strings.Builder
	b.WriteString(e.Object)
	switch {
	case e.LastLine > e.Line:
		fmt.Fprintf(&b, " lines %d-%d", e.Line, e.LastLine)
	case e.Line > 0:
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, " column %s", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ContentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is about the object's content, which no
// retry can fix. Every other error (database, network, S3) is transient.
func IsPermanent(err error) bool {
	var ce *ContentError
	return errors.As(err, &ce)
}

// Defaults of a zero Loader.
const (
	DefaultBatchRows   = 250     // measured: larger prepared statements cost MariaDB more per row
	DefaultBatchBytes  = 2 << 20 // statement size: well under every max_allowed_packet (16 MiB MariaDB, 64 MiB RDS)
	DefaultMaxAttempts = 5
	DefaultSpoolMemory = 4 << 20
)

// Loader applies processed CSVs. The zero value uses the defaults. A
// Loader remembers which databases refuse LOAD DATA LOCAL: keep one per
// process (do not copy it once used).
type Loader struct {
	Path        Path          // how to send the rows (PathAuto: the fastest the server allows)
	BatchRows   int           // rows per statement (PathUpsert; bounded by warehousedb.MaxPlaceholders too) or per chunk (PathInfile)
	BatchBytes  int           // approximate statement or chunk size
	MaxAttempts int           // transactions run when deadlocks or lock wait timeouts strike
	Backoff     time.Duration // before the second attempt, doubling (default 50ms)
	SpoolMemory int           // bytes of the object kept in memory for a retry before spooling to disk

	onRetry    func(attempt int, err error) // tests: called before each rerun
	afterBatch func(obj ObjectRef, n int)   // tests: called after the n-th statement or chunk of a transaction (from 1)
	afterProbe func(obj ObjectRef, n int)   // tests: called after the n-th chunk's existing-keys query (PathInfile)

	mu     sync.Mutex
	infile map[*sql.DB]infileState
}

// Apply loads the CSV r of table into db with the default Loader.
func Apply(ctx context.Context, db *sql.DB, table warehouse.Table, r io.Reader, obj ObjectRef) (Result, error) {
	var l Loader
	return l.Apply(ctx, db, table, r, obj)
}

// Loaded reports whether the load log already holds obj: a cheap check before
// fetching the object at all.
func Loaded(ctx context.Context, db *sql.DB, obj ObjectRef) (bool, error) {
	if obj.Version() == "" {
		return false, nil
	}
	ok, _, err := warehousedb.Loaded(ctx, db, obj.Bucket, obj.Key, obj.Version())
	return ok, err
}

// Apply loads the CSV r, whose header must be table.Header(), into db: every
// row or none, in one transaction that also records obj in the load log. An
// object already in the log is skipped (Result.Skipped). The transaction is
// rerun after a deadlock or a lock wait timeout, on r read again from the
// start: seeked back when r is an io.Seeker, reopened when it is a Reopener,
// else replayed from a copy kept as it was read (memory, then a temporary
// file). Errors about the content are *ContentError; the others are transient.
func (l *Loader) Apply(ctx context.Context, db *sql.DB, table warehouse.Table, r io.Reader, obj ObjectRef) (Result, error) {
	res := Result{Table: table.Name}
	if obj.Version() == "" {
		return res, fmt.Errorf("loading %s: the object has neither a version id nor an ETag to record", obj)
	}
	src := newReplay(r, cmp.Or(l.SpoolMemory, DefaultSpoolMemory))
	defer src.Close()
	attempts := cmp.Or(l.MaxAttempts, DefaultMaxAttempts)
	backoff := cmp.Or(l.Backoff, 50*time.Millisecond)
	stream := true // into an empty table, on the LOAD DATA path: one statement
	for {
		res.Attempts++
		res.Path, res.Fallback = l.choosePath(ctx, db, table)
		err := l.applyOnce(ctx, db, table, src, obj, stream, &res)
		if errors.Is(err, errStreamShort) {
			// Not a try: the same attempt again, in chunks.
			stream = false
			res.Attempts--
			if err := src.rewind(ctx); err != nil {
				return res, fmt.Errorf("loading %s: rewinding to load in chunks: %w", obj, err)
			}
			continue
		}
		var refused *refusedError
		if errors.As(err, &refused) && l.Path == PathAuto {
			// Not a try: run the same attempt again on the upsert path.
			l.remember(db, refused.Error())
			res.Attempts--
			if err := src.rewind(ctx); err != nil {
				return res, fmt.Errorf("loading %s: rewinding after LOAD DATA was refused: %w", obj, err)
			}
			continue
		}
		if err == nil || !retryable(err) || res.Attempts >= attempts {
			return res, err
		}
		if l.onRetry != nil {
			l.onRetry(res.Attempts, err)
		}
		wait := backoff<<(res.Attempts-1) + rand.N(backoff)
		select {
		case <-ctx.Done():
			return res, errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		if err := src.rewind(ctx); err != nil {
			return res, fmt.Errorf("loading %s: rewinding for a retry: %w", obj, err)
		}
	}
}

func (l *Loader) applyOnce(ctx context.Context, db *sql.DB, table warehouse.Table, r io.Reader, obj ObjectRef, stream bool, res *Result) (err error) {
	res.Rows, res.Skipped, res.LoadedAt = 0, false, time.Time{}
	cr := tablecsv.NewReader(r)
	if err := checkHeader(cr, table, obj); err != nil {
		return err
	}
	cr.FieldCount = len(table.Columns)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("loading %s: beginning a transaction: %w", obj, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// One load time, read from the database's clock (the one the exporter
	// compares with): createdDate of every row this file inserts and
	// modifiedDate of every row it changes.
	var now time.Time
	if err := tx.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&now); err != nil {
		return fmt.Errorf("loading %s: reading the clock: %w", obj, err)
	}
	res.LoadedAt = now.UTC()
	entry := warehousedb.LoadEntry{Bucket: obj.Bucket, Key: obj.Key, Version: obj.Version(), Table: table.Name, LoadedAt: res.LoadedAt}
	claimed, err := warehousedb.ClaimLoad(ctx, tx, entry)
	if err != nil {
		return fmt.Errorf("loading %s: %w", obj, err)
	}
	if !claimed {
		res.Skipped = true
		_ = tx.Rollback()
		return nil
	}

	var total int64
	if res.Path == PathInfile {
		total, err = newInfileLoader(table, l, now, obj, stream).run(ctx, tx, cr)
	} else {
		b := newBatcher(table, l, now, obj)
		b.afterBatch = l.afterBatch
		total, err = b.run(ctx, tx, cr)
	}
	if err != nil {
		return err
	}
	res.Rows = total
	entry.Rows = total
	if err := warehousedb.FinishLoad(ctx, tx, entry); err != nil {
		return fmt.Errorf("loading %s: %w", obj, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("loading %s: committing: %w", obj, err)
	}
	return nil
}

func checkHeader(cr *tablecsv.Reader, table warehouse.Table, obj ObjectRef) error {
	got, err := cr.Read()
	if err == io.EOF {
		return &ContentError{Object: obj.String(), Err: errors.New("empty object: no header row")}
	}
	if err != nil {
		var pe *tablecsv.ParseError
		if errors.As(err, &pe) {
			return &ContentError{Object: obj.String(), Line: pe.Line, Err: fmt.Errorf("header: %w", pe.Err)}
		}
		return fmt.Errorf("loading %s: reading the header: %w", obj, err)
	}
	want := table.Header()
	names := make([]string, len(got))
	for i, f := range got {
		names[i] = f.Value
	}
	if slices.Equal(names, want) {
		return nil
	}
	fail := func(column, format string, args ...any) error {
		return &ContentError{Object: obj.String(), Line: 1, Column: column,
			Err: fmt.Errorf("header does not match table %s (%s): %s", table.Name, strings.Join(want, ","), fmt.Sprintf(format, args...))}
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			return fail(w, "missing column %q", w)
		}
	}
	for i, n := range names {
		if !slices.Contains(want, n) {
			return fail(n, "unexpected column %q (position %d)", n, i+1)
		}
		if slices.Index(names, n) != i {
			return fail(n, "column %q appears twice", n)
		}
	}
	for i, w := range want {
		if names[i] != w {
			return fail(names[i], "column %d is %q, want %q", i+1, names[i], w)
		}
	}
	return fail("", "header differs")
}

// batcher upserts the records of a CSV in multi-row statements. A producer
// goroutine reads and converts the next batch while the current one executes
// on the server, so parsing overlaps the database's work; at most
// batchBuffers batches are in memory.
type batcher struct {
	table warehouse.Table
	obj   ObjectRef
	now   any // the load time, boxed once
	// last holds, per DateTime or Date column, the last text converted and
	// its value: fetched_at is the same on every row of a file, and
	// converting (and boxing) it once saves work and garbage per row.
	last []struct {
		text string
		val  any
	}
	perRow   int
	maxRows  int
	maxBytes int
	keyIdx   []int
	stmt     *sql.Stmt // prepared upsert of maxRows rows, closed with the transaction

	afterBatch func(obj ObjectRef, n int)
}

const batchBuffers = 3

// batch is one statement's worth of rows.
type batch struct {
	rows  []row
	vals  []any // backing array of the rows' values, in file order
	args  []any // the statement's arguments: rows in key order, duplicates dropped
	n     int   // rows in args
	read  int64 // records read into the batch
	bytes int
	first int // first and last line of the batch
	last  int
	err   error // a ContentError or a read error: the producer stopped here
}

type row struct {
	line int
	vals []any // perRow values, a window of batch.vals
}

func newBatcher(t warehouse.Table, l *Loader, now time.Time, obj ObjectRef) *batcher {
	perRow := warehousedb.UpsertArgs(t)
	maxRows := cmp.Or(l.BatchRows, DefaultBatchRows)
	maxRows = max(1, min(maxRows, warehousedb.MaxPlaceholders/perRow))
	b := &batcher{table: t, obj: obj, now: now, perRow: perRow, maxRows: maxRows, maxBytes: cmp.Or(l.BatchBytes, DefaultBatchBytes)}
	b.last = make([]struct {
		text string
		val  any
	}, len(t.Columns))
	for _, k := range t.Key {
		for i, c := range t.Columns {
			if c.Name == k {
				b.keyIdx = append(b.keyIdx, i)
			}
		}
	}
	return b
}

// run applies every record of cr in tx and returns how many it read.
func (b *batcher) run(ctx context.Context, tx *sql.Tx, cr *tablecsv.Reader) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	free := make(chan *batch, batchBuffers)
	for range batchBuffers {
		free <- &batch{}
	}
	ready := make(chan *batch, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ready)
		b.produce(ctx, cr, free, ready)
	}()
	// The producer reads the object: it must be gone before a retry rereads it.
	defer func() { cancel(); <-done }()
	var total int64
	batches := 0
	for bt := range ready {
		if bt.err != nil {
			return total, bt.err
		}
		if err := b.exec(ctx, tx, bt); err != nil {
			return total, err
		}
		batches++
		if b.afterBatch != nil {
			b.afterBatch(b.obj, batches)
		}
		total += bt.read
		free <- bt
	}
	return total, ctx.Err()
}

// produce fills batches from cr until EOF, an error, or ctx is done.
func (b *batcher) produce(ctx context.Context, cr *tablecsv.Reader, free <-chan *batch, ready chan<- *batch) {
	send := func(bt *batch) bool {
		select {
		case ready <- bt:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		var bt *batch
		select {
		case bt = <-free:
		case <-ctx.Done():
			return
		}
		bt.rows, bt.vals, bt.read, bt.bytes, bt.err = bt.rows[:0], bt.vals[:0], 0, 0, nil
		if bt.vals == nil {
			bt.vals = make([]any, 0, b.maxRows*b.perRow)
		}
		eof, err := fill(cr, b.obj, func() bool { return len(bt.rows) >= b.maxRows || bt.bytes >= b.maxBytes },
			func(rec []tablecsv.Field, line int) error { return b.add(bt, rec, line) })
		if err != nil {
			bt.err = err
			send(bt)
			return
		}
		if bt.read > 0 {
			b.arrange(bt)
			if !send(bt) {
				return
			}
		}
		if eof {
			return
		}
	}
}

// fill reads records from cr and hands each to add, until full says so or
// the file ends (eof). A record that cannot be read is a ContentError (bad
// CSV) or a transient error (the object could not be read), returned.
func fill(cr *tablecsv.Reader, obj ObjectRef, full func() bool, add func(rec []tablecsv.Field, line int) error) (eof bool, err error) {
	for !full() {
		rec, err := cr.Read()
		if err == io.EOF {
			return true, nil
		}
		var pe *tablecsv.ParseError
		switch {
		case err == nil:
			err = add(rec, cr.Line())
		case errors.As(err, &pe):
			err = &ContentError{Object: obj.String(), Line: pe.Line, Err: pe.Err}
		default: // the object could not be read (S3): transient
			err = fmt.Errorf("loading %s: reading: %w", obj, err)
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// add converts one record; a bad value is a ContentError naming the line and column.
func (b *batcher) add(bt *batch, rec []tablecsv.Field, line int) error {
	start := len(bt.vals)
	for i, c := range b.table.Columns {
		f := rec[i]
		if f.Null {
			if !c.Nullable {
				return b.bad(line, c.Name, errors.New("NULL in a NOT NULL column"))
			}
			bt.vals = append(bt.vals, nil)
			bt.bytes += 5
			continue
		}
		var v any
		if last := &b.last[i]; last.val != nil && last.text == f.Value {
			v = last.val
		} else {
			var err error
			if v, err = convert(c.Kind, f.Value); err != nil {
				return b.bad(line, c.Name, err)
			}
			if c.Kind == warehouse.DateTime || c.Kind == warehouse.Date {
				last.text, last.val = f.Value, v
			}
		}
		bt.vals = append(bt.vals, v)
		bt.bytes += len(f.Value) + 4
	}
	bt.vals = append(bt.vals, b.now)
	bt.bytes += 30
	bt.rows = append(bt.rows, row{line: line, vals: bt.vals[start:len(bt.vals):len(bt.vals)]})
	bt.read++
	return nil
}

func (b *batcher) bad(line int, column string, err error) error {
	return &ContentError{Object: b.obj.String(), Line: line, Column: column, Err: err}
}

// convert parses a CSV value of kind into the value the driver sends.
func convert(kind warehouse.Kind, s string) (any, error) {
	switch kind {
	case warehouse.Int:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a 32-bit integer", s)
		}
		return n, nil
	case warehouse.DateTime:
		t, err := time.Parse(warehouse.TimeLayout, s)
		if err != nil || t.Year() < 1000 {
			return nil, fmt.Errorf("%q is not a datetime like %s", s, warehouse.TimeLayout)
		}
		return t, nil
	case warehouse.Date:
		t, err := time.Parse(warehouse.DateLayout, s)
		if err != nil || t.Year() < 1000 {
			return nil, fmt.Errorf("%q is not a date like %s", s, warehouse.DateLayout)
		}
		return t, nil
	default:
		if len(s) > warehouse.TextMaxChars && utf8.RuneCountInString(s) > warehouse.TextMaxChars {
			return nil, fmt.Errorf("text of %d characters is longer than %d", utf8.RuneCountInString(s), warehouse.TextMaxChars)
		}
		return s, nil
	}
}

// arrange lays out the batch's arguments: rows in key order, so that
// transactions touching the same rows lock them in the same order (fewer
// deadlocks), and a key repeated within the batch keeps its last row, as if
// the rows were applied one after the other.
func (b *batcher) arrange(bt *batch) {
	rows := bt.rows
	bt.first, bt.last = rows[0].line, rows[len(rows)-1].line
	slices.SortStableFunc(rows, b.compare)
	bt.args, bt.n = bt.args[:0], 0
	for i, r := range rows {
		if i+1 < len(rows) && b.compare(r, rows[i+1]) == 0 {
			continue // a later row has the same key
		}
		bt.args = append(bt.args, r.vals...)
		bt.n++
	}
}

// exec upserts a batch in one statement: the prepared full-size statement,
// or a statement of its own size for the last batch.
func (b *batcher) exec(ctx context.Context, tx *sql.Tx, bt *batch) error {
	var err error
	if bt.n == b.maxRows {
		if b.stmt == nil {
			b.stmt, err = tx.PrepareContext(ctx, warehousedb.UpsertSQL(b.table, b.maxRows))
			if err != nil {
				return fmt.Errorf("loading %s: preparing the upsert: %w", b.obj, err)
			}
		}
		_, err = b.stmt.ExecContext(ctx, bt.args...)
	} else {
		_, err = tx.ExecContext(ctx, warehousedb.UpsertSQL(b.table, bt.n), bt.args...)
	}
	clear(bt.args) // drop references to this batch's strings
	if err == nil {
		return nil
	}
	if dataError(err) {
		return &ContentError{Object: b.obj.String(), Line: bt.first, LastLine: bt.last, Err: fmt.Errorf("rejected by the database: %w", err)}
	}
	return fmt.Errorf("loading %s lines %d-%d into %s: %w", b.obj, bt.first, bt.last, b.table.Name, err)
}

func (b *batcher) compare(x, y row) int {
	for _, i := range b.keyIdx {
		var c int
		switch xv := x.vals[i].(type) {
		case int64:
			c = cmp.Compare(xv, y.vals[i].(int64))
		case string:
			c = strings.Compare(xv, y.vals[i].(string))
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// MySQL error numbers the load handles.
const (
	erLockWaitTimeout = 1205
	erLockDeadlock    = 1213
)

// retryable reports whether rerunning the transaction may succeed at once.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.Is(err, errConcurrentInsert) ||
		errors.As(err, &me) && (me.Number == erLockDeadlock || me.Number == erLockWaitTimeout)
}

// dataError reports whether the database refused a value: bad data, which
// strict mode turns into an error. Go-side checks catch these first; this is
// the backstop.
func dataError(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1048, // column cannot be null
		1264, // out of range
		1265, // data truncated
		1292, // incorrect datetime value
		1366, // incorrect string value (not utf8mb4)
		1406: // data too long
		return true
	}
	return false
}
