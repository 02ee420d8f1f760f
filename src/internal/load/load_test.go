package load

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

func migrated(t *testing.T) (*sql.DB, string) {
	t.Helper()
	db, dsn := testenv.MySQL(t)
	if err := warehousedb.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}

func ref(key string, body []byte) ObjectRef {
	sum := md5.Sum(body)
	return ObjectRef{Bucket: "bucket", Key: key, ETag: `"` + hex.EncodeToString(sum[:]) + `"`}
}

func table(t *testing.T, name string) warehouse.Table {
	t.Helper()
	tb, ok := warehouse.Lookup(name)
	if !ok {
		t.Fatalf("no table %s", name)
	}
	return tb
}

func dump(t *testing.T, db *sql.DB, name string, mode warehousedb.DumpMode) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := warehousedb.Dump(context.Background(), db, table(t, name), mode, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// paths are the two ways Load sends rows; the tests that say what Load
// does run on both.
var paths = []Path{PathUpsert, PathInfile}

// forPaths runs test once per path, each in its own subtest.
func forPaths(t *testing.T, test func(t *testing.T, path Path)) {
	for _, p := range paths {
		t.Run(string(p), func(t *testing.T) { test(t, p) })
	}
}

func apply(t *testing.T, l *Loader, db *sql.DB, f loadtest.File) Result {
	t.Helper()
	res, err := l.Apply(context.Background(), db, table(t, f.Table), bytes.NewReader(f.Body), ref(f.Key, f.Body))
	if err != nil {
		t.Fatalf("Apply %s: %v", f.Key, err)
	}
	return res
}

var t0 = time.Date(2026, 5, 1, 6, 0, 0, 0, time.UTC)

func TestApplyLoadsEveryTableExactly(t *testing.T) { forPaths(t, testApplyLoadsEveryTableExactly) }

func testApplyLoadsEveryTableExactly(t *testing.T, path Path) {
	db, _ := migrated(t)
	l := &Loader{Path: path}
	files := loadtest.Crawl{Characters: 45, Locations: 12, Episodes: 9, FetchedAt: t0}.Files()
	for _, f := range files {
		res := apply(t, l, db, f)
		if res.Skipped || res.Rows != int64(len(f.Rows)) || res.Attempts != 1 || res.Path != path {
			t.Errorf("%s: %+v, want %d rows in one attempt on %s", f.Key, res, len(f.Rows), path)
		}
	}
	want := loadtest.Expected(files)
	for _, tb := range warehouse.Tables() {
		if got := dump(t, db, tb.Name, warehousedb.DumpData); got != want[tb.Name] {
			t.Errorf("%s:\n%s\nwant:\n%s", tb.Name, got, want[tb.Name])
		}
		if got := dump(t, db, tb.Name, warehousedb.DumpModified); strings.Contains(got, ",1\n") {
			t.Errorf("%s: modifiedDate set after a single clean load", tb.Name)
		}
	}
}

func TestApplyTwiceChangesNothing(t *testing.T) { forPaths(t, testApplyTwiceChangesNothing) }

func testApplyTwiceChangesNothing(t *testing.T, path Path) {
	db, _ := migrated(t)
	l := &Loader{Path: path}
	files := loadtest.Crawl{Characters: 30, Locations: 5, Episodes: 5, FetchedAt: t0}.Files()
	for _, f := range files {
		apply(t, l, db, f)
	}
	before := map[string]string{}
	for _, tb := range warehouse.Tables() {
		before[tb.Name] = dump(t, db, tb.Name, warehousedb.DumpAll)
	}
	for _, f := range files {
		if res := apply(t, l, db, f); !res.Skipped {
			t.Errorf("%s: second delivery not skipped: %+v", f.Key, res)
		}
		if ok, err := Loaded(context.Background(), db, ref(f.Key, f.Body)); err != nil || !ok {
			t.Errorf("Loaded(%s) = %v, %v", f.Key, ok, err)
		}
	}
	// The same bytes under another ETag (a re-upload on a versioned bucket):
	// applied again, and still nothing changes, modifiedDate included.
	for _, f := range files {
		o := ref(f.Key, f.Body)
		o.VersionID = "v2"
		if res, err := l.Apply(context.Background(), db, table(t, f.Table), bytes.NewReader(f.Body), o); err != nil || res.Skipped {
			t.Fatalf("re-upload %s: %+v %v", f.Key, res, err)
		}
	}
	for _, tb := range warehouse.Tables() {
		if got := dump(t, db, tb.Name, warehousedb.DumpAll); got != before[tb.Name] {
			t.Errorf("%s changed by a redelivery:\n%s\nwas:\n%s", tb.Name, got, before[tb.Name])
		}
	}
}

func TestOlderFileAfterNewerKeepsNewerValues(t *testing.T) {
	forPaths(t, testOlderFileAfterNewerKeepsNewerValues)
}

func testOlderFileAfterNewerKeepsNewerValues(t *testing.T, path Path) {
	db, _ := migrated(t)
	l := &Loader{Path: path}
	c1 := loadtest.Crawl{Characters: 40, Locations: 10, Episodes: 6, FetchedAt: t0}
	c2 := c1
	c2.Revision, c2.FetchedAt = 1, t0.Add(time.Hour)
	newer, older := c2.Files(), c1.Files()
	for _, f := range newer {
		apply(t, l, db, f)
	}
	for i, f := range older {
		if res := apply(t, l, db, f); res.Skipped != bytes.Equal(f.Body, newer[i].Body) {
			t.Fatalf("%s: skipped = %v, want skipped only when the bytes (so the ETag) are the same", f.Key, res.Skipped)
		}
	}
	want := loadtest.Expected(newer)
	for _, tb := range warehouse.Tables() {
		if got := dump(t, db, tb.Name, warehousedb.DumpData); got != want[tb.Name] {
			t.Errorf("%s after an older file:\n%s\nwant the newer values:\n%s", tb.Name, got, want[tb.Name])
		}
		if got := dump(t, db, tb.Name, warehousedb.DumpModified); strings.Contains(got, ",1\n") {
			t.Errorf("%s: an older file set modifiedDate", tb.Name)
		}
	}
	// In the natural order, exactly the revised rows carry modifiedDate.
	db2, _ := migrated(t)
	for _, f := range append(older, newer...) {
		apply(t, l, db2, f)
	}
	var changed int
	if err := db2.QueryRow("SELECT COUNT(*) FROM characters WHERE modifiedDate IS NOT NULL").Scan(&changed); err != nil {
		t.Fatal(err)
	}
	if changed != 40/5 {
		t.Errorf("characters with modifiedDate = %d, want %d (every 5th changed)", changed, 40/5)
	}
}

func csvBody(t *testing.T, header []string, rows ...[]string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := tablecsv.NewWriter(&b)
	if err := w.WriteHeader(header); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var fs []tablecsv.Field
		for _, v := range r {
			if v == `\N` {
				fs = append(fs, tablecsv.Null)
			} else {
				fs = append(fs, tablecsv.Text(v))
			}
		}
		if err := w.Write(fs); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func locationRow(id int, name, created string) []string {
	return []string{fmt.Sprint(id), name, "Planet", "C-137", "https://x/location/" + fmt.Sprint(id), created, "2026-01-01T00:00:00.000Z"}
}

// TestContentErrors feeds broken files and checks each is a permanent error
// naming the object, line and column, and that nothing was applied.
func TestContentErrors(t *testing.T) { forPaths(t, testContentErrors) }

func testContentErrors(t *testing.T, path Path) {
	db, _ := migrated(t)
	loc := table(t, warehouse.Locations)
	h := loc.Header()
	good := locationRow(1, "Earth", "2017-11-10T12:42:04.162Z")
	manyThenBad := [][]string{}
	for i := 1; i <= 30; i++ {
		manyThenBad = append(manyThenBad, locationRow(i, "ok", "2017-11-10T12:42:04.162Z"))
	}
	manyThenBad[24][5] = "yesterday"
	cases := []struct {
		name   string
		body   []byte
		line   int
		column string
		text   string
	}{
		{"empty object", nil, 0, "", "no header"},
		{"missing column", csvBody(t, h[:len(h)-1], good[:len(good)-1]), 1, "fetched_at", `missing column "fetched_at"`},
		{"extra column", csvBody(t, append(append([]string{}, h...), "x"), append(good, "1")), 1, "x", `unexpected column "x"`},
		{"reordered columns", csvBody(t, append([]string{h[1], h[0]}, h[2:]...), good), 1, "name", `column 1 is "name", want "id"`},
		{"duplicated column", csvBody(t, append([]string{"id"}, append(h[1:], "id")...), append(good, "1")), 1, "id", "appears twice"},
		{"not an int", csvBody(t, h, locationRow(1, "a", "2017-11-10T12:42:04.162Z"), []string{"x2", "b", "", "", "", "2017-11-10T12:42:04.162Z", "2026-01-01T00:00:00.000Z"}), 3, "id", "not a 32-bit integer"},
		{"int out of range", csvBody(t, h, locationRow(4294967296, "a", "2017-11-10T12:42:04.162Z")), 2, "id", "not a 32-bit integer"},
		{"bad datetime", csvBody(t, h, locationRow(1, "a", "2017-11-10 12:42:04")), 2, "created", "not a datetime"},
		{"NULL in NOT NULL", csvBody(t, h, locationRow(1, `\N`, "2017-11-10T12:42:04.162Z")), 2, "name", "NULL in a NOT NULL column"},
		{"text too long", csvBody(t, h, locationRow(1, strings.Repeat("é", warehouse.TextMaxChars+1), "2017-11-10T12:42:04.162Z")), 2, "name", "longer than"},
		{"wrong field count", append(csvBody(t, h, good), "2,b\n"...), 3, "", "wrong number of fields"},
		{"invalid UTF-8", append(csvBody(t, h, good), "2,\xff\xfe,P,C,u,2017-11-10T12:42:04.162Z,2026-01-01T00:00:00.000Z\n"...), 3, "", "UTF-8"},
		{"bare quote", append(csvBody(t, h, good), "2,a\"b,P,C,u,2017-11-10T12:42:04.162Z,2026-01-01T00:00:00.000Z\n"...), 3, "", "bare"},
		{"bad value after 2 batches", csvBody(t, h, manyThenBad...), 26, "created", "not a datetime"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &Loader{Path: path, BatchRows: 10}
			_, err := l.Apply(context.Background(), db, loc, bytes.NewReader(c.body), ref("processed/locations/"+c.name+".csv", c.body))
			var ce *ContentError
			if !errors.As(err, &ce) || !IsPermanent(err) {
				t.Fatalf("err = %v, want a *ContentError", err)
			}
			if ce.Line != c.line || ce.Column != c.column || !strings.Contains(err.Error(), c.text) || !strings.Contains(err.Error(), "s3://bucket/processed/locations/"+c.name+".csv") {
				t.Errorf("err = %q (line %d column %q), want line %d column %q mentioning %q and the object", err, ce.Line, ce.Column, c.line, c.column, c.text)
			}
		})
	}
	var rows, logged int
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM locations), (SELECT COUNT(*) FROM load_log)").Scan(&rows, &logged); err != nil {
		t.Fatal(err)
	}
	if rows != 0 || logged != 0 {
		t.Errorf("after failed loads: %d rows, %d load_log entries; want none (all or nothing)", rows, logged)
	}
}

func TestEmptyStringNullAndUnicode(t *testing.T) { forPaths(t, testEmptyStringNullAndUnicode) }

func testEmptyStringNullAndUnicode(t *testing.T, path Path) {
	db, _ := migrated(t)
	ch := table(t, warehouse.Characters)
	row := func(id, typ, origin, name string) []string {
		return []string{id, name, "Alive", "Human", typ, "Male", origin, "unknown", `\N`, "", "img", "url", "2017-11-04T18:48:46.250Z", "2026-01-01T00:00:00.000Z"}
	}
	body := csvBody(t, ch.Header(),
		row("1", "", `\N`, "’ ζ Á"),
		row("2", `"\N" literal`, "0", "Ζήτα, \"quoted\"\nline 2"),
		row("3", `C:\path\N`, "7", "tab\there, back\\slash, CR\r\nLF, NUL\x00."),
	)
	// a literal `\N` text, written quoted by tablecsv
	body = bytes.Replace(body, []byte(`"""\N"" literal"`), []byte(`"\N"`), 1)
	l := &Loader{Path: path}
	if _, err := l.Apply(context.Background(), db, ch, bytes.NewReader(body), ref("processed/characters/u.csv", body)); err != nil {
		t.Fatal(err)
	}
	type got struct {
		name, typ, locName string
		origin, location   sql.NullInt64
	}
	want := []got{
		{"’ ζ Á", "", "", sql.NullInt64{}, sql.NullInt64{}},
		{"Ζήτα, \"quoted\"\nline 2", `\N`, "", sql.NullInt64{Int64: 0, Valid: true}, sql.NullInt64{}},
		{"tab\there, back\\slash, CR\r\nLF, NUL\x00.", `C:\path\N`, "", sql.NullInt64{Int64: 7, Valid: true}, sql.NullInt64{}},
	}
	rows, err := db.Query("SELECT name, type, location_name, origin_id, location_id FROM characters ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for i := 0; rows.Next(); i++ {
		var g got
		if err := rows.Scan(&g.name, &g.typ, &g.locName, &g.origin, &g.location); err != nil {
			t.Fatal(err)
		}
		if g != want[i] {
			t.Errorf("row %d = %+v, want %+v", i+1, g, want[i])
		}
	}
	// The dump renders it back to the same CSV.
	if d := dump(t, db, warehouse.Characters, warehousedb.DumpData); d != string(body) {
		t.Errorf("dump:\n%s\nwant the file:\n%s", d, body)
	}
}

// TestDuplicateKeysInAFileKeepTheLastRow: rows are sent in key order, and a
// key repeated in a batch keeps its last row, without setting modifiedDate.
func TestDuplicateKeysInAFileKeepTheLastRow(t *testing.T) {
	forPaths(t, testDuplicateKeysInAFileKeepTheLastRow)
}

func testDuplicateKeysInAFileKeepTheLastRow(t *testing.T, path Path) {
	db, _ := migrated(t)
	loc := table(t, warehouse.Locations)
	at := "2017-11-10T12:42:04.162Z"
	body := csvBody(t, loc.Header(), locationRow(3, "first", at), locationRow(1, "one", at), locationRow(3, "last", at), locationRow(2, "two", at))
	l := &Loader{Path: path}
	res, err := l.Apply(context.Background(), db, loc, bytes.NewReader(body), ref("processed/locations/dup.csv", body))
	if err != nil || res.Rows != 4 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	want := "id,name,modified\n1,one,0\n2,two,0\n3,last,0\n"
	var b strings.Builder
	b.WriteString("id,name,modified\n")
	rows, _ := db.Query("SELECT id, name, modifiedDate IS NOT NULL FROM locations ORDER BY id")
	defer rows.Close()
	for rows.Next() {
		var id, m int
		var name string
		_ = rows.Scan(&id, &name, &m)
		fmt.Fprintf(&b, "%d,%s,%d\n", id, name, m)
	}
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// lockRow holds a row lock on characters id in its own transaction.
func lockRow(t *testing.T, db *sql.DB, id int) *sql.Tx {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO characters (id, name, status, species, type, gender, origin_name, location_name, image, url, created, fetched_at, createdDate) VALUES (?, 'holder', '', '', '', '', '', '', '', '', NOW(3), '2000-01-01', NOW(6))", id); err != nil {
		t.Fatal(err)
	}
	return tx
}

// shortLockWait opens a pool whose sessions wait 1s for row locks.
func shortLockWait(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	dc, err := mysqldb.NormalizeDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dc.Params["innodb_lock_wait_timeout"] = "1"
	c, err := mysql.NewConnector(dc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestLockWaitTimeoutRerunsTheTransactionOnAStream: a row of the last batch
// is locked by another transaction; the first attempt times out after
// reading most of a stream that cannot seek (spooled to disk past 4 KiB),
// the lock goes, and the rerun loads every row.
func TestLockWaitTimeoutRerunsTheTransactionOnAStream(t *testing.T) {
	forPaths(t, testLockWaitTimeoutRerunsTheTransactionOnAStream)
}

func testLockWaitTimeoutRerunsTheTransactionOnAStream(t *testing.T, path Path) {
	db, dsn := migrated(t)
	files := loadtest.Crawl{Characters: 500, Locations: 5, PageSize: 500, FetchedAt: t0}.Files()
	var f loadtest.File
	for _, x := range files {
		if x.Table == warehouse.Characters {
			f = x
		}
	}
	holder := lockRow(t, db, 499)
	var retries []error
	l := &Loader{Path: path, BatchRows: 50, SpoolMemory: 4 << 10, onRetry: func(attempt int, err error) {
		retries = append(retries, err)
		if attempt == 1 {
			if err := holder.Rollback(); err != nil {
				t.Error(err)
			}
		}
	}}
	stream := iotest.HalfReader(bytes.NewReader(f.Body)) // not an io.Seeker
	res, err := l.Apply(context.Background(), shortLockWait(t, dsn), table(t, warehouse.Characters), stream, ref(f.Key, f.Body))
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 || len(retries) != 1 || !retryable(retries[0]) {
		t.Errorf("attempts = %d, retries after %v; want one rerun after a lock wait timeout", res.Attempts, retries)
	}
	if got, want := dump(t, db, warehouse.Characters, warehousedb.DumpData), loadtest.Expected([]loadtest.File{f})[warehouse.Characters]; got != want {
		t.Errorf("after the rerun the table differs from the file")
	}
}

func TestLockWaitTimeoutGivesUpAfterMaxAttempts(t *testing.T) {
	forPaths(t, testLockWaitTimeoutGivesUpAfterMaxAttempts)
}

func testLockWaitTimeoutGivesUpAfterMaxAttempts(t *testing.T, path Path) {
	db, dsn := migrated(t)
	files := loadtest.Crawl{Characters: 20, FetchedAt: t0}.Files()
	holder := lockRow(t, db, 7)
	defer holder.Rollback()
	l := &Loader{Path: path, MaxAttempts: 2, Backoff: time.Millisecond}
	res, err := l.Apply(context.Background(), shortLockWait(t, dsn), table(t, warehouse.Characters), bytes.NewReader(files[0].Body), ref(files[0].Key, files[0].Body))
	if err == nil || IsPermanent(err) || !retryable(err) || res.Attempts != 2 {
		t.Errorf("Apply = %+v, %v; want a transient lock wait timeout after 2 attempts", res, err)
	}
}

func TestReplayRereadsAnyStream(t *testing.T) {
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	for _, mem := range []int{0, 1000, 1 << 20} {
		r := newReplay(iotest.OneByteReader(bytes.NewReader(data)), mem)
		// pass 1 stops early, pass 2 reads all, pass 3 reads all again
		buf := make([]byte, 33_333)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		for pass := 2; pass <= 3; pass++ {
			if err := r.rewind(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("mem %d pass %d: %d bytes, err %v; want the stream again", mem, pass, len(got), err)
			}
		}
		r.Close()
	}
}

func TestApplyWithoutVersionIsRefused(t *testing.T) {
	_, err := Apply(context.Background(), nil, table(t, warehouse.Locations), strings.NewReader(""), ObjectRef{Bucket: "b", Key: "k"})
	if err == nil || IsPermanent(err) {
		t.Errorf("err = %v, want a (non-content) error", err)
	}
}

// TestDeadlockIsRetried makes two loads lock the same two rows in opposite
// orders (one row per statement): InnoDB kills one with a deadlock (1213),
// which Apply reruns; both files end up applied.
func TestDeadlockIsRetried(t *testing.T) { forPaths(t, testDeadlockIsRetried) }

func testDeadlockIsRetried(t *testing.T, path Path) {
	db, _ := migrated(t)
	loc := table(t, warehouse.Locations)
	at := "2017-11-10T12:42:04.162Z"
	a := csvBody(t, loc.Header(), locationRow(1, "a", at), locationRow(2, "a", at))
	b := csvBody(t, loc.Header(), locationRow(2, "b", at), locationRow(1, "b", at))
	// A row already there: the LOAD DATA path sends chunks, one statement
	// each, rather than the whole file in one statement (an empty table).
	seed := csvBody(t, loc.Header(), locationRow(100, "seed", at))
	if _, err := (&Loader{Path: path}).Apply(context.Background(), db, loc, bytes.NewReader(seed), ref("processed/locations/seed.csv", seed)); err != nil {
		t.Fatal(err)
	}
	// After its first statement (one row: BatchRows 1), each transaction
	// waits until the other has run its first statement too.
	var holding sync.WaitGroup
	holding.Add(2)
	var mu sync.Mutex
	var retried []error
	l := &Loader{Path: path, BatchRows: 1,
		onRetry: func(_ int, err error) { mu.Lock(); retried = append(retried, err); mu.Unlock() },
		afterBatch: func(_ ObjectRef, n int) {
			mu.Lock()
			first := n == 1 && len(retried) == 0
			mu.Unlock()
			if first {
				holding.Done()
				holding.Wait()
			}
		},
	}
	var wg sync.WaitGroup
	var resA, resB Result
	var errA, errB error
	wg.Go(func() {
		resA, errA = l.Apply(context.Background(), db, loc, bytes.NewReader(a), ObjectRef{Bucket: "b", Key: "a", ETag: "a"})
	})
	wg.Go(func() {
		resB, errB = l.Apply(context.Background(), db, loc, bytes.NewReader(b), ObjectRef{Bucket: "b", Key: "b", ETag: "b"})
	})
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("Apply: %v / %v", errA, errB)
	}
	if len(retried) != 1 {
		t.Errorf("retried after %v; want exactly one deadlock", retried)
	}
	var me *mysql.MySQLError
	if len(retried) == 1 && (!errors.As(retried[0], &me) || me.Number != erLockDeadlock) {
		t.Errorf("retried after %v, want a deadlock (1213)", retried[0])
	}
	if resA.Attempts+resB.Attempts != 3 {
		t.Errorf("attempts %d + %d, want 3", resA.Attempts, resB.Attempts)
	}
	var rows, logged int
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM locations WHERE id < 100), (SELECT COUNT(*) FROM load_log WHERE row_count = 2)").Scan(&rows, &logged); err != nil || rows != 2 || logged != 2 {
		t.Errorf("rows = %d, load log = %d (%v); want 2 and both files logged", rows, logged, err)
	}
}

// reopenable is a stream that cannot seek but can be fetched again.
type reopenable struct {
	io.Reader
	data  []byte
	opens int
}

func (r *reopenable) Reopen(context.Context) (io.ReadCloser, error) {
	r.opens++
	return io.NopCloser(bytes.NewReader(r.data)), nil
}

func TestRerunReopensAReopener(t *testing.T) { forPaths(t, testRerunReopensAReopener) }

func testRerunReopensAReopener(t *testing.T, path Path) {
	db, dsn := migrated(t)
	files := loadtest.Crawl{Characters: 100, PageSize: 100, FetchedAt: t0}.Files()
	f := files[0]
	holder := lockRow(t, db, 90)
	l := &Loader{Path: path, BatchRows: 10, onRetry: func(attempt int, err error) {
		if attempt == 1 {
			_ = holder.Rollback()
		}
	}}
	src := &reopenable{Reader: iotest.HalfReader(bytes.NewReader(f.Body)), data: f.Body}
	res, err := l.Apply(context.Background(), shortLockWait(t, dsn), table(t, warehouse.Characters), src, ref(f.Key, f.Body))
	if err != nil || res.Attempts != 2 || src.opens != 1 {
		t.Fatalf("Apply = %+v, %v, reopened %d times; want success on the second attempt after one reopen", res, err, src.opens)
	}
	if got, want := dump(t, db, warehouse.Characters, warehousedb.DumpData), loadtest.Expected(files)[warehouse.Characters]; got != want {
		t.Errorf("table differs from the file after the rerun")
	}
}

// FuzzParse feeds arbitrary bytes to what Apply does before the database:
// the header check, then reading and converting every record into batches.
// It must never panic, and every failure must be a ContentError (a bytes
// reader cannot fail), naming the object.
func FuzzParse(f *testing.F) {
	loc, _ := warehouse.Lookup(warehouse.Locations)
	for _, fl := range (loadtest.Crawl{Characters: 3, Locations: 3, Episodes: 2, FetchedAt: t0}).Files() {
		f.Add(fl.Table, fl.Body)
	}
	f.Add(warehouse.Locations, []byte(strings.Join(loc.Header(), ",")+"\n1,\"a\"\"b\",,\\N,u,2017-11-10T12:42:04.162Z,x\n"))
	f.Add(warehouse.Characters, []byte("\xef\xbb\xbfid,name\r\n"))
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		table, ok := warehouse.Lookup(name)
		if !ok {
			return
		}
		obj := ObjectRef{Bucket: "b", Key: "processed/fuzz.csv", ETag: "e"}
		cr := tablecsv.NewReader(bytes.NewReader(body))
		check := func(err error) {
			if err != nil && (!IsPermanent(err) || !strings.Contains(err.Error(), obj.String())) {
				t.Fatalf("error %v is not a ContentError naming the object", err)
			}
		}
		err := checkHeader(cr, table, obj)
		check(err)
		if err != nil {
			return
		}
		cr.FieldCount = len(table.Columns)
		b := newBatcher(table, &Loader{BatchRows: 3}, t0, obj)
		free, ready := make(chan *batch, 2), make(chan *batch, 1)
		free <- &batch{}
		free <- &batch{}
		go func() { defer close(ready); b.produce(context.Background(), cr, free, ready) }()
		for bt := range ready {
			check(bt.err)
			if bt.err == nil && len(bt.args) != bt.n*warehousedb.UpsertArgs(table) {
				t.Fatalf("batch of %d rows has %d arguments", bt.n, len(bt.args))
			}
			free <- bt
		}
	})
}
