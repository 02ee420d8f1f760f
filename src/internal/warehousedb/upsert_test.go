package warehousedb_test

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

func TestUpsertSQLShape(t *testing.T) {
	ch, _ := warehouse.Lookup(warehouse.Characters)
	q := warehousedb.UpsertSQL(ch, 2)
	if strings.Count(q, "?") != 2*warehousedb.UpsertArgs(ch) {
		t.Errorf("placeholders = %d, want %d", strings.Count(q, "?"), 2*warehousedb.UpsertArgs(ch))
	}
	upd := q[strings.Index(q, "ON DUPLICATE KEY UPDATE"):]
	m, f := strings.Index(upd, "`modifiedDate` ="), strings.Index(upd, "`fetched_at` =")
	if m < 0 || f < 0 || m > strings.Index(upd, "`name` =") || f < strings.LastIndex(upd, "`url` =") {
		t.Errorf("modifiedDate must be assigned first and fetched_at last:\n%s", upd)
	}
	if strings.Contains(upd, "`id` =") || strings.Contains(q, " AS new") {
		t.Errorf("the key must not be updated and no INSERT ... AS alias (MariaDB):\n%s", q)
	}
	link, _ := warehouse.Lookup(warehouse.CharacterEpisodes)
	if q := warehousedb.UpsertSQL(link, 1); !strings.HasSuffix(q, "ON DUPLICATE KEY UPDATE `character_id` = `character_id`") {
		t.Errorf("link upsert is not insert-only: %s", q)
	}
}

// character is a characters row in CSV order (fetched_at last).
type character struct {
	id                                 int64
	name, status, species, typ, gender string
	originID                           any // nil or int64
	originName                         string
	locationID                         any
	locationName, image, url           string
	created, fetched                   time.Time
}

func (c character) args(load time.Time) []any {
	return []any{c.id, c.name, c.status, c.species, c.typ, c.gender, c.originID, c.originName, c.locationID,
		c.locationName, c.image, c.url, c.created, c.fetched, load}
}

type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func upsert(t *testing.T, q execQuerier, tb warehouse.Table, load time.Time, rows ...character) {
	t.Helper()
	var args []any
	for _, r := range rows {
		args = append(args, r.args(load)...)
	}
	if _, err := q.ExecContext(context.Background(), warehousedb.UpsertSQL(tb, len(rows)), args...); err != nil {
		t.Fatal(err)
	}
}

func dumpAll(t *testing.T, q execQuerier, tb warehouse.Table) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := warehousedb.Dump(context.Background(), q, tb, warehousedb.DumpAll, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestUpsertVersioning applies a sequence of upserts to one characters row
// and checks, after each, its values, fetched_at, createdDate and
// modifiedDate. On MariaDB it runs again with SIMULTANEOUS_ASSIGNMENT: the
// statement must not depend on the order the server evaluates assignments in.
func TestUpsertVersioning(t *testing.T) {
	db, _ := testenv.MySQL(t)
	ctx := context.Background()
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	modes := []string{"default"}
	if strings.Contains(version, "MariaDB") {
		modes = append(modes, "SIMULTANEOUS_ASSIGNMENT")
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if mode != "default" {
				if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = CONCAT(@@sql_mode, ',"+mode+"')"); err != nil {
					t.Fatal(err)
				}
				defer conn.ExecContext(ctx, "SET SESSION sql_mode = DEFAULT")
			}
			if _, err := conn.ExecContext(ctx, "DELETE FROM characters"); err != nil {
				t.Fatal(err)
			}
			runVersioning(t, conn)
		})
	}
}

func runVersioning(t *testing.T, conn *sql.Conn) {
	ctx := context.Background()
	tb, _ := warehouse.Lookup(warehouse.Characters)
	day := func(d int) time.Time { return time.Date(2026, 1, d, 12, 0, 0, 500e6, time.UTC) }
	load := func(n int) time.Time { return time.Date(2026, 2, 1, 0, 0, n, 123456e3, time.UTC) }
	base := character{id: 1, name: "Rick Sanchez", status: "Alive", species: "Human", typ: "", gender: "Male",
		originID: int64(1), originName: "Earth (C-137)", locationID: nil, locationName: "",
		image: "https://x/1.jpeg", url: "https://x/1", created: day(1), fetched: day(10)}
	with := func(f func(*character)) character { c := base; f(&c); return c }

	type want struct {
		name     string
		originID any
		fetched  time.Time
		created  time.Time // createdDate
		modified any       // nil or time.Time
	}
	steps := []struct {
		what string
		row  character
		load time.Time
		want want
	}{
		{"first insert", base, load(1), want{"Rick Sanchez", int64(1), day(10), load(1), nil}},
		{"same file again", base, load(2), want{"Rick Sanchez", int64(1), day(10), load(1), nil}},
		{"newer fetch, same values", with(func(c *character) { c.fetched = day(11) }), load(3), want{"Rick Sanchez", int64(1), day(11), load(1), nil}},
		{"newer fetch, new name", with(func(c *character) { c.fetched = day(12); c.name = "Rick C-137" }), load(4), want{"Rick C-137", int64(1), day(12), load(1), load(4)}},
		{"older fetch never overwrites", with(func(c *character) { c.fetched = day(9); c.name = "Old Rick" }), load(5), want{"Rick C-137", int64(1), day(12), load(1), load(4)}},
		{"case change is a change", with(func(c *character) { c.fetched = day(13); c.name = "RICK C-137" }), load(6), want{"RICK C-137", int64(1), day(13), load(1), load(6)}},
		{"trailing space is a change", with(func(c *character) { c.fetched = day(14); c.name = "RICK C-137 " }), load(7), want{"RICK C-137 ", int64(1), day(14), load(1), load(7)}},
		{"accent is a change", with(func(c *character) { c.fetched = day(15); c.name = "RÍCK C-137 " }), load(8), want{"RÍCK C-137 ", int64(1), day(15), load(1), load(8)}},
		{"value to NULL is a change", with(func(c *character) { c.fetched = day(16); c.name = "RÍCK C-137 "; c.originID = nil }), load(9), want{"RÍCK C-137 ", nil, day(16), load(1), load(9)}},
		{"same fetch time again, same values", with(func(c *character) { c.fetched = day(16); c.name = "RÍCK C-137 "; c.originID = nil }), load(10), want{"RÍCK C-137 ", nil, day(16), load(1), load(9)}},
		{"datetime column change", with(func(c *character) { c.fetched = day(17); c.name = "RÍCK C-137 "; c.originID = nil; c.created = day(2) }), load(11), want{"RÍCK C-137 ", nil, day(17), load(1), load(11)}},
	}
	for _, s := range steps {
		upsert(t, conn, tb, s.load, s.row)
		var name string
		var origin sql.NullInt64
		var fetched, created time.Time
		var modified sql.NullTime
		if err := conn.QueryRowContext(ctx, "SELECT name, origin_id, fetched_at, createdDate, modifiedDate FROM characters WHERE id = 1").
			Scan(&name, &origin, &fetched, &created, &modified); err != nil {
			t.Fatal(err)
		}
		var gotOrigin, gotModified any
		if origin.Valid {
			gotOrigin = origin.Int64
		}
		if modified.Valid {
			gotModified = modified.Time
		}
		if name != s.want.name || gotOrigin != s.want.originID || !fetched.Equal(s.want.fetched) || !created.Equal(s.want.created) || gotModified != s.want.modified {
			t.Errorf("%s: got name=%q origin=%v fetched=%s createdDate=%s modifiedDate=%v\nwant name=%q origin=%v fetched=%s createdDate=%s modifiedDate=%v",
				s.what, name, gotOrigin, fetched, created, gotModified, s.want.name, s.want.originID, s.want.fetched, s.want.created, s.want.modified)
		}
	}
}

// TestUpsertTextRoundTrip stores awkward text through a multi-row upsert and
// reads it back byte for byte; the empty string and NULL stay distinct.
func TestUpsertTextRoundTrip(t *testing.T) {
	db, _ := testenv.MySQL(t)
	ctx := context.Background()
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	tb, _ := warehouse.Lookup(warehouse.Characters)
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"’ ζ Á", "", " ", `\N`, "NULL", "emoji 🥒 pickle", "a\"b,c\r\nd", "'; DROP TABLE characters; --", "=cmd|' /C calc'!A0", strings.Repeat("ж", warehouse.TextMaxChars)}
	var rows []character
	for i, n := range names {
		rows = append(rows, character{id: int64(i + 1), name: n, typ: "", originID: nil, locationID: int64(i), created: at, fetched: at})
	}
	upsert(t, db, tb, at, rows...)
	res, err := db.QueryContext(ctx, "SELECT id, name, type, origin_id, location_id FROM characters ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	i := 0
	for res.Next() {
		var id int64
		var name, typ string
		var origin, location sql.NullInt64
		if err := res.Scan(&id, &name, &typ, &origin, &location); err != nil {
			t.Fatal(err)
		}
		if name != names[i] || typ != "" || origin.Valid || !location.Valid || location.Int64 != int64(i) {
			t.Errorf("row %d: name=%q type=%q origin=%v location=%v, want name=%q type=\"\" origin=NULL location=%d", id, name, typ, origin, location, names[i], i)
		}
		i++
	}
	if i != len(names) {
		t.Errorf("rows = %d, want %d", i, len(names))
	}
}

func TestLinkTableIsInsertOnly(t *testing.T) {
	db, _ := testenv.MySQL(t)
	ctx := context.Background()
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	tb, _ := warehouse.Lookup(warehouse.CharacterEpisodes)
	t1, t2 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{t1, t2} {
		if _, err := db.ExecContext(ctx, warehousedb.UpsertSQL(tb, 3), 1, 1, at, 1, 2, at, 1, 1, at); err != nil {
			t.Fatal(err)
		}
	}
	got := dumpAll(t, db, tb)
	want := "character_id,episode_id,createdDate,modifiedDate\n" +
		"1,1,2026-01-01T00:00:00.000000Z,\\N\n" +
		"1,2,2026-01-01T00:00:00.000000Z,\\N\n"
	if got != want {
		t.Errorf("dump:\n%s\nwant:\n%s", got, want)
	}
}

func TestDumpModes(t *testing.T) {
	db, _ := testenv.MySQL(t)
	ctx := context.Background()
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	tb, _ := warehouse.Lookup(warehouse.Episodes)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	air := time.Date(2013, 12, 2, 0, 0, 0, 0, time.UTC)
	created := time.Date(2017, 11, 10, 12, 56, 33, 798e6, time.UTC)
	if _, err := db.ExecContext(ctx, warehousedb.UpsertSQL(tb, 1), 1, "Pilot", air, "S01E01", 1, 1, "https://x/episode/1", created, at, at); err != nil {
		t.Fatal(err)
	}
	data := "id,name,air_date,episode,season,episode_number,url,created,fetched_at\n1,Pilot,2013-12-02,S01E01,1,1,https://x/episode/1,2017-11-10T12:56:33.798Z,2026-01-01T00:00:00.000Z\n"
	for mode, want := range map[warehousedb.DumpMode]string{
		warehousedb.DumpData:     data,
		warehousedb.DumpModified: strings.Replace(strings.Replace(data, "fetched_at\n", "fetched_at,modified\n", 1), ".000Z\n", ".000Z,0\n", 1),
		warehousedb.DumpAll:      strings.Replace(strings.Replace(data, "fetched_at\n", "fetched_at,createdDate,modifiedDate\n", 1), ".000Z\n", ".000Z,2026-01-01T00:00:00.000000Z,\\N\n", 1),
	} {
		var b bytes.Buffer
		n, err := warehousedb.Dump(ctx, db, tb, mode, &b)
		if err != nil || n != 1 || b.String() != want {
			t.Errorf("mode %d: n=%d err=%v\n%s\nwant\n%s", mode, n, err, b.String(), want)
		}
	}
}

// TestServerEvaluatesAssignmentsLeftToRight records the server behaviour
// UpsertSQL is ordered for: in ON DUPLICATE KEY UPDATE, an assignment sees
// the new value of a column assigned before it (MySQL and MariaDB by
// default). UpsertSQL is written to mean the same either way (see
// TestUpsertVersioning's SIMULTANEOUS_ASSIGNMENT run), but a server that
// changed this would be worth knowing about.
func TestServerEvaluatesAssignmentsLeftToRight(t *testing.T) {
	db, _ := testenv.MySQL(t)
	ctx := context.Background()
	for _, q := range []string{
		"CREATE TABLE t (id INT PRIMARY KEY, a INT NOT NULL, b INT NOT NULL)",
		"INSERT INTO t VALUES (1, 0, 0)",
		"INSERT INTO t VALUES (1, 5, 0) ON DUPLICATE KEY UPDATE a = VALUES(a), b = a",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var a, b int
	if err := db.QueryRowContext(ctx, "SELECT a, b FROM t").Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	if a != 5 || b != 5 {
		t.Errorf("a=%d b=%d: b did not see the new a (want 5 5, left to right)", a, b)
	}
}
