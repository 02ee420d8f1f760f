package export

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/localmysql"
	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

// warehouseRows puts a few rows, some modified, in every warehouse table.
func warehouseRows(t *testing.T, h *harness) {
	t.Helper()
	old, mod := dt6(h.now().Add(-2*time.Hour)), dt6(h.now().Add(-time.Hour))
	h.exec("INSERT INTO locations (id, name, type, dimension, url, created, fetched_at, createdDate, modifiedDate) VALUES (1, 'Earth', 'Planet', 'C-137', 'u', ?, ?, ?, NULL), (2, 'Citadel', 'Space station', 'unknown', 'u', ?, ?, ?, ?)",
		old, old, old, old, old, old, mod)
	h.exec("INSERT INTO episodes (id, name, air_date, episode, season, episode_number, url, created, fetched_at, createdDate, modifiedDate) VALUES (1, 'Pilot', '2013-12-02', 'S01E01', 1, 1, 'u', ?, ?, ?, ?)",
		old, old, old, mod)
	h.exec("INSERT INTO characters (id, name, status, species, type, gender, origin_id, origin_name, location_id, location_name, image, url, created, fetched_at, createdDate, modifiedDate) VALUES (1, 'Rick', 'Alive', 'Human', '', 'Male', 1, 'Earth', 2, 'Citadel', 'i', 'u', ?, ?, ?, NULL)",
		old, old, old)
	h.exec("INSERT INTO character_episodes (character_id, episode_id, createdDate, modifiedDate) VALUES (1, 1, ?, NULL), (2, 1, ?, ?)", old, old, mod)
}

// The warehouse's own migrations give every table the index the exporter
// asks for (no "no index serves ORDER BY" warning, keyset chunks on an
// index range, the column not exported), on MariaDB here and on MySQL 8 by
// the same statements; Migrate can run again, also after dying half way.
func TestWarehouseMigrationIndexesThePosition(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// Die half way: the first table already altered, nothing recorded.
	if err := warehousedb.Migrate(ctx, h.db); err != nil {
		t.Fatal(err)
	}
	h.exec("DELETE FROM schema_migrations WHERE version = 4")
	h.exec("ALTER TABLE `episodes` DROP INDEX `ix_export_position`, DROP COLUMN `export_position`")
	for range 2 {
		if err := warehousedb.Migrate(ctx, h.db); err != nil {
			t.Fatal(err)
		}
	}
	warehouseRows(t, h)
	h.exec("ANALYZE TABLE locations, characters, episodes, character_episodes")
	for _, wt := range warehouse.Tables() {
		ti, err := loadTable(ctx, h.db, wt.Name, DefaultWatermarkColumns)
		if err != nil {
			t.Fatal(err)
		}
		if ti.orderBy != "`export_position`" || !ti.indexed || ti.hint != "" || len(ti.warnings) != 0 {
			t.Errorf("%s: orderBy %s indexed %v warnings %q", wt.Name, ti.orderBy, ti.indexed, ti.warnings)
		}
		if names := names(ti.Columns); strings.Contains(strings.Join(names, ","), "export_position") {
			t.Errorf("%s: exported columns %v", wt.Name, names)
		}
		from := &position{TS: h.now().Add(-90 * time.Minute)}
		for range ti.Key {
			from.Key = append(from.Key, json.RawMessage("1"))
		}
		args, err := ti.afterArgs(from)
		if err != nil {
			t.Fatal(err)
		}
		if plan := explain(t, h.db, ti.chunkSQL(true, 10), append([]any{dt6(h.now())}, args...)...); !strings.Contains(plan, "ix_export_position") || strings.Contains(plan, "filesort") {
			t.Errorf("%s: chunk query plan %s", wt.Name, plan)
		}
	}
	res := h.run(h.exporter(0, 1), specsOf(exportTables()...)...)
	for _, tr := range res.Tables {
		if tr.Status != StatusExported || len(tr.Warnings) != 0 {
			t.Errorf("%s: %+v", tr.Table, tr)
		}
		h.checkReplay(tr.Table)
	}
	// An incremental run reads through the index too.
	h.advance(time.Minute)
	h.exec("UPDATE characters SET status = 'Dead', modifiedDate = ? WHERE id = 1", dt6(h.now().Add(-time.Second)))
	h.advance(time.Minute)
	for _, tr := range h.run(h.exporter(0, 1), specsOf(exportTables()...)...).Tables {
		if len(tr.Warnings) != 0 || (tr.Table == "characters") != (tr.Status == StatusExported) {
			t.Errorf("%s: %+v", tr.Table, tr)
		}
		h.checkReplay(tr.Table)
	}
}

// On go-mysql-server (the local stack's engine) the migration leaves the
// column out: the engine cannot serve it. The exporter then reads in one
// ordered query, exports the same rows and does not warn.
func TestWarehouseMigrationOnTheEmbeddedEngine(t *testing.T) {
	srv, err := localmysql.Start(context.Background(), localmysql.Options{Database: "wh"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dc, err := mysqldb.NormalizeDSN(srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for range 2 {
		if err := warehousedb.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	api, name := testenv.S3(t)
	h := &harness{t: t, db: db, s3: api, name: name, prefix: "exports/", clock: time.Now().UTC().Truncate(time.Second)}
	warehouseRows(t, h)
	for _, wt := range warehouse.Tables() {
		ti, err := loadTable(ctx, db, wt.Name, DefaultWatermarkColumns)
		if err != nil {
			t.Fatal(err)
		}
		if !ti.embedded || ti.indexed || len(ti.warnings) != 0 {
			t.Errorf("%s: embedded %v indexed %v warnings %q", wt.Name, ti.embedded, ti.indexed, ti.warnings)
		}
		for _, c := range ti.Columns {
			if c.Name == "export_position" {
				t.Errorf("%s has export_position on the embedded engine", wt.Name)
			}
		}
	}
	e := h.exporter(0, 1)
	e.DBClock = nil // the engine's own clock
	res := h.run(e, specsOf(exportTables()...)...)
	for _, tr := range res.Tables {
		if tr.Status != StatusExported || len(tr.Warnings) != 0 {
			t.Errorf("%s: %+v", tr.Table, tr)
		}
	}
	if n := len(h.dataFiles("characters", "csv")); n != 1 {
		t.Errorf("%d CSV files of characters", n)
	}
}

func exportTables() []string {
	var out []string
	for _, wt := range warehouse.Tables() {
		out = append(out, wt.Name)
	}
	return out
}

// explain returns the plan of q as "column=value" text.
func explain(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	r, err := db.Query("EXPLAIN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cols, _ := r.Columns()
	var plan string
	for r.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			plan += c + "=" + string(vals[i]) + " "
		}
	}
	return plan
}
