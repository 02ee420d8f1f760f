package load

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// The LOAD DATA path (PathInfile). The file is read in chunks; each chunk is
// converted and checked as the upsert path does (a bad value is the same
// ContentError), then written as the server's tab-separated text. For each
// chunk, in the transaction:
//
//  1. one query lists which of its keys the table holds;
//  2. the rows with new keys go straight into the table with LOAD DATA
//     LOCAL INFILE: an insert, the cheapest write there is;
//  3. the rows with existing keys (of a versioned table; a link table's
//     existing rows change nothing) go to a temporary staging table with
//     LOAD DATA LOCAL INFILE.
//
// At the end one INSERT ... SELECT from the staging table applies them by
// the upsert's rules (warehousedb.ApplyStagedSQL). The rows are sent
// through the driver's reader handler (mysql.RegisterReaderHandler): nothing
// is written to local disk.
//
// Into an empty table (a first load) the whole file goes in one LOAD DATA
// statement, chunk after chunk as they are converted (streamAll): no key can
// exist, and one statement is what InnoDB inserts fastest.
//
// LOCAL skips a row whose key exists instead of failing; a row can only
// exist when another transaction inserted its key after step 1 (the first
// loader of a key wins the race), or, in one statement, when a key repeats
// in the file. The count of rows inserted then falls short, and the
// transaction is rerun like one that hit a deadlock, in chunks: step 1 then
// sees the key.

// Defaults of the LOAD DATA path.
const (
	DefaultChunkRows  = 65536    // rows per chunk: per existing-keys query and LOAD DATA
	DefaultChunkBytes = 16 << 20 // text per chunk (two chunks are in memory at a time)
)

// refusalTTL is how long a server's refusal of LOAD DATA LOCAL is believed
// before it is tried again (a parameter group may change meanwhile).
const refusalTTL = 10 * time.Minute

// errConcurrentInsert means another transaction inserted a key of the file
// between the existing-keys query and the insert: rerun.
var errConcurrentInsert = errors.New("another transaction inserted rows of this file meanwhile")

// errStreamShort means a file streamed into an empty table in one statement
// had rows the server skipped: run the attempt again in chunks.
var errStreamShort = errors.New("a key repeats in the file or was inserted meanwhile: loading again in chunks")

// refusedError is the server's refusal of LOAD DATA LOCAL or of the staging
// table: the load runs again on the upsert path.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return "LOAD DATA LOCAL refused: " + e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// infileState is what a Loader knows of a database's LOAD DATA LOCAL.
type infileState struct {
	refused string // why the server refuses it; "" when it does not
	at      time.Time
}

// choosePath returns the path of the next attempt and, when the Loader
// chose the upsert path itself, why.
func (l *Loader) choosePath(ctx context.Context, db *sql.DB, t warehouse.Table) (Path, string) {
	if l.Path != PathAuto {
		return l.Path, ""
	}
	if !infileTable(t) {
		return PathUpsert, "the table's key is not made of integers"
	}
	l.mu.Lock()
	st, known := l.infile[db]
	l.mu.Unlock()
	if known && time.Since(st.at) < refusalTTL {
		if st.refused != "" {
			return PathUpsert, st.refused
		}
		return PathInfile, ""
	}
	// The server's setting; a refusal it did not announce is caught when
	// the first LOAD DATA fails (refusedError).
	var on sql.NullInt64
	reason := ""
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.local_infile").Scan(&on); err == nil && on.Valid && on.Int64 == 0 {
		reason = "the server's local_infile is OFF"
	}
	l.remember(db, reason)
	if reason != "" {
		return PathUpsert, reason
	}
	return PathInfile, ""
}

func (l *Loader) remember(db *sql.DB, refused string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.infile == nil {
		l.infile = map[*sql.DB]infileState{}
	}
	l.infile[db] = infileState{refused: refused, at: time.Now()}
}

// infileTable reports whether t's rows can take the LOAD DATA path: its key
// columns are integers, compared in Go exactly as the server compares them.
func infileTable(t warehouse.Table) bool {
	for _, k := range t.Key {
		for _, c := range t.Columns {
			if c.Name == k && c.Kind != warehouse.Int {
				return false
			}
		}
	}
	return len(t.Key) > 0 && len(t.Key) <= maxKeyColumns
}

// refusal reports whether err is the server refusing LOAD DATA LOCAL (or a
// temporary staging table), which no retry changes.
func refusal(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1148, // ER_NOT_ALLOWED_COMMAND: local_infile OFF (MariaDB, MySQL 5.7)
		3948, // ER_CLIENT_LOCAL_FILES_DISABLED: local_infile OFF (MySQL 8)
		4166, // ER_LOAD_INFILE_CAPABILITY_DISABLED: local_infile OFF (MariaDB 10.5+)
		1044, // ER_DBACCESS_DENIED_ERROR: no CREATE TEMPORARY TABLES privilege
		1142, // ER_TABLEACCESS_DENIED_ERROR
		1787: // ER_GTID_UNSAFE_CREATE_DROP_TEMPORARY_TABLE_IN_TRANSACTION
		return true
	case 1105: // the local engine's words for local_infile OFF
		return strings.Contains(me.Message, "local_infile")
	}
	return false
}

// readerSeq numbers the reader handlers of this process: the driver's
// registry of names is process-wide.
var readerSeq atomic.Uint64

// chunk is one chunk of the file: its rows as tab-separated text.
type chunk struct {
	text  []byte
	rows  []chunkRow
	read  int64
	first int // first and last line
	last  int
	err   error // a ContentError or a read error: the producer stopped here
}

type chunkRow struct {
	line       int
	key        rowKey // the key's values, in key order
	start, end int    // the row's text (with its newline) in chunk.text
}

// maxKeyColumns bounds the key columns of a table on the LOAD DATA path.
const maxKeyColumns = 4

// rowKey is a key's values (integers), in key order.
type rowKey [maxKeyColumns]int64

// infileLoader runs the LOAD DATA path of one attempt.
type infileLoader struct {
	table    warehouse.Table
	obj      ObjectRef
	now      time.Time
	loaded   []byte // the load time, as text
	maxRows  int
	maxBytes int
	keyPos   []int    // per column, its position in the key, or -1
	keyVals  rowKey   // the current record's key
	last     []string // per DateTime or Date column, the last text that passed
	staged   bool     // the staging table exists
	stream   bool     // an empty table takes the whole file in one statement (streamAll)

	afterBatch func(obj ObjectRef, n int)
	afterProbe func(obj ObjectRef, n int)
	chunks     int

	// per chunk, reused
	lastOf   map[rowKey]int
	existing map[rowKey]bool
	heads    []any
	fresh    []byte
	stage    []byte
}

func newInfileLoader(t warehouse.Table, l *Loader, now time.Time, obj ObjectRef, stream bool) *infileLoader {
	f := &infileLoader{table: t, obj: obj, now: now, stream: stream,
		loaded:   []byte(now.UTC().Format("2006-01-02 15:04:05.000000")),
		maxRows:  cmp.Or(l.BatchRows, DefaultChunkRows),
		maxBytes: cmp.Or(l.BatchBytes, DefaultChunkBytes),
		keyPos:   make([]int, len(t.Columns)),
		last:     make([]string, len(t.Columns)),
		lastOf:   map[rowKey]int{}, existing: map[rowKey]bool{},
		afterBatch: l.afterBatch, afterProbe: l.afterProbe,
	}
	for i, c := range t.Columns {
		f.keyPos[i] = -1
		for j, k := range t.Key {
			if c.Name == k {
				f.keyPos[i] = j
			}
		}
	}
	return f
}

// run applies every record of cr in tx and returns how many it read.
func (f *infileLoader) run(ctx context.Context, tx *sql.Tx, cr *tablecsv.Reader) (total int64, err error) {
	defer func() {
		if err != nil && f.staged {
			_, _ = tx.ExecContext(context.WithoutCancel(ctx), warehousedb.DropStagingSQL(f.table))
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	free := make(chan *chunk, 2)
	free <- &chunk{}
	free <- &chunk{}
	ready := make(chan *chunk, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ready)
		f.produce(ctx, cr, free, ready)
	}()
	// The producer reads the object: it must be gone before a retry rereads it.
	defer func() { cancel(); <-done }()
	if f.stream {
		var any int
		err := tx.QueryRowContext(ctx, warehousedb.AnyRowSQL(f.table)).Scan(&any)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return f.streamAll(ctx, tx, ready, free)
		case err != nil:
			return 0, f.dbError(err, 0, 0)
		}
	}
	n := 0
	for c := range ready {
		if c.err != nil {
			return total, c.err
		}
		if err := f.apply(ctx, tx, c); err != nil {
			return total, err
		}
		n++
		if f.afterBatch != nil {
			f.afterBatch(f.obj, n)
		}
		total += c.read
		free <- c
	}
	if err := ctx.Err(); err != nil {
		return total, err
	}
	if f.staged {
		if _, err := tx.ExecContext(ctx, warehousedb.ApplyStagedSQL(f.table), f.now); err != nil {
			return total, f.dbError(err, 0, 0)
		}
		if _, err := tx.ExecContext(ctx, warehousedb.DropStagingSQL(f.table)); err != nil {
			return total, fmt.Errorf("loading %s: dropping the staging table: %w", f.obj, err)
		}
		f.staged = false
	}
	return total, nil
}

// streamAll sends the whole file into the empty table with one LOAD DATA,
// chunk after chunk as the producer fills them: a first load, sent as the
// server loads fastest (InnoDB writes an empty table's rows with less undo
// logging when one statement inserts them all). If the server skipped a row,
// a key repeats in the file or another transaction inserted one meanwhile:
// errStreamShort has the attempt run again in chunks, which sort these out.
func (f *infileLoader) streamAll(ctx context.Context, tx *sql.Tx, ready <-chan *chunk, free chan<- *chunk) (int64, error) {
	r := &chunkReader{f: f, ready: ready, free: free}
	n, err := f.loadData(ctx, tx, r, false)
	switch {
	case r.err != nil: // the file's own error, which the driver ended the statement for
		return r.total, r.err
	case ctx.Err() != nil: // the producer may have stopped before the end of the file
		return r.total, errors.Join(err, ctx.Err())
	case err != nil:
		return r.total, f.dbError(err, r.first, r.last)
	case n != r.total:
		return r.total, fmt.Errorf("loading %s into %s: %d of %d rows inserted: %w", f.obj, f.table.Name, n, r.total, errStreamShort)
	}
	return r.total, nil
}

// chunkReader reads the producer's chunks as one stream of text.
type chunkReader struct {
	f           *infileLoader
	ready       <-chan *chunk
	free        chan<- *chunk
	cur         *chunk
	off         int
	n           int   // chunks read
	total       int64 // rows in them
	first, last int   // lines of the current chunk
	err         error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for r.cur == nil || r.off == len(r.cur.text) {
		if r.cur != nil {
			r.free <- r.cur
			r.cur = nil
			if r.n++; r.f.afterBatch != nil {
				r.f.afterBatch(r.f.obj, r.n)
			}
		}
		c, ok := <-r.ready
		if !ok {
			return 0, io.EOF
		}
		if c.err != nil {
			r.err = c.err
			return 0, c.err
		}
		r.cur, r.off, r.first, r.last = c, 0, c.first, c.last
		r.total += c.read
	}
	n := copy(p, r.cur.text[r.off:])
	r.off += n
	return n, nil
}

// produce fills chunks from cr until EOF, an error, or ctx is done.
func (f *infileLoader) produce(ctx context.Context, cr *tablecsv.Reader, free <-chan *chunk, ready chan<- *chunk) {
	for {
		var c *chunk
		select {
		case c = <-free:
		case <-ctx.Done():
			return
		}
		c.text, c.rows, c.read, c.err = c.text[:0], c.rows[:0], 0, nil
		eof, err := fill(cr, f.obj, func() bool { return len(c.rows) >= f.maxRows || len(c.text) >= f.maxBytes },
			func(rec []tablecsv.Field, line int) error { return f.add(c, rec, line) })
		if err != nil {
			c.err = err
			select {
			case ready <- c:
			case <-ctx.Done():
			}
			return
		}
		if c.read > 0 {
			c.first, c.last = c.rows[0].line, c.rows[len(c.rows)-1].line
			select {
			case ready <- c:
			case <-ctx.Done():
				return
			}
		}
		if eof {
			return
		}
	}
}

// add checks one record and appends it to the chunk as text.
func (f *infileLoader) add(c *chunk, rec []tablecsv.Field, line int) error {
	start := len(c.text)
	for i, col := range f.table.Columns {
		if i > 0 {
			c.text = append(c.text, '\t')
		}
		fl := rec[i]
		if fl.Null {
			if !col.Nullable {
				c.text = c.text[:start]
				return f.bad(line, col.Name, errors.New("NULL in a NOT NULL column"))
			}
			c.text = append(c.text, `\N`...)
			continue
		}
		switch col.Kind {
		case warehouse.DateTime:
			if f.last[i] != fl.Value && !validDateTime(fl.Value) {
				if _, err := convert(col.Kind, fl.Value); err != nil {
					c.text = c.text[:start]
					return f.bad(line, col.Name, err)
				}
			}
			f.last[i] = fl.Value
			c.text = appendDateTime(c.text, fl.Value)
		case warehouse.Date:
			if f.last[i] != fl.Value {
				if _, err := convert(col.Kind, fl.Value); err != nil {
					c.text = c.text[:start]
					return f.bad(line, col.Name, err)
				}
				f.last[i] = fl.Value
			}
			c.text = append(c.text, fl.Value...)
		case warehouse.Int:
			n, err := strconv.ParseInt(fl.Value, 10, 32)
			if err != nil {
				_, err = convert(col.Kind, fl.Value) // its words
				c.text = c.text[:start]
				return f.bad(line, col.Name, err)
			}
			c.text = strconv.AppendInt(c.text, n, 10)
			if p := f.keyPos[i]; p >= 0 {
				f.keyVals[p] = n
			}
		default:
			if len(fl.Value) > warehouse.TextMaxChars {
				if _, err := convert(col.Kind, fl.Value); err != nil {
					c.text = c.text[:start]
					return f.bad(line, col.Name, err)
				}
			}
			c.text = appendEscaped(c.text, fl.Value)
		}
	}
	c.text = append(c.text, '\t')
	c.text = append(c.text, f.loaded...)
	c.text = append(c.text, '\n')
	c.rows = append(c.rows, chunkRow{line: line, key: f.keyVals, start: start, end: len(c.text)})
	c.read++
	return nil
}

// validDateTime reports whether s is a valid datetime in the CSV layout
// (2006-01-02T15:04:05.000Z), year 1000 or later: what convert accepts,
// checked without parsing.
func validDateTime(s string) bool {
	if len(s) != len(warehouse.TimeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return false
	}
	num := func(from, to int) int {
		n := 0
		for _, c := range []byte(s[from:to]) {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, d := num(0, 4), num(5, 7), num(8, 10)
	h, mi, sec, ms := num(11, 13), num(14, 16), num(17, 19), num(20, 23)
	if y < 1000 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 || ms < 0 {
		return false
	}
	return d <= time.Date(y, time.Month(mo)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (f *infileLoader) bad(line int, column string, err error) error {
	return &ContentError{Object: f.obj.String(), Line: line, Column: column, Err: err}
}

// appendDateTime appends a datetime in the CSV layout
// (2006-01-02T15:04:05.000Z, already checked) as the server reads it.
func appendDateTime(b []byte, s string) []byte {
	if len(s) == len(warehouse.TimeLayout) && s[10] == 'T' && s[len(s)-1] == 'Z' {
		b = append(b, s[:10]...)
		b = append(b, ' ')
		return append(b, s[11:len(s)-1]...)
	}
	t, _ := time.Parse(warehouse.TimeLayout, s)
	return t.AppendFormat(b, "2006-01-02 15:04:05.000")
}

// appendEscaped appends text with the server's backslash escapes.
func appendEscaped(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		switch s[i] {
		case '\\', '\t', '\n', '\r', 0:
			plain = false
		}
	}
	if plain {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return b
}

// apply sends one chunk: new keys into the table, existing keys to staging.
func (f *infileLoader) apply(ctx context.Context, tx *sql.Tx, c *chunk) error {
	clear(f.lastOf)
	clear(f.existing)
	f.heads = f.heads[:0]
	seen := map[int64]bool{}
	lo, hi := c.rows[0].key[0], c.rows[0].key[0]
	for i, r := range c.rows {
		f.lastOf[r.key] = i // a key repeated in the chunk keeps its last row
		if h := r.key[0]; !seen[h] {
			seen[h] = true
			f.heads = append(f.heads, h)
			lo, hi = min(lo, h), max(hi, h)
		}
	}
	// Keys close together (a page, a sorted file) are listed with one range
	// read; scattered ones by value.
	q, args := warehousedb.ExistingKeysSQL(f.table, len(f.heads)), f.heads
	if hi-lo < 2*int64(len(f.heads)) {
		q, args = warehousedb.ExistingKeysSQL(f.table, 0), []any{lo, hi}
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return f.dbError(err, c.first, c.last)
	}
	var key rowKey
	ptrs := make([]any, len(f.table.Key))
	for i := range ptrs {
		ptrs[i] = &key[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return f.dbError(err, c.first, c.last)
		}
		f.existing[key] = true
	}
	if err := rows.Close(); err != nil {
		return f.dbError(err, c.first, c.last)
	}
	if err := rows.Err(); err != nil {
		return f.dbError(err, c.first, c.last)
	}
	if f.chunks++; f.afterProbe != nil {
		f.afterProbe(f.obj, f.chunks)
	}

	f.fresh, f.stage = f.fresh[:0], f.stage[:0]
	var send []byte
	fresh := 0
	if len(f.existing) == 0 && len(f.lastOf) == len(c.rows) {
		send, fresh = c.text, len(c.rows) // every row new (the usual first load): no copy
	} else {
		for i, r := range c.rows {
			switch {
			case f.lastOf[r.key] != i:
			case !f.existing[r.key]:
				f.fresh = append(f.fresh, c.text[r.start:r.end]...)
				fresh++
			case f.table.Versioned:
				f.stage = append(f.stage, c.text[r.start:r.end]...)
			}
		}
		send = f.fresh
	}
	if fresh > 0 {
		n, err := f.loadData(ctx, tx, bytes.NewReader(send), false)
		if err != nil {
			return f.dbError(err, c.first, c.last)
		}
		if n != int64(fresh) {
			return fmt.Errorf("loading %s lines %d-%d into %s: %d of %d new rows inserted: %w", f.obj, c.first, c.last, f.table.Name, n, fresh, errConcurrentInsert)
		}
	}
	if len(f.stage) > 0 {
		if !f.staged {
			for _, stmt := range warehousedb.StagingDDL(f.table) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return f.dbError(err, c.first, c.last)
				}
			}
			f.staged = true
		}
		if _, err := f.loadData(ctx, tx, bytes.NewReader(f.stage), true); err != nil {
			return f.dbError(err, c.first, c.last)
		}
	}
	return nil
}

// loadData sends text with LOAD DATA LOCAL INFILE through a reader handler
// registered for this statement, and returns the rows affected.
func (f *infileLoader) loadData(ctx context.Context, tx *sql.Tx, text io.Reader, staged bool) (int64, error) {
	name := "rickmorty-load-" + strconv.FormatUint(readerSeq.Add(1), 10)
	mysql.RegisterReaderHandler(name, func() io.Reader { return text })
	defer mysql.DeregisterReaderHandler(name)
	res, err := tx.ExecContext(ctx, warehousedb.LoadDataSQL(f.table, "Reader::"+name, staged))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// dbError classifies a database error of the chunk of lines first-last.
func (f *infileLoader) dbError(err error, first, last int) error {
	switch {
	case refusal(err):
		return &refusedError{err: err}
	case dataError(err):
		return &ContentError{Object: f.obj.String(), Line: first, LastLine: last, Err: fmt.Errorf("rejected by the database: %w", err)}
	case first == 0:
		return fmt.Errorf("loading %s into %s: applying the staged rows: %w", f.obj, f.table.Name, err)
	}
	return fmt.Errorf("loading %s lines %d-%d into %s: %w", f.obj, first, last, f.table.Name, err)
}
