package export

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dataeng/rickmorty-pipeline/src/internal/bucket"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// harness is a database, a bucket and a virtual clock shared by the
// database (the exporter's upper bound) and the run's file names.
type harness struct {
	t      *testing.T
	db     *sql.DB
	dsn    string
	s3     *s3.Client
	name   string // of the bucket
	prefix string

	mu    sync.Mutex
	clock time.Time
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	api, name := testenv.S3(t)
	return newHarnessOn(t, api, name)
}

// newHarnessOn is a harness whose bucket is name on the S3 server api
// reaches.
func newHarnessOn(t *testing.T, api *s3.Client, name string) *harness {
	t.Helper()
	db, dsn := testenv.MySQL(t)
	return &harness{t: t, db: db, dsn: dsn, s3: api, name: name, prefix: bucket.DefaultExportPrefix,
		clock: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// bucket is the harness's bucket, through the real SDK client.
func (h *harness) bucket() *bucket.Bucket { return bucket.New(h.s3, h.name) }

// isWatermark reports whether key is a table's watermark object.
func isWatermark(key string) bool { return path.Base(key) == path.Base(bucket.WatermarkKey("p/", "t")) }

func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

func (h *harness) advance(d time.Duration) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock = h.clock.Add(d)
	return h.clock
}

// exporter returns an Exporter on the harness with the virtual clock.
func (h *harness) exporter(lag time.Duration, chunk int) *Exporter {
	return &Exporter{
		DB: h.db, Bucket: h.bucket(), Prefix: h.prefix,
		Lag: lag, ChunkRows: chunk, RowGroupRows: 64, PartSize: bucket.MinPartSize,
		Now:     h.now,
		DBClock: func(context.Context, *sql.Tx) (time.Time, error) { return h.now(), nil },
	}
}

func (h *harness) exec(q string, args ...any) {
	h.t.Helper()
	if _, err := h.db.Exec(q, args...); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
}

// run exports specs and fails the test on any table error.
func (h *harness) run(e *Exporter, specs ...TableSpec) Result {
	h.t.Helper()
	res := e.Run(context.Background(), specs)
	if err := res.Err(); err != nil {
		h.t.Fatalf("export run: %v", err)
	}
	return res
}

func specsOf(names ...string) []TableSpec { return Specs(names, nil) }

func (h *harness) list(prefix string) []string {
	h.t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(h.s3, &s3.ListObjectsV2Input{Bucket: aws.String(h.name), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func (h *harness) get(key string) []byte {
	h.t.Helper()
	out, err := h.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(h.name), Key: aws.String(key)})
	if err != nil {
		h.t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) watermark(table string) (Watermark, bool) {
	h.t.Helper()
	b, _, err := h.bucket().ReadAll(context.Background(), bucket.WatermarkKey(h.prefix, table), maxWatermarkSize)
	if errors.Is(err, bucket.ErrGone) {
		return Watermark{}, false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	w, err := ParseWatermark(b)
	if err != nil {
		h.t.Fatalf("watermark of %s: %v\n%s", table, err, b)
	}
	return w, true
}

var fileName = regexp.MustCompile(`_data_(\d{8}_\d{6})(?:_(\d+)|_part-(\d{4}))?\.(csv|parquet)$`)

// dataFiles lists a table's CSV or Parquet files in run order.
func (h *harness) dataFiles(table, format string) []string {
	h.t.Helper()
	keys := h.list(h.prefix + table + "/" + format + "/")
	var files []string
	for _, k := range keys {
		if fileName.MatchString(k) {
			files = append(files, k)
		} else if !isWatermark(k) {
			h.t.Errorf("unexpected object %s", k)
		}
	}
	order := func(k string) (string, int) {
		m := fileName.FindStringSubmatch(k)
		n, _ := strconv.Atoi(m[2] + m[3]) // a run's attempt, or its part
		return m[1], n
	}
	sort.Slice(files, func(i, j int) bool {
		si, ni := order(files[i])
		sj, nj := order(files[j])
		if si != sj {
			return si < sj
		}
		return ni < nj
	})
	return files
}

// record is one CSV row: the fields' text, NULL as the two bytes \N
// unquoted.
type record []tablecsv.Field

func (r record) String() string {
	var b []byte
	for i, f := range r {
		if i > 0 {
			b = append(b, ',')
		}
		b = tablecsv.AppendField(b, f)
	}
	return string(b)
}

func readCSV(t *testing.T, b []byte) (header []string, rows []record) {
	t.Helper()
	r := tablecsv.NewReader(bytes.NewReader(b))
	first := true
	for {
		fields, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading CSV: %v", err)
		}
		if first {
			for _, f := range fields {
				header = append(header, f.Value)
			}
			r.FieldCount = len(header)
			first = false
			continue
		}
		rows = append(rows, slices.Clone(fields))
	}
	return header, rows
}

// keyOf is the primary key of rec, as text.
func keyOf(header []string, key []string, rec record) string {
	var parts []string
	for _, k := range key {
		i := slices.Index(header, k)
		parts = append(parts, rec[i].Value)
	}
	return strings.Join(parts, "\x1f")
}

// replay applies every exported CSV file of table in run order, upserting
// by primary key, and returns the result.
func (h *harness) replay(table string, key []string) (header []string, rows map[string]record) {
	h.t.Helper()
	rows = map[string]record{}
	for _, f := range h.dataFiles(table, "csv") {
		hd, recs := readCSV(h.t, h.get(f))
		if header == nil {
			header = hd
		} else if !slices.Equal(header, hd) {
			h.t.Fatalf("%s: header %v, earlier files %v", f, hd, header)
		}
		if len(recs) == 0 {
			h.t.Errorf("%s holds no row: a run with no due rows must write no file", f)
		}
		for _, rec := range recs {
			rows[keyOf(hd, key, rec)] = rec
		}
	}
	return header, rows
}

// dump reads the whole table as the exporter would encode it.
func (h *harness) dump(table string) (header []string, key []string, rows map[string]record) {
	h.t.Helper()
	ctx := context.Background()
	ti, err := loadTable(ctx, h.db, table, []string{"createdDate"})
	if err != nil {
		h.t.Fatal(err)
	}
	var cols []string
	for _, c := range ti.Columns {
		cols = append(cols, quoteIdent(c.Name))
	}
	rs, err := h.db.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+quoteIdent(table))
	if err != nil {
		h.t.Fatal(err)
	}
	defer rs.Close()
	enc := newEncoder(ti.Columns, 0)
	var csv []byte
	for rs.Next() {
		if err := rs.Scan(enc.dest...); err != nil {
			h.t.Fatal(err)
		}
		enc.scanned()
		cols, _, err := enc.encode(nil, nil)
		if err != nil {
			h.t.Fatal(err)
		}
		csv = enc.appendCSV(csv, cols, 0)
	}
	if err := rs.Err(); err != nil {
		h.t.Fatal(err)
	}
	header = names(ti.Columns)
	_, recs := readCSV(h.t, append([]byte(strings.Join(header, ",")+"\n"), csv...))
	rows = map[string]record{}
	key = names(ti.Key)
	for _, rec := range recs {
		rows[keyOf(header, key, rec)] = rec
	}
	return header, key, rows
}

// checkReplay asserts that replaying the table's exported files gives the
// table exactly.
func (h *harness) checkReplay(table string) {
	h.t.Helper()
	header, key, want := h.dump(table)
	gotHeader, got := h.replay(table, key)
	if len(want) > 0 && !slices.Equal(gotHeader, header) {
		h.t.Fatalf("%s: exported header %v, table %v", table, gotHeader, header)
	}
	h.diff(table, got, want, nil)
}

// diff reports rows of want missing or different in got; with only, just
// the keys only accepts.
func (h *harness) diff(table string, got, want map[string]record, only func(string) bool) {
	h.t.Helper()
	bad := 0
	for k, w := range want {
		if only != nil && !only(k) {
			continue
		}
		g, ok := got[k]
		switch {
		case !ok:
			h.t.Errorf("%s: row %q never exported: %s", table, k, w)
			bad++
		case g.String() != w.String():
			h.t.Errorf("%s: row %q exported as\n  %s\nbut is\n  %s", table, k, g, w)
			bad++
		}
		if bad > 10 {
			h.t.Fatalf("%s: too many differences", table)
		}
	}
	if only == nil {
		for k := range got {
			if _, ok := want[k]; !ok {
				h.t.Errorf("%s: exported row %q is not in the table (deletes are not part of the tests)", table, k)
			}
		}
	}
	if bad > 0 {
		h.t.FailNow()
	}
}
