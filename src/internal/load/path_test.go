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

// TestNewKeyInsertedMeanwhileReruns: between the LOAD DATA path's
// existing-keys query and its insert, another load inserts and commits one
// of the file's keys. LOCAL skips that row; Apply sees the count fall short,
// reruns the transaction, and the file's newer values win.
func TestNewKeyInsertedMeanwhileReruns(t *testing.T) {
	db, _ := migrated(t)
	older := loadtest.Crawl{Characters: 20, FetchedAt: t0}.Files()[0]
	c := loadtest.Crawl{Characters: 20, FetchedAt: t0.Add(1e9), Revision: 1}
	newer := c.Files()[0]
	other := &Loader{Path: PathUpsert}
	var retried []error
	l := &Loader{Path: PathInfile,
		onRetry: func(_ int, err error) { retried = append(retried, err) },
		afterProbe: func(_ ObjectRef, n int) {
			if n == 1 && len(retried) == 0 {
				apply(t, other, db, older) // another connection: commits before our insert
			}
		},
	}
	res := apply(t, l, db, newer)
	if res.Attempts != 2 || len(retried) != 1 || !errors.Is(retried[0], errConcurrentInsert) {
		t.Errorf("Apply = %+v after %v; want one rerun after the concurrent insert", res, retried)
	}
	if got, want := dump(t, db, warehouse.Characters, warehousedb.DumpData), loadtest.Expected([]loadtest.File{newer})[warehouse.Characters]; got != want {
		t.Errorf("characters:\n%s\nwant the newer file's:\n%s", got, want)
	}
}
