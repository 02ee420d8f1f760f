package warehousedb_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/dataeng/rickmorty-pipeline/src/internal/mysqldb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehousedb"
)

func TestMigrationsAreVersionedAndSplit(t *testing.T) {
	ms, err := warehousedb.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("migrations = %d, want at least 2", len(ms))
	}
	for i, m := range ms {
		// Versions increase; a gap is a number another branch holds (0003
		// is the load's), applied in order when it lands.
		if i > 0 && m.Version <= ms[i-1].Version {
			t.Errorf("migration %04d_%s follows version %d: versions must increase", m.Version, m.Name, ms[i-1].Version)
		}
		for j, s := range m.Statements {
			if strings.HasSuffix(s, ";") || strings.Contains(s, "--") {
				t.Errorf("%04d_%s: statement not split cleanly: %q", m.Version, m.Name, s)
			}
			if !idempotent(m.Statements, j) {
				t.Errorf("%04d_%s: statement is not idempotent DDL: %.60q", m.Version, m.Name, s)
			}
		}
	}
}

// idempotent reports whether statement j of a migration can run again:
// CREATE TABLE IF NOT EXISTS, or DDL that MySQL 8 cannot guard with IF NOT
// EXISTS, prepared from a variable set to 'SELECT 1' once information_schema
// shows it applied (SET @v = IF(... EXISTS ..., 'SELECT 1', 'ALTER ...');
// PREPARE st FROM @v; EXECUTE st; DEALLOCATE PREPARE st).
func idempotent(stmts []string, j int) bool {
	s := stmts[j]
	switch {
	case strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS"):
		return true
	case strings.HasPrefix(s, "SET @"):
		return strings.Contains(s, "EXISTS (SELECT 1 FROM information_schema.") && strings.Contains(s, "'SELECT 1'")
	case strings.HasPrefix(s, "PREPARE "):
		v := s[strings.Index(s, " FROM ")+len(" FROM "):]
		return j > 0 && strings.HasPrefix(stmts[j-1], "SET "+v+" = ") && idempotent(stmts, j-1)
	case strings.HasPrefix(s, "EXECUTE "), strings.HasPrefix(s, "DEALLOCATE PREPARE "):
		name := s[strings.LastIndexByte(s, ' ')+1:]
		for k := j - 1; k >= 0; k-- {
			if strings.HasPrefix(stmts[k], "PREPARE "+name+" ") {
				return idempotent(stmts, k)
			}
		}
	}
	return false
}

// openPool opens an independent pool on dsn, as a separate cold start would.
func openPool(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	dc, err := mysqldb.NormalizeDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mysql.NewConnector(dc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrateRacingColdStarts(t *testing.T) {
	_, dsn := testenv.MySQL(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		db := openPool(t, dsn)
		wg.Go(func() { errs[i] = warehousedb.Migrate(ctx, db) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
	db := openPool(t, dsn)
	ms, _ := warehousedb.Migrations()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("schema_migrations holds %d rows, want %d", n, len(ms))
	}
	// And once more, on a migrated database: nothing to do, no error.
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateRefusesAnEditedMigration(t *testing.T) {
	db, _ := testenv.MySQL(t)
	ctx := context.Background()
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "UPDATE schema_migrations SET checksum = REPEAT('0', 64) WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	err := warehousedb.Migrate(ctx, db)
	if err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
		t.Fatalf("Migrate = %v, want an error about the edited migration", err)
	}
}

func TestMigrateFinishesAHalfAppliedMigration(t *testing.T) {
	db, _ := testenv.MySQL(t)
	ctx := context.Background()
	// A process died after creating one table of migration 1, before recording it.
	ms, _ := warehousedb.Migrations()
	if _, err := db.ExecContext(ctx, ms[0].Statements[0]); err != nil {
		t.Fatal(err)
	}
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, tb := range warehouse.Tables() {
		if _, err := db.ExecContext(ctx, "SELECT 1 FROM "+warehousedb.Quote(tb.Name)+" LIMIT 1"); err != nil {
			t.Errorf("table %s: %v", tb.Name, err)
		}
	}
}

// TestSchemaMatchesTables checks the SQL migrations against tables.go: the
// data columns in CSV order with types of their kind, then createdDate and
// modifiedDate, utf8mb4_unicode_ci text of TextMaxChars, the key, and the
// indexes the exporter needs.
func TestSchemaMatchesTables(t *testing.T) {
	db, _ := testenv.MySQL(t)
	ctx := context.Background()
	if err := warehousedb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	wantType := map[warehouse.Kind]string{warehouse.Int: "int", warehouse.Text: "varchar", warehouse.DateTime: "datetime", warehouse.Date: "date"}
	for _, tb := range warehouse.Tables() {
		t.Run(tb.Name, func(t *testing.T) {
			rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COALESCE(CHARACTER_MAXIMUM_LENGTH, 0),
				COALESCE(DATETIME_PRECISION, 0), COALESCE(COLLATION_NAME, ''), COLUMN_KEY
				FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND EXTRA NOT LIKE '%INVISIBLE%'
				ORDER BY ORDINAL_POSITION`, tb.Name)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			type col struct {
				name, typ, nullable string
				length, precision   int
				collation, key      string
			}
			var got []col
			for rows.Next() {
				var c col
				if err := rows.Scan(&c.name, &c.typ, &c.nullable, &c.length, &c.precision, &c.collation, &c.key); err != nil {
					t.Fatal(err)
				}
				got = append(got, c)
			}
			if len(got) != len(tb.Columns)+2 {
				t.Fatalf("columns = %d, want %d data + createdDate + modifiedDate", len(got), len(tb.Columns))
			}
			for i, c := range tb.Columns {
				g := got[i]
				if g.name != c.Name || g.typ != wantType[c.Kind] || (g.nullable == "YES") != c.Nullable {
					t.Errorf("column %d = %s %s nullable=%s, want %s %s nullable=%v", i, g.name, g.typ, g.nullable, c.Name, wantType[c.Kind], c.Nullable)
				}
				switch c.Kind {
				case warehouse.Text:
					if g.length != warehouse.TextMaxChars || g.collation != "utf8mb4_unicode_ci" {
						t.Errorf("%s: length %d collation %s, want %d utf8mb4_unicode_ci", c.Name, g.length, g.collation, warehouse.TextMaxChars)
					}
				case warehouse.DateTime:
					if g.precision != 3 {
						t.Errorf("%s: DATETIME(%d), want DATETIME(3)", c.Name, g.precision)
					}
				}
			}
			cd, md := got[len(tb.Columns)], got[len(tb.Columns)+1]
			if cd.name != warehouse.CreatedDate || cd.typ != "datetime" || cd.precision != 6 || cd.nullable != "NO" {
				t.Errorf("createdDate column = %+v, want createdDate DATETIME(6) NOT NULL", cd)
			}
			if md.name != warehouse.ModifiedDate || md.typ != "datetime" || md.precision != 6 || md.nullable != "YES" {
				t.Errorf("modifiedDate column = %+v, want modifiedDate DATETIME(6) NULL", md)
			}
			var keys []string
			for _, g := range got {
				if g.key == "PRI" {
					keys = append(keys, g.name)
				}
			}
			if strings.Join(keys, ",") != strings.Join(tb.Key, ",") {
				t.Errorf("primary key = %v, want %v", keys, tb.Key)
			}
			for _, c := range []string{warehouse.CreatedDate, warehouse.ModifiedDate} {
				var n int
				if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.STATISTICS
					WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ? AND SEQ_IN_INDEX = 1`, tb.Name, c).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					t.Errorf("no index starts with %s", c)
				}
			}
			// The exporter's position (0004): invisible, generated, first in an index.
			var expr, extra string
			var indexed int
			if err := db.QueryRowContext(ctx, `SELECT GENERATION_EXPRESSION, EXTRA, (SELECT COUNT(*) FROM information_schema.STATISTICS s
					WHERE s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME AND s.COLUMN_NAME = c.COLUMN_NAME AND s.SEQ_IN_INDEX = 1)
				FROM information_schema.COLUMNS c WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'export_position'`, tb.Name).Scan(&expr, &extra, &indexed); err != nil {
				t.Fatalf("export_position: %v", err)
			}
			if !strings.Contains(extra, "INVISIBLE") || !strings.Contains(extra, "GENERATED") || indexed == 0 ||
				strings.ReplaceAll(strings.ToLower(expr), " ", "") != "coalesce(`modifieddate`,`createddate`)" {
				t.Errorf("export_position: %s, %s, indexed %d", expr, extra, indexed)
			}
			var fks int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS
				WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?`, tb.Name).Scan(&fks); err != nil {
				t.Fatal(err)
			}
			if fks != 0 {
				t.Errorf("%d foreign keys: rows must load in any order", fks)
			}
		})
	}
}
