package export

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"
)

// batch is a group of encoded rows handed from the reader to the two
// encoders, back to the reader when both are done with it.
type batch struct {
	cols    columns
	n       int
	arena   []byte
	last    position
	pending atomic.Int32 // encoders still to write it
}

// batchPool is how many batches are in flight between the reader and the
// encoders: memory is batchPool batches of at most 1024 rows or
// maxBatchBytes each, whatever the table's size.
const batchPool = 4

// batchRows is the most rows in a batch (fewer when EXPORT_CHUNK_ROWS is
// smaller, or when their values reach maxBatchBytes).
const batchRows = 4096

// stream reads the due rows in keyset chunks and writes them to both files.
// The reader runs ahead of the encoders (the next chunk is read while the
// current one is encoded), CSV and Parquet are encoded at once, and parts
// upload as they fill. The validation count starts as soon as the last row
// is read, while the encoders finish. It returns the position of the last
// row written, the row count, whether every due row was read (false:
// stopped at the deadline), and whether the count could run.
func (r *tableRun) stream(ctx context.Context, tx *sql.Tx) (last position, rows int64, complete, countable bool, err error) {
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stop, ok := r.e.stopAt(ctx); ok {
		var c2 context.CancelFunc
		readCtx, c2 = context.WithDeadline(readCtx, stop)
		defer c2()
	}
	full := make(chan *batch, batchPool)
	free := make(chan *batch, batchPool)
	for range batchPool {
		free <- &batch{}
	}
	type outcome struct {
		read     int64
		complete bool
		busy     time.Duration
		err      error
	}
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		defer func() {
			if p := recover(); p != nil {
				o.err = fmt.Errorf("internal error: %v\n%s", p, debug.Stack())
			}
			close(full)
			done <- o
		}()
		o.read, o.complete, o.busy, o.err = r.read(readCtx, ctx, tx, full, free)
	}()
	var werr error
	for b := range full {
		if werr == nil && r.out == nil {
			werr = r.open(ctx, free)
		}
		if werr == nil && r.out != nil {
			werr = r.out.failed()
		}
		if werr != nil {
			cancel() // stop the reader; keep draining
			free <- b
			continue
		}
		rows += int64(b.n)
		last = position{TS: b.last.TS, Key: slices.Clone(b.last.Key)}
		r.out.write(b)
	}
	out := <-done
	r.res.Stages.Read += out.busy
	r.res.Stages.Validate += r.chunkCounting
	ok := werr == nil && out.err == nil
	switch {
	case werr != nil:
	case out.err == nil:
		complete, countable = out.complete, true
	case ctx.Err() == nil && errors.Is(readCtx.Err(), context.DeadlineExceeded):
		// The safety net: a query outlived the deadline margin. Rows written
		// so far stand; the transaction is gone with the cancelled query.
		r.res.Warnings = append(r.res.Warnings, "a query was cancelled at the deadline margin; the snapshot count check was skipped")
		complete, countable, ok = false, false, true
	}
	switch {
	case !ok || !countable || rows == 0:
	case r.chunkCount != nil:
		c := make(chan counted, 1)
		c <- *r.chunkCount
		r.count = c
	default:
		r.count = r.startCount(ctx, tx, last)
	}
	if r.out != nil {
		ferr := r.out.finish(ok)
		r.out.stages(&r.res.Stages)
		if werr == nil {
			werr = ferr
		}
	}
	if werr != nil {
		return last, rows, false, false, werr
	}
	if !ok {
		return last, rows, false, false, out.err
	}
	if out.read != rows {
		return last, rows, false, false, fmt.Errorf("%d rows read from MySQL but %d written to the files", out.read, rows)
	}
	return last, rows, complete, countable, nil
}

// counted is the result of the validation count.
type counted struct {
	n   int64
	err error
}

// startCount counts, in the run's snapshot, the rows the run must have
// exported up to last, while the files are finished.
func (r *tableRun) startCount(ctx context.Context, tx *sql.Tx, last position) <-chan counted {
	c := make(chan counted, 1)
	q, args, err := r.t.countSQL(r.snapshot, r.upper, r.from, &last)
	if r.ranged {
		// A range of a fanned-out run: every due row of the range.
		q = r.t.rangeCountSQL(keyRange{since: r.since != nil, after: r.from != nil, through: r.through != nil})
		args, err = r.t.rangeArgs(r.since, r.from, r.through)
		args = append([]any{r.upper.UTC().Format("2006-01-02 15:04:05.000000")}, args...)
	}
	if err != nil {
		c <- counted{err: err}
		return c
	}
	go func() {
		var n int64
		err := tx.QueryRowContext(ctx, q, args...).Scan(&n)
		c <- counted{n, err}
	}()
	return c
}

// reader runs one table's keyset queries, in the run's transaction (on its
// connection, r.conn), and hands the rows to the writer in encoded batches.
type reader struct {
	r         *tableRun
	full      chan<- *batch
	free      <-chan *batch
	chunk     int // rows per query; unlimited: one query for every due row
	batchRows int
	stop      time.Time // the deadline margin, when hasStop
	hasStop   bool
	upper     string // the run's upper bound, as a query argument

	enc      *encoder      // its vals are the driver's current row
	tsCell   cell          // the row's position timestamp, selected after the columns
	keyCells []cell        // the row's primary key columns
	keySnap  []snapshot    // the last row's key, kept past the next Scan
	lastTS   time.Time     // the last row's timestamp
	b        *batch        // the batch being filled
	total    int64         // rows read
	waited   time.Duration // for a free batch, or for the encoders to take one
	// The greatest position read, in a snapshot: the greatest timestamp and
	// the key of the last row read with it (the snapshot reads in key
	// order, so that is the greatest key among the rows sharing it).
	maxTS  time.Time
	maxKey []snapshot
}

// read runs the chunk queries and sends encoded batches. It returns
// complete=false when it stopped at the deadline margin, and how long it was
// busy (reading and encoding rows, not waiting for the encoders).
//
// In a snapshot (not a range's) it also counts the rows of each chunk once
// read, with countCtx in tx: the validation count, a chunk at a time while
// its pages are in the buffer pool (one count over every row at the end
// reads the table from disk again once it outgrows the pool). The sum,
// in r.chunkCount, counts the same rows in the same snapshot.
func (r *tableRun) read(ctx, countCtx context.Context, tx *sql.Tx, full chan<- *batch, free <-chan *batch) (total int64, complete bool, busy time.Duration, err error) {
	start := time.Now()
	rd := r.newReader(ctx, full, free)
	var chunks *counted
	if r.snapshot && !r.ranged && rd.chunk != unlimited {
		chunks = &counted{}
	}
	var counting time.Duration
	defer func() {
		busy = time.Since(start) - rd.waited - counting
		r.chunkCount, r.chunkCounting = nil, counting
		if err == nil {
			r.chunkCount = chunks
		}
	}()
	from := r.from
	for {
		n, stopped, err := rd.readChunk(ctx, from)
		if err == nil && n > 0 && chunks != nil && chunks.err == nil {
			countStart := time.Now()
			r.countChunk(countCtx, tx, from, rd, chunks)
			counting += time.Since(countStart)
		}
		switch {
		case err != nil:
			return rd.total, false, 0, err
		case stopped:
			return rd.total, false, 0, nil
		case n < rd.chunk: // the last chunk: every due row was read
			if r.snapshot && r.from == nil && rd.total > 0 {
				// Every row up to the bound went through this reader.
				p, err := positionOf(r.t, rd.maxTS, rd.maxKey)
				if err != nil {
					return rd.total, false, 0, err
				}
				r.readEnd = &p
			}
			return rd.total, true, 0, nil
		case rd.pastStop():
			return rd.total, false, 0, nil
		}
		p, err := rd.lastPosition()
		if err != nil {
			return rd.total, false, 0, err
		}
		from = &p
	}
}

func (r *tableRun) newReader(ctx context.Context, full chan<- *batch, free <-chan *batch) *reader {
	e, t := r.e, r.t
	chunk := e.ChunkRows
	if chunk <= 0 {
		chunk = DefaultChunkRows
	}
	perBatch := min(batchRows, chunk)
	if !t.indexed && !r.snapshot {
		// Without an index every keyset query scans and sorts the table:
		// one query for all due rows is the cheapest (still streamed, and
		// stoppable at any batch by the deadline).
		chunk = unlimited
	}
	rd := &reader{
		r: r, full: full, free: free, chunk: chunk, batchRows: perBatch,
		upper: r.upper.UTC().Format("2006-01-02 15:04:05.000000"),
		enc:   newEncoder(t.Columns, 1), keyCells: make([]cell, len(t.Key)), keySnap: make([]snapshot, len(t.Key)), maxKey: make([]snapshot, len(t.Key)),
	}
	rd.stop, rd.hasStop = e.stopAt(ctx)
	rd.tsCell = rd.enc.cells[len(rd.enc.cells)-1]
	for i, k := range t.Key {
		rd.keyCells[i] = rd.enc.cells[k.Index]
	}
	return rd
}

// pastStop reports whether the deadline margin has come.
func (rd *reader) pastStop() bool {
	return rd.hasStop && !rd.r.e.now().Before(rd.stop)
}

// query is the chunk query after position from (nil: the first chunk) and
// its arguments: key order in a snapshot, position order otherwise.
func (rd *reader) query(from *position) (string, []any, error) {
	t := rd.r.t
	args := []any{rd.upper}
	var q string
	var more []any
	var err error
	if rd.r.snapshot {
		r := rd.r
		q = t.keyOrderSQL(t.selectList(), keyRange{since: r.since != nil, after: from != nil, through: r.through != nil}, rd.chunk)
		more, err = t.rangeArgs(r.since, from, r.through)
	} else {
		q = t.chunkSQL(from != nil, rd.chunk)
		if from != nil {
			more, err = t.afterArgs(from)
		}
	}
	return q, append(args, more...), err
}

// readChunk runs the query of the chunk after from and sends its rows. It
// returns how many it read, and stopped=true when it stopped at the
// deadline margin before the end of the chunk.
//
// The rows come from the driver itself, on the transaction's connection:
// database/sql's per-row locking and conversion (Rows.Next, Scan) cost as
// much as a third of the driver's own work.
func (rd *reader) readChunk(ctx context.Context, from *position) (n int, stopped bool, err error) {
	q, args, err := rd.query(from)
	if err != nil {
		return 0, false, err
	}
	rerr := rd.r.conn.Raw(func(dc any) error {
		// Never an error nor a panic out of here: Raw would take either
		// for a bad connection and close it under the open transaction,
		// which waits for the transaction to end (a deadlock).
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("internal error: %v\n%s", p, debug.Stack())
			}
		}()
		n, stopped, err = rd.readRows(ctx, dc, q, args)
		return nil
	})
	if err == nil && rerr != nil {
		err = fmt.Errorf("querying %s: %w", rd.r.t.Name, rerr)
	}
	return n, stopped, err
}

// readRows runs query q on the driver connection dc and sends its rows.
func (rd *reader) readRows(ctx context.Context, dc any, q string, args []any) (n int, stopped bool, err error) {
	name := rd.r.t.Name
	rs, done, err := queryDriver(ctx, dc, q, args)
	if err != nil {
		return 0, false, fmt.Errorf("querying %s: %w", name, err)
	}
	defer done()
	var nextErr error
	for {
		if nextErr = rs.Next(rd.enc.vals); nextErr != nil {
			break
		}
		if err := rd.addRow(ctx); err != nil {
			rs.Close()
			return n, false, err
		}
		n++
		if rd.b.n == rd.batchRows || len(rd.b.arena) >= maxBatchBytes {
			if err := rd.send(ctx); err != nil {
				rs.Close()
				return n, false, err
			}
			if rd.pastStop() {
				stopped = true
				break
			}
		}
	}
	if stopped && rd.chunk == unlimited {
		// Closing would drain every remaining due row: stop the query
		// instead (the transaction and its snapshot survive KILL QUERY).
		rd.r.killQuery(ctx)
	}
	if err := rs.Close(); err != nil && !stopped {
		return n, false, fmt.Errorf("reading %s: %w", name, err)
	}
	if nextErr != nil && nextErr != io.EOF && !stopped {
		return n, false, fmt.Errorf("reading %s: %w", name, nextErr)
	}
	return n, stopped, rd.send(ctx)
}

// queryDriver runs q with args on the driver connection dc, as
// database/sql would: directly, or prepared when the driver cannot
// (driver.ErrSkip). done releases the prepared statement, after the rows
// are closed.
func queryDriver(ctx context.Context, dc any, q string, args []any) (rows driver.Rows, done func(), err error) {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
		if c, ok := dc.(driver.NamedValueChecker); ok {
			if err := c.CheckNamedValue(&named[i]); err != nil && !errors.Is(err, driver.ErrSkip) {
				return nil, nil, err
			}
		}
	}
	noop := func() {}
	if qc, ok := dc.(driver.QueryerContext); ok {
		rows, err := qc.QueryContext(ctx, q, named)
		if !errors.Is(err, driver.ErrSkip) {
			return rows, noop, err
		}
	}
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, nil, fmt.Errorf("driver connection %T cannot prepare statements", dc)
	}
	st, err := pc.PrepareContext(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	sq, ok := st.(driver.StmtQueryContext)
	if !ok {
		st.Close()
		return nil, nil, fmt.Errorf("driver statement %T cannot query with a context", st)
	}
	if rows, err = sq.QueryContext(ctx, named); err != nil {
		st.Close()
		return nil, nil, err
	}
	return rows, func() { st.Close() }, nil
}

// addRow takes the driver's current row, appends its encoding to the batch
// being filled (taking a free one first) and remembers its position.
func (rd *reader) addRow(ctx context.Context) error {
	t := rd.r.t
	if rd.b == nil {
		start := time.Now()
		select {
		case rd.b = <-rd.free:
		case <-ctx.Done():
			return ctx.Err()
		}
		rd.waited += time.Since(start)
		for i := range rd.b.cols {
			rd.b.cols[i] = rd.b.cols[i][:0]
		}
		rd.b.arena, rd.b.n = rd.b.arena[:0], 0
	}
	b := rd.b
	cols, arena, err := rd.enc.encode(b.cols, b.arena)
	b.cols, b.arena = cols, arena
	if err != nil {
		return fmt.Errorf("table %s, row after %s: %w", t.Name, rd.r.positionText(rd.lastTS, rd.keySnap), err)
	}
	b.n++
	rd.total++
	ts, ok := (*rd.tsCell.value).(time.Time)
	if !ok {
		return fmt.Errorf("table %s: watermark expression returned %T", t.Name, *rd.tsCell.value)
	}
	rd.lastTS = ts.UTC()
	b.last.TS = rd.lastTS
	for i, c := range rd.keyCells {
		rd.keySnap[i].take(c)
	}
	if rd.r.snapshot && !rd.lastTS.Before(rd.maxTS) {
		rd.maxTS = rd.lastTS
		for i, c := range rd.keyCells {
			rd.maxKey[i].take(c)
		}
	}
	return nil
}

// countChunk adds to c the rows, in the snapshot, after from up to the
// last row rd read.
func (r *tableRun) countChunk(ctx context.Context, tx *sql.Tx, from *position, rd *reader, c *counted) {
	last, err := rd.lastPosition()
	if err != nil {
		c.err = err
		return
	}
	q, args, err := r.t.countSQL(true, r.upper, from, &last)
	if err != nil {
		c.err = err
		return
	}
	var n int64
	c.err = tx.QueryRowContext(ctx, q, args...).Scan(&n)
	c.n += n
}

// lastPosition is the position of the last row read.
func (rd *reader) lastPosition() (position, error) {
	return positionOf(rd.r.t, rd.lastTS, rd.keySnap)
}

// positionOf is the position (ts, key) with the key columns' values kept in key.
func positionOf(t *tableInfo, ts time.Time, key []snapshot) (position, error) {
	p := position{TS: ts}
	for i, k := range t.Key {
		v, err := k.keyValue(key[i].cell())
		if err != nil {
			return position{}, err
		}
		p.Key = append(p.Key, v)
	}
	return p, nil
}

// send hands the batch being filled, with the position of its last row,
// to the writer.
func (rd *reader) send(ctx context.Context) error {
	b := rd.b
	if b == nil || b.n == 0 {
		return nil
	}
	p, err := rd.lastPosition()
	if err != nil {
		return err
	}
	b.last.Key = append(b.last.Key[:0], p.Key...)
	start := time.Now()
	defer func() { rd.waited += time.Since(start) }()
	select {
	case rd.full <- b:
	case <-ctx.Done():
		return ctx.Err()
	}
	rd.b = nil
	return nil
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

// snapshot keeps a copy of a key cell beyond the next row.
type snapshot struct {
	raw   []byte
	isRaw bool
	value driver.Value
}

func (s *snapshot) take(c cell) {
	if b, ok := (*c.value).([]byte); ok {
		s.isRaw = true
		if s.raw == nil {
			s.raw = make([]byte, 0, 32)
		}
		s.raw = append(s.raw[:0], b...) // key columns are never NULL
		return
	}
	s.isRaw = false
	s.value = *c.value
}

func (s *snapshot) cell() cell {
	if s.isRaw {
		s.value = s.raw
	}
	return cell{value: &s.value}
}
