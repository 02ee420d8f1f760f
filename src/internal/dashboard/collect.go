package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// Read limits: a report or a watermark is a few hundred bytes; a rejected
// file is read far enough to count its records and name the first reason.
const (
	reportLimit    = 1 << 20
	watermarkLimit = 64 << 10
	rejectedLimit  = 256 << 10
	headBytes      = 4 << 10
	readTimeout    = 10 * time.Second
)

// errNoSuchTable is MySQL's ER_NO_SUCH_TABLE: the table is created by the
// first load.
const errNoSuchTable = 1146

// readFacts reads the bucket and the database. refreshMu is held.
func (m *Monitor) readFacts(ctx context.Context, runStart time.Time) facts {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	f := facts{}
	if err := m.readBucket(ctx, &f); err != nil {
		f.errors = append(f.errors, "reading the bucket: "+err.Error())
	}
	tables, err := m.readTables(ctx, runStart)
	if err != nil {
		f.errors = append(f.errors, "reading the database: "+err.Error())
	}
	f.tables = tables
	return f
}

// listed is a problem or watermark object found by the listing.
type listed struct {
	key, etag string
	modified  time.Time
	table     string
}

// readBucket lists the whole bucket once: it counts the objects per area
// and reads the reports, rejected files and watermarks that changed since
// the last refresh.
func (m *Monitor) readBucket(ctx context.Context, f *facts) error {
	f.objects = map[string]int{}
	marks := map[string]string{} // watermark key → table
	for _, t := range m.cfg.Tables {
		marks[bucket.WatermarkKey(m.cfg.ExportPrefix, t)] = t
	}
	var reports, rejected, watermarks []listed
	err := m.cfg.Bucket.List(ctx, "", func(o bucket.Info) error {
		a := area(o.Key, m.cfg.ExportPrefix)
		l := listed{key: o.Key, etag: o.ETag, modified: o.LastModified}
		switch {
		case a == bucket.QuarantinePrefix:
			if _, ok := bucket.QuarantinedCopy(o.Key); ok {
				reports = append(reports, l)
				return nil // counted with its copy
			}
		case a == bucket.RejectedPrefix:
			rejected = append(rejected, l)
		case marks[o.Key] != "":
			l.table = marks[o.Key]
			watermarks = append(watermarks, l)
		}
		f.objects[a]++
		return nil
	})
	if err != nil {
		return err
	}

	seen := map[string]Problem{}
	var errs []string
	for _, group := range []struct {
		listed []listed
		read   func(context.Context, listed) (Problem, error)
	}{{reports, m.readReport}, {rejected, m.readRejected}} {
		for _, l := range group.listed {
			p, err := m.problem(ctx, l, group.read)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			seen[l.key] = p
		}
	}
	m.problemCache = seen
	for _, p := range seen {
		f.problems = append(f.problems, p)
	}
	f.problems = sortProblems(f.problems)

	f.watermarks = map[string]*Watermark{}
	cache := map[string]*Watermark{}
	for _, l := range watermarks {
		w := m.markCache[l.key]
		if w == nil || w.etag != l.etag {
			w = m.readWatermark(ctx, l)
		}
		cache[l.key] = w
		f.watermarks[l.table] = w
	}
	m.markCache = cache
	f.errors = append(f.errors, errs...)
	return nil
}

// problem returns the cached problem of l when its ETag did not change,
// else reads it with read.
func (m *Monitor) problem(ctx context.Context, l listed, read func(context.Context, listed) (Problem, error)) (Problem, error) {
	if p, ok := m.problemCache[l.key]; ok && p.etag == l.etag {
		return p, nil
	}
	p, err := read(ctx, l)
	if err != nil {
		return Problem{}, err
	}
	p.etag, p.Time = l.etag, l.modified
	return p, nil
}

// readReport reads a quarantine report (the listing's key is the report's).
func (m *Monitor) readReport(ctx context.Context, l listed) (Problem, error) {
	copyKey, _ := bucket.QuarantinedCopy(l.key)
	data, _, err := m.cfg.Bucket.ReadAll(ctx, l.key, reportLimit)
	if err != nil {
		return Problem{}, err
	}
	var r bucket.Report
	if err := json.Unmarshal(data, &r); err != nil {
		// A report that is not one is itself worth showing.
		return Problem{Kind: Quarantined, Key: copyKey, Report: l.key, Reason: "the report cannot be read: " + err.Error()}, nil
	}
	p := Problem{Kind: Quarantined, Key: copyKey, Report: l.key, Source: r.Key, Stage: r.Stage, Reason: r.Reason}
	if p.Stage == "" {
		p.Stage = stageOf(r.Key)
	}
	return p, nil
}

// stageOf is the stage that reads key: transform for raw/, load for
// processed/.
func stageOf(key string) string {
	switch {
	case strings.HasPrefix(key, bucket.RawPrefix):
		return "transform"
	case strings.HasPrefix(key, bucket.ProcessedPrefix):
		return "load"
	}
	return ""
}

// rejectedLine is the part of a line of rejected/<...>.jsonl the page shows.
type rejectedLine struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// readRejected reads a rejected file far enough to count its records and
// name their reasons.
func (m *Monitor) readRejected(ctx context.Context, l listed) (Problem, error) {
	return ReadRejected(ctx, m.cfg.Bucket, l.key)
}

// ReadRejected reads the rejected file at key (rejected/<...>.jsonl) far
// enough to count its records (up to 256 KiB of them) and name their first
// three distinct reasons.
func ReadRejected(ctx context.Context, b objects, key string) (Problem, error) {
	body, _, err := b.Get(ctx, key, bucket.Version{})
	if err != nil {
		return Problem{}, err
	}
	defer body.Close()
	p := Problem{Kind: Rejected, Key: key, Stage: "transform"}
	sc := bufio.NewScanner(io.LimitReader(body, rejectedLimit))
	sc.Buffer(make([]byte, 0, 64<<10), rejectedLimit)
	var reasons []string
	for sc.Scan() {
		var line rejectedLine
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		p.Records++
		if p.Source == "" {
			p.Source = line.Key
		}
		if len(reasons) < 3 && !slices.Contains(reasons, line.Reason) {
			reasons = append(reasons, line.Reason)
		}
	}
	p.Reason = strings.Join(reasons, " | ")
	if p.Reason == "" {
		p.Reason = "no readable record"
	}
	return p, nil
}

// readWatermark reads and parses a watermark file; a file the exporter
// could not trust either is shown with its error.
func (m *Monitor) readWatermark(ctx context.Context, l listed) *Watermark {
	w := &Watermark{Key: l.key, etag: l.etag, UpdatedAt: l.modified}
	data, _, err := m.cfg.Bucket.ReadAll(ctx, l.key, watermarkLimit)
	if err != nil {
		w.Error = err.Error()
		return w
	}
	p, err := export.ParseWatermark(data)
	if err != nil {
		w.Error = err.Error()
		return w
	}
	w.Timestamp, w.UpdatedAt, w.Rows, w.RunID, w.Phase, w.Complete = p.Timestamp, p.UpdatedAt, p.Rows, p.RunID, p.Phase, p.Complete
	return w
}

// readTables counts each table's rows, its rows changed since runStart and
// its latest modifiedDate.
func (m *Monitor) readTables(ctx context.Context, runStart time.Time) ([]TableInfo, error) {
	out := make([]TableInfo, 0, len(m.cfg.Tables))
	for _, t := range m.cfg.Tables {
		out = append(out, TableInfo{Name: t})
	}
	if m.cfg.DB == nil {
		return out, nil
	}
	db, err := m.cfg.DB.DB(ctx)
	if err != nil {
		return out, err
	}
	for i := range out {
		t := &out[i]
		// Identifiers come from the warehouse's own list; values are placeholders.
		q := "SELECT COUNT(*), MAX(`modifiedDate`), COALESCE(SUM(CASE WHEN COALESCE(`modifiedDate`, `createdDate`) >= ? THEN 1 ELSE 0 END), 0) FROM " + warehousedb.Quote(t.Name)
		var last sql.NullTime
		var changed int64
		err := db.QueryRowContext(ctx, q, runStart.UTC()).Scan(&t.Rows, &last, &changed)
		var me *mysql.MySQLError
		switch {
		case errors.As(err, &me) && me.Number == errNoSuchTable:
			t.Error = "not created yet: nothing was loaded"
			continue
		case err != nil:
			return out, fmt.Errorf("counting %s: %w", t.Name, err)
		}
		if last.Valid {
			lm := last.Time.UTC()
			t.LastModified = &lm
		}
		if !runStart.IsZero() {
			t.ChangedLastRun = &changed
		}
	}
	return out, nil
}

// Detail is what the page shows when a quarantined or rejected object is
// clicked: its report and its first bytes.
type Detail struct {
	Key       string `json:"key"`
	Kind      string `json:"kind"`
	Report    string `json:"report,omitempty"` // the .error.json, as stored
	Head      string `json:"head"`             // the first bytes, as text (invalid UTF-8 replaced)
	HeadBytes int    `json:"headBytes"`
	Size      int64  `json:"size"`
	Binary    bool   `json:"binary"` // the first bytes are not text
}

// ErrNotShown is the answer for a key that is neither a quarantined copy nor
// a rejected file: the page reads nothing else of the bucket.
var ErrNotShown = errors.New("only quarantined objects and rejected files can be shown")

// Detail reads the report and the first bytes of a quarantined copy or a
// rejected file.
func (m *Monitor) Detail(ctx context.Context, key string) (Detail, error) {
	d := Detail{Key: key}
	_, isReport := bucket.QuarantinedCopy(key)
	switch {
	case strings.HasPrefix(key, bucket.QuarantinePrefix) && !isReport:
		d.Kind = Quarantined
		rep, _, err := m.cfg.Bucket.ReadAll(ctx, bucket.CopyReportKey(key), reportLimit)
		switch {
		case errors.Is(err, bucket.ErrGone):
			d.Report = "(no report beside it)"
		case err != nil:
			return d, err
		default:
			d.Report = string(bytes.ToValidUTF8(rep, []byte("\uFFFD")))
		}
	case strings.HasPrefix(key, bucket.RejectedPrefix):
		d.Kind = Rejected
	default:
		return d, ErrNotShown
	}
	body, info, err := m.cfg.Bucket.Get(ctx, key, bucket.Version{})
	if err != nil {
		return d, err
	}
	defer body.Close()
	head, err := io.ReadAll(io.LimitReader(body, headBytes))
	if err != nil {
		return d, fmt.Errorf("reading %s: %w", key, err)
	}
	d.Size, d.HeadBytes = info.Size, len(head)
	d.Binary = bytes.IndexByte(head, 0) >= 0 || !utf8.Valid(trimPartialRune(head))
	d.Head = string(bytes.ToValidUTF8(head, []byte("\uFFFD")))
	return d, nil
}

// trimPartialRune drops a rune cut by the read limit at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && i < len(b); i++ {
		if utf8.RuneStart(b[len(b)-1-i]) {
			if !utf8.FullRune(b[len(b)-1-i:]) {
				return b[:len(b)-1-i]
			}
			break
		}
	}
	return b
}
