package load

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/load/loadtest"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// setLocalInfile sets the server's global local_infile for the rest of the
// test, and back to what it was after.
func setLocalInfile(t *testing.T, db *sql.DB, on bool) {
	t.Helper()
	var was int
	if err := db.QueryRow("SELECT @@GLOBAL.local_infile").Scan(&was); err != nil {
		t.Fatal(err)
	}
	v := map[bool]string{true: "ON", false: "OFF"}[on]
	if _, err := db.Exec("SET GLOBAL local_infile = " + v); err != nil {
		t.Fatalf("SET GLOBAL local_infile = %s: %v", v, err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("SET GLOBAL local_infile = " + map[bool]string{true: "ON", false: "OFF"}[was == 1]); err != nil {
			t.Errorf("restoring local_infile: %v", err)
		}
	})
}

// TestAutoPathFollowsTheServer: the zero Loader sends rows with LOAD DATA
// where the server allows it; where local_infile is OFF it says so and
// upserts, whether it learns it from the setting or from the refusal of its
// first LOAD DATA; the data is the same either way.
func TestAutoPathFollowsTheServer(t *testing.T) {
	files := loadtest.Crawl{Characters: 30, Locations: 6, Episodes: 4, FetchedAt: t0}.Files()
	want := loadtest.Expected(files)
	check := func(t *testing.T, db *sql.DB) {
		t.Helper()
		for _, tb := range warehouse.Tables() {
			if got := dump(t, db, tb.Name, warehousedb.DumpData); got != want[tb.Name] {
				t.Errorf("%s:\n%s\nwant:\n%s", tb.Name, got, want[tb.Name])
			}
		}
	}
	t.Run("allowed", func(t *testing.T) {
		db, _ := migrated(t)
		setLocalInfile(t, db, true)
		var l Loader
		for _, f := range files {
			if res := apply(t, &l, db, f); res.Path != PathInfile || res.Fallback != "" || res.Attempts != 1 {
				t.Errorf("%s: %+v, want the LOAD DATA path", f.Key, res)
			}
		}
		check(t, db)
	})
	t.Run("local_infile OFF", func(t *testing.T) {
		db, _ := migrated(t)
		setLocalInfile(t, db, false)
		var l Loader
		for _, f := range files {
			if res := apply(t, &l, db, f); res.Path != PathUpsert || !strings.Contains(res.Fallback, "local_infile is OFF") || res.Attempts != 1 {
				t.Errorf("%s: %+v, want the upsert path, saying why", f.Key, res)
			}
		}
		check(t, db)
	})
	t.Run("refused at run time", func(t *testing.T) {
		db, _ := migrated(t)
		setLocalInfile(t, db, false)
		var l Loader
		l.remember(db, "") // believed allowed: the first LOAD DATA finds out
		for _, f := range files {
			res := apply(t, &l, db, f)
			if res.Path != PathUpsert || res.Attempts != 1 || !strings.Contains(res.Fallback, "LOAD DATA LOCAL refused") {
				t.Errorf("%s: %+v, want the upsert path in one attempt, saying why", f.Key, res)
			}
		}
		check(t, db)
	})
	t.Run("forced, refused", func(t *testing.T) {
		db, _ := migrated(t)
		setLocalInfile(t, db, false)
		l := Loader{Path: PathInfile}
		f := files[0]
		_, err := l.Apply(context.Background(), db, table(t, f.Table), bytes.NewReader(f.Body), ref(f.Key, f.Body))
		var refused *refusedError
		if !errors.As(err, &refused) || IsPermanent(err) {
			t.Errorf("err = %v, want the refusal (transient)", err)
		}
	})
}

// TestNewKeyInsertedMeanwhileReruns: while the LOAD DATA path inserts a
// file's new keys, another load inserts and commits two of them. LOCAL
// skips those rows; Apply sees the count fall short and runs the file again
// (in chunks, with the existing-keys query), and the file's values win. Into
// an empty table the file goes in one statement (streamAll): the other load
// commits after its first chunk. Into a table with rows it goes in chunks:
// the other load commits between the first chunk's existing-keys query and
// its insert, and the transaction is rerun like one that hit a deadlock.
func TestNewKeyInsertedMeanwhileReruns(t *testing.T) {
	loc := table(t, warehouse.Locations)
	at := "2017-11-10T12:42:04.162Z"
	var mine [][]string
	for i := 1; i <= 20; i++ {
		mine = append(mine, locationRow(i, "mine", at))
	}
	body := csvBody(t, loc.Header(), mine...)
	theirs := csvBody(t, loc.Header(), locationRow(15, "theirs", at), locationRow(16, "theirs", at))
	other := &Loader{Path: PathUpsert}
	insertTheirs := func(t *testing.T, db *sql.DB) {
		if _, err := other.Apply(context.Background(), db, loc, bytes.NewReader(theirs), ref("processed/locations/theirs.csv", theirs)); err != nil {
			t.Error(err)
		}
	}
	check := func(t *testing.T, db *sql.DB) {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM locations WHERE id BETWEEN 1 AND 20 AND name = 'mine'").Scan(&n); err != nil || n != 20 {
			t.Errorf("%d of the file's 20 rows hold its values (%v)", n, err)
		}
	}
	t.Run("one statement", func(t *testing.T) {
		db, _ := migrated(t)
		l := &Loader{Path: PathInfile, BatchRows: 5, afterBatch: func(_ ObjectRef, n int) {
			if n == 1 {
				insertTheirs(t, db) // keys 15 and 16: not yet inserted by this load
			}
		}}
		res, err := l.Apply(context.Background(), db, loc, bytes.NewReader(body), ref("processed/locations/mine.csv", body))
		if err != nil || res.Attempts != 1 {
			t.Errorf("Apply = %+v, %v; want success, the chunked rerun not counted as an attempt", res, err)
		}
		check(t, db)
	})
	t.Run("chunks", func(t *testing.T) {
		db, _ := migrated(t)
		seed := csvBody(t, loc.Header(), locationRow(100, "seed", at))
		if _, err := other.Apply(context.Background(), db, loc, bytes.NewReader(seed), ref("processed/locations/seed.csv", seed)); err != nil {
			t.Fatal(err)
		}
		var retried []error
		l := &Loader{Path: PathInfile,
			onRetry: func(_ int, err error) { retried = append(retried, err) },
			afterProbe: func(_ ObjectRef, n int) {
				if n == 1 && len(retried) == 0 {
					insertTheirs(t, db)
				}
			},
		}
		res, err := l.Apply(context.Background(), db, loc, bytes.NewReader(body), ref("processed/locations/mine.csv", body))
		if err != nil || res.Attempts != 2 || len(retried) != 1 || !errors.Is(retried[0], errConcurrentInsert) {
			t.Errorf("Apply = %+v, %v after %v; want one rerun after the concurrent insert", res, err, retried)
		}
		check(t, db)
	})
}
