package export

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
)

// RangeMessage is one range of a fanned-out export run: the body of a
// message on the range queue.
type RangeMessage struct {
	Table string `json:"table"`
	Run   string `json:"run"`   // the manifest's id: the run's YYYYMMDD_HHMMSS stamp
	Range int    `json:"range"` // 1-based
}

// RangeSender sends the messages of a run's ranges (to the range queue).
type RangeSender interface {
	SendRanges(ctx context.Context, msgs []RangeMessage) error
}

// Manifest states and range states.
const (
	RunRunning  = "running"  // ranges are being exported
	RunDone     = "done"     // every range stored and validated; the watermark moved
	RunConflict = "conflict" // the watermark moved under the run: its parts stay, their rows come again

	RangePending = "pending"
	RangeDone    = "done"
)

// Manifest is a fanned-out export run of one table, kept at
// bucket.ExportManifestKey(table, ID) and changed only by conditional
// writes. The run's due rows are split into primary-key ranges of at most
// EXPORT_RANGE_ROWS rows; each range is exported by a range worker into
// its part files; the watermark moves to Target once, when every range is
// done.
type Manifest struct {
	Version    int      `json:"version"`
	Table      string   `json:"table"`
	ID         string   `json:"id"`
	RunID      string   `json:"run_id"`
	Prefix     string   `json:"prefix"`
	Columns    []string `json:"columns"`     // watermark columns
	KeyColumns []string `json:"key_columns"` // primary key
	// Since is the watermark position the run starts after (nil: the first
	// export of the table, or a snapshot's, read in key order up to Upper).
	Since *Position `json:"since,omitempty"`
	Upper time.Time `json:"upper"`
	// Target is where the watermark moves when every range is done: the
	// greatest position among the rows up to Upper.
	Target Position `json:"target"`
	// WatermarkETag is the watermark object the run read ("": none); the
	// watermark moves only if it is still that one.
	WatermarkETag string    `json:"watermark_etag"`
	Rows          int64     `json:"rows"` // due rows at the split
	Ranges        []Range   `json:"ranges"`
	State         string    `json:"state"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated"`
}

// Position is a row position (ts, key) as the manifest stores it.
type Position struct {
	Timestamp time.Time         `json:"timestamp"`
	Key       []json.RawMessage `json:"key"`
}

// Range is one range of a run: the due rows whose key is after After (nil:
// from the first) and up to Through (nil: to the last).
type Range struct {
	N        int               `json:"n"`
	After    []json.RawMessage `json:"after,omitempty"`
	Through  []json.RawMessage `json:"through,omitempty"`
	Rows     int64             `json:"rows"` // due rows at the split
	State    string            `json:"state"`
	Exported int64             `json:"exported,omitempty"` // rows stored, equal to MySQL's count in the worker's snapshot
	Files    []string          `json:"files,omitempty"`
}

func (m *Manifest) key() string { return bucket.ExportManifestKey(m.Table, m.ID) }

func (m *Manifest) pending() []RangeMessage {
	var msgs []RangeMessage
	for _, r := range m.Ranges {
		if r.State != RangeDone {
			msgs = append(msgs, RangeMessage{Table: m.Table, Run: m.ID, Range: r.N})
		}
	}
	return msgs
}

func (m *Manifest) allDone() bool {
	for _, r := range m.Ranges {
		if r.State != RangeDone {
			return false
		}
	}
	return true
}

const maxManifestSize = 16 << 20

// readManifest returns the manifest at key and its ETag.
func (e *Exporter) readManifest(ctx context.Context, key string) (*Manifest, string, error) {
	body, info, err := e.Bucket.ReadAll(ctx, key, maxManifestSize)
	if err != nil {
		return nil, "", fmt.Errorf("reading the run manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, "", fmt.Errorf("run manifest %s: %w", e.Bucket.URL(key), err)
	}
	if m.Version != 1 || m.Table == "" || len(m.Ranges) == 0 {
		return nil, "", fmt.Errorf("run manifest %s: version %d, table %q, %d ranges: not a manifest this exporter wrote", e.Bucket.URL(key), m.Version, m.Table, len(m.Ranges))
	}
	return &m, info.ETag, nil
}

// writeManifest stores m if the stored one still has ETag etag ("": none).
func (e *Exporter) writeManifest(ctx context.Context, m *Manifest, etag string) (string, error) {
	m.Updated = e.now().UTC()
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	return e.Bucket.Put(ctx, m.key(), append(body, '\n'), bucket.PutOptions{
		ContentType: "application/json", IfMatch: etag, IfNoneMatch: etag == "",
		Metadata: map[string]string{bucket.MetaRunID: m.RunID, bucket.MetaTable: m.Table}})
}

// latestManifest returns the table's latest run manifest, nil when none.
func (e *Exporter) latestManifest(ctx context.Context, table string) (*Manifest, string, error) {
	var last string
	err := e.Bucket.List(ctx, bucket.ExportManifestPrefix(table), func(i bucket.Info) error {
		if strings.HasSuffix(i.Key, ".json") {
			last = i.Key // key order: ids are stamps
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing the run manifests: %w", err)
	}
	if last == "" {
		return nil, "", nil
	}
	return e.readManifest(ctx, last)
}

// resume goes on with the table's unfinished fanned-out run, if there is
// one: it finishes a run whose ranges are all done, and sends the others'
// messages again (a range still in flight is then exported twice, into the
// same part names). handled is false when there is nothing to resume.
func (r *tableRun) resume(ctx context.Context) (status Status, handled bool, err error) {
	e := r.e
	m, etag, err := e.latestManifest(ctx, r.spec.Name)
	if err != nil {
		return StatusFailed, true, err
	}
	if m == nil || m.State != RunRunning {
		return "", false, nil
	}
	r.res.From = "run " + m.ID
	r.res.UpperBound = m.Upper.UTC().Format(TimeLayout)
	if m.allDone() {
		st, err := e.finishRun(ctx, m, etag)
		r.res.Rows, r.res.To = m.Rows, PhaseIncremental+" "+(&position{TS: m.Target.Timestamp, Key: m.Target.Key}).String()
		return st, true, err
	}
	msgs := m.pending()
	if err := e.Ranges.SendRanges(ctx, msgs); err != nil {
		return StatusFailed, true, fmt.Errorf("sending the %d unfinished ranges of run %s again: %w", len(msgs), m.ID, err)
	}
	r.res.Rows = m.Rows
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("resumed run %s: %d of %d ranges sent again", m.ID, len(msgs), len(m.Ranges)))
	return StatusFannedOut, true, nil
}

// fanOut splits the due rows (due of them) into primary-key ranges of at
// most RangeRows rows, records the run in a new manifest and sends one
// message per range. The watermark does not move: the last range worker
// to finish moves it.
func (r *tableRun) fanOut(ctx context.Context, tx *sql.Tx, due int64) (Status, error) {
	e, t := r.e, r.t
	m := &Manifest{
		Version: 1, Table: t.Name, ID: r.stamp, RunID: e.RunID, Prefix: e.Prefix,
		Columns: names(t.Watermark), KeyColumns: names(t.Key), Upper: r.upper.UTC(),
		WatermarkETag: r.etag, Rows: due, State: RunRunning, Created: e.now().UTC(),
	}
	kr := keyRange{}
	var since, after *position
	switch {
	case !r.snapshot:
		since = r.from
		m.Since = &Position{Timestamp: r.from.TS, Key: r.from.Key}
		kr.since = true
	case r.from != nil:
		// A snapshot that an earlier, single run began: go on after its key.
		after = r.from
		kr.after = true
	}
	ranges, err := r.split(ctx, tx, kr, since, after)
	if err != nil {
		return StatusFailed, err
	}
	m.Ranges = ranges
	end, err := r.lastPosition(ctx, tx)
	if err != nil {
		return StatusFailed, err
	}
	m.Target = Position{Timestamp: end.TS, Key: end.Key}
	if _, err := e.writeManifest(ctx, m, ""); err != nil {
		if errors.Is(err, bucket.ErrPrecondition) {
			return StatusConflict, fmt.Errorf("run %s of %s already exists (two runs in the same second): %w", m.ID, t.Name, err)
		}
		return StatusFailed, err
	}
	if err := e.Ranges.SendRanges(ctx, m.pending()); err != nil {
		// The manifest stays: the next run resumes it and sends them again.
		return StatusFailed, fmt.Errorf("sending the ranges of run %s: %w", m.ID, err)
	}
	r.res.Rows = due
	r.res.To = fmt.Sprintf("run %s: %d ranges", m.ID, len(m.Ranges))
	return StatusFannedOut, nil
}

// split reads the due rows' keys in key order and cuts them into ranges of
// at most RangeRows rows.
func (r *tableRun) split(ctx context.Context, tx *sql.Tx, kr keyRange, since, after *position) ([]Range, error) {
	t := r.t
	args, err := t.rangeArgs(since, after, nil)
	if err != nil {
		return nil, err
	}
	rs, err := tx.QueryContext(ctx, t.keyOrderSQL(t.keyList(""), kr, unlimited), append([]any{r.upper.UTC().Format("2006-01-02 15:04:05.000000")}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("splitting %s into ranges: %w", t.Name, err)
	}
	defer rs.Close()
	enc := newEncoder(t.Key, 0)
	var ranges []Range
	var prev []json.RawMessage
	if after != nil {
		prev = after.Key
	}
	var n int64
	for rs.Next() {
		if err := rs.Scan(enc.dest...); err != nil {
			return nil, fmt.Errorf("splitting %s into ranges: %w", t.Name, err)
		}
		enc.scanned()
		n++
		if n < int64(r.e.RangeRows) {
			continue
		}
		key, err := rowKey(t, enc.cells)
		if err != nil {
			return nil, err
		}
		ranges = append(ranges, Range{N: len(ranges) + 1, After: prev, Through: key, Rows: n, State: RangePending})
		prev, n = key, 0
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("splitting %s into ranges: %w", t.Name, err)
	}
	if n > 0 || len(ranges) == 0 {
		ranges = append(ranges, Range{N: len(ranges) + 1, After: prev, Rows: n, State: RangePending})
	} else {
		// The last range ends at the last key: leave it open, as rows
		// beyond it are not due.
		ranges[len(ranges)-1].Through = nil
	}
	return ranges, nil
}

func rowKey(t *tableInfo, cells []cell) ([]json.RawMessage, error) {
	key := make([]json.RawMessage, len(t.Key))
	for i, k := range t.Key {
		v, err := k.keyValue(cells[i])
		if err != nil {
			return nil, err
		}
		key[i] = v
	}
	return key, nil
}

// lastPosition is the greatest position among the rows up to the bound.
func (r *tableRun) lastPosition(ctx context.Context, tx *sql.Tx) (position, error) {
	r.readEnd = nil
	return r.snapshotEnd(ctx, tx)
}

// RangeResult is what a range worker did with one message.
type RangeResult struct {
	RangeMessage
	// Status: exported (the range's parts are stored and recorded),
	// finished (and that was the run's last range: the watermark moved),
	// skipped (already done, or its run is over), conflict (the watermark
	// moved under the run), failed.
	Status   string        `json:"status"`
	Rows     int64         `json:"rows"`
	Files    []string      `json:"files,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Stages   Stages        `json:"stages"`
	Error    string        `json:"error,omitempty"`

	err error
}

// Err is the worker's error: the message should come again (unless it
// wraps ErrNoRun), nil when the range is stored or nothing was left to do.
func (r RangeResult) Err() error { return r.err }

// Range worker outcomes.
const (
	RangeExported = "exported"
	RangeFinished = "finished"
	RangeSkipped  = "skipped"
	RangeConflict = "conflict"
	RangeFailed   = "failed"
)

// ErrNoRun marks a range message whose run manifest does not exist: a
// message no retry can serve.
var ErrNoRun = errors.New("no such export run")

// ExportRange is the range worker: it exports range m.Range of run m.Run
// into its part files, <table>_data_<run>_part-NNNN.csv and .parquet,
// replacing any left by an earlier attempt (so a redelivered range
// duplicates nothing), validates their row count against MySQL's for the
// range in its own snapshot, records the range done in the manifest, and,
// when it was the run's last range, moves the watermark. An error means the
// message should be delivered again.
func (e *Exporter) ExportRange(ctx context.Context, m RangeMessage) (res RangeResult) {
	start := time.Now()
	res = RangeResult{RangeMessage: m, Status: RangeFailed}
	defer func() {
		if p := recover(); p != nil {
			res.Status, res.Error = RangeFailed, fmt.Sprintf("internal error: %v\n%s", p, debug.Stack())
		}
		res.Duration = time.Since(start)
	}()
	status, err := e.exportRange(ctx, m, &res)
	res.Status = status
	if err != nil {
		res.Error = err.Error()
		res.err = err
	}
	return res
}

func (e *Exporter) exportRange(ctx context.Context, msg RangeMessage, res *RangeResult) (string, error) {
	if err := e.Validate(); err != nil {
		return RangeFailed, err
	}
	if strings.ContainsAny(msg.Table, "/\\") || msg.Table == "" || msg.Run == "" || strings.ContainsAny(msg.Run, "/\\") {
		return RangeFailed, fmt.Errorf("%w: range message names table %q, run %q", ErrNoRun, msg.Table, msg.Run)
	}
	m, etag, err := e.readManifest(ctx, bucket.ExportManifestKey(msg.Table, msg.Run))
	if errors.Is(err, bucket.ErrGone) {
		return RangeFailed, fmt.Errorf("%w: %s %s (%v)", ErrNoRun, msg.Table, msg.Run, err)
	}
	if err != nil {
		return RangeFailed, err
	}
	if msg.Range < 1 || msg.Range > len(m.Ranges) {
		return RangeFailed, fmt.Errorf("%w: run %s of %s has no range %d", ErrNoRun, m.ID, m.Table, msg.Range)
	}
	rg := m.Ranges[msg.Range-1]
	if m.State != RunRunning || rg.State == RangeDone {
		return RangeSkipped, nil
	}
	e.Prefix, e.RunID = m.Prefix, m.RunID
	tr := TableResult{Table: m.Table}
	r := &tableRun{e: e, spec: TableSpec{Name: m.Table, WatermarkColumns: m.Columns}, stamp: m.ID, res: &tr,
		ranged: true, snapshot: true, upper: m.Upper}
	if m.Since != nil {
		r.since = &position{TS: m.Since.Timestamp, Key: m.Since.Key}
	}
	if rg.After != nil {
		r.from = &position{Key: rg.After}
	}
	if rg.Through != nil {
		r.through = &position{Key: rg.Through}
	}
	defer func() { res.Stages = tr.Stages }()
	rows, files, err := r.exportPart(ctx, m, msg.Range)
	if err != nil {
		r.abort(ctx)
		return RangeFailed, err
	}
	res.Rows, res.Files = rows, files
	return e.recordRange(ctx, m, etag, msg.Range, rows, files)
}

// exportPart reads the range in its own snapshot and stores its part files.
func (r *tableRun) exportPart(ctx context.Context, m *Manifest, n int) (int64, []string, error) {
	e := r.e
	conn, tx, err := e.begin(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	defer tx.Rollback() //nolint:errcheck // read-only
	r.conn = conn
	if r.t, err = loadTable(ctx, tx, m.Table, m.Columns); err != nil {
		return 0, nil, err
	}
	if !slices.EqualFunc(names(r.t.Key), m.KeyColumns, strings.EqualFold) {
		return 0, nil, configError("run %s was split on primary key %v, the table's key is now %v", m.ID, m.KeyColumns, names(r.t.Key))
	}
	stem := bucket.ExportPartStem(m.Table, m.ID, n)
	r.parts = &[2]string{bucket.ExportKey(m.Prefix, m.Table, bucket.CSV, stem), bucket.ExportKey(m.Prefix, m.Table, bucket.Parquet, stem)}
	last, rows, complete, countable, err := r.stream(ctx, tx)
	if err != nil {
		return 0, nil, err
	}
	if !complete {
		return 0, nil, fmt.Errorf("range %d of run %s stopped at the deadline after %d rows: lower EXPORT_RANGE_ROWS (%d rows at the split)", n, m.ID, rows, m.Ranges[n-1].Rows)
	}
	if rows == 0 {
		// Every row of the range changed since the split (they come with
		// the next run): an empty part says so.
		free := make(chan *batch, 1)
		if err := r.open(ctx, free); err != nil {
			return 0, nil, err
		}
		if err := r.out.finish(true); err != nil {
			return 0, nil, err
		}
		r.count = r.startCount(ctx, tx, last)
	}
	if err := r.validate(last, rows, countable); err != nil {
		return 0, nil, fmt.Errorf("validation failed, range %d not recorded: %w", n, err)
	}
	if err := r.commitFiles(ctx); err != nil {
		return 0, nil, err
	}
	return rows, r.res.Files, nil
}

// recordRange marks range n done in the manifest, retrying when another
// worker updated it meanwhile; the worker that records the last range
// finishes the run.
func (e *Exporter) recordRange(ctx context.Context, m *Manifest, etag string, n int, rows int64, files []string) (string, error) {
	for attempt := 0; ; attempt++ {
		if m.State != RunRunning {
			return RangeSkipped, nil
		}
		rg := &m.Ranges[n-1]
		if rg.State != RangeDone {
			rg.State, rg.Exported, rg.Files = RangeDone, rows, files
			newTag, err := e.writeManifest(ctx, m, etag)
			switch {
			case errors.Is(err, bucket.ErrPrecondition) && attempt < 50:
				// Another range was recorded meanwhile: read it again.
				wait := time.Duration(10+rand.IntN(40)) * time.Millisecond
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return RangeFailed, ctx.Err()
				}
				if m, etag, err = e.readManifest(ctx, m.key()); err != nil {
					return RangeFailed, err
				}
				continue
			case err != nil:
				return RangeFailed, fmt.Errorf("recording range %d of run %s: %w", n, m.ID, err)
			}
			etag = newTag
		}
		if !m.allDone() {
			return RangeExported, nil
		}
		st, err := e.finishRun(ctx, m, etag)
		switch {
		case err != nil && st == StatusConflict:
			return RangeConflict, err
		case err != nil:
			return RangeFailed, err
		}
		return RangeFinished, nil
	}
}

// finishRun moves the watermark of a run whose ranges are all done to its
// target, if the watermark is still the one the run read, and closes the
// manifest. A run found finished but not closed (its finisher died in
// between) is only closed.
func (e *Exporter) finishRun(ctx context.Context, m *Manifest, etag string) (Status, error) {
	wmKey := bucket.WatermarkKey(m.Prefix, m.Table)
	var files []string
	var rows int64
	for _, r := range m.Ranges {
		files = append(files, r.Files...)
		rows += r.Exported
	}
	wm := Watermark{
		Phase: PhaseIncremental, Table: m.Table, Columns: m.Columns, KeyColumns: m.KeyColumns,
		Timestamp: m.Target.Timestamp, Key: m.Target.Key, Rows: rows, Files: files,
		RunID: m.RunID, Complete: true, UpdatedAt: e.now().UTC(),
	}
	state, status := RunDone, StatusExported
	put := bucket.PutOptions{ContentType: "text/plain; charset=utf-8", IfMatch: m.WatermarkETag, IfNoneMatch: m.WatermarkETag == ""}
	_, err := e.Bucket.Put(ctx, wmKey, wm.Format(), put)
	if errors.Is(err, bucket.ErrPrecondition) {
		// Moved by this run's own finisher, which died before closing the
		// manifest? Then it is done; otherwise another run won.
		body, _, rerr := e.Bucket.ReadAll(ctx, wmKey, maxWatermarkSize)
		if rerr != nil {
			return StatusFailed, fmt.Errorf("reading the watermark: %w", rerr)
		}
		if cur, perr := ParseWatermark(body); perr != nil || cur.RunID != m.RunID || !cur.Timestamp.Equal(m.Target.Timestamp) {
			state, status = RunConflict, StatusConflict
		} else {
			err = nil
		}
	}
	if err != nil && status != StatusConflict {
		return StatusFailed, fmt.Errorf("moving the watermark of run %s: %w", m.ID, err)
	}
	m.State = state
	if _, werr := e.writeManifest(ctx, m, etag); werr != nil && !errors.Is(werr, bucket.ErrPrecondition) {
		return StatusFailed, fmt.Errorf("closing run %s: %w", m.ID, werr)
	}
	if status == StatusConflict {
		return status, fmt.Errorf("another run moved the watermark during run %s; its parts stay and their rows will be exported again: %w", m.ID, bucket.ErrPrecondition)
	}
	return status, nil
}

// countDue counts the rows the run would export.
func (r *tableRun) countDue(ctx context.Context, tx *sql.Tx) (int64, error) {
	q, args, err := r.t.countSQL(r.snapshot, r.upper, r.from, nil)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the due rows: %w", err)
	}
	return n, nil
}
