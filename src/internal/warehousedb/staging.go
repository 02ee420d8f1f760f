package warehousedb

import (
	"strings"

	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// The bulk path of Load: a processed CSV goes to the server with LOAD DATA
// LOCAL INFILE, as tab-separated text in the server's default format
// (fields ended by a tab, lines by a newline, '\' escaping a tab, newline,
// carriage return, NUL or '\' inside a value; \N for NULL), whose rows are
// the data columns in CSV order followed by the load time. Rows whose key is
// new go straight into the table; rows whose key exists go to a staging
// table, applied at the end by one INSERT ... SELECT with the upsert's rules
// (ApplyStagedSQL).

// StagingTable returns the name of t's staging table: a TEMPORARY table of
// the loading session, so it never meets another session's.
func StagingTable(t warehouse.Table) string { return "load_staging_" + t.Name }

// StagingDDL returns the statements that create t's staging table afresh:
// t's data columns, keyed like t (a key loaded twice keeps the last row).
// DROP and CREATE TEMPORARY TABLE do not end the transaction.
func StagingDDL(t warehouse.Table) []string {
	var b strings.Builder
	b.WriteString("CREATE TEMPORARY TABLE " + Quote(StagingTable(t)) + " (")
	for _, c := range t.Columns {
		b.WriteString(Quote(c.Name) + " " + columnType(c.Kind))
		if c.Nullable {
			b.WriteString(" NULL, ")
		} else {
			b.WriteString(" NOT NULL, ")
		}
	}
	b.WriteString("PRIMARY KEY (" + quoteAll(t.Key) + ")) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
	return []string{DropStagingSQL(t), b.String()}
}

// DropStagingSQL returns the statement that drops t's staging table.
func DropStagingSQL(t warehouse.Table) string {
	return "DROP TEMPORARY TABLE IF EXISTS " + Quote(StagingTable(t))
}

// columnType is the MySQL type of a data column of each kind, as the
// migrations declare it.
func columnType(k warehouse.Kind) string {
	switch k {
	case warehouse.Int:
		return "INT"
	case warehouse.DateTime:
		return "DATETIME(3)"
	case warehouse.Date:
		return "DATE"
	default:
		return "VARCHAR(1024)"
	}
}

// LoadDataSQL returns the LOAD DATA LOCAL INFILE statement that reads the
// rows of the driver's reader named reader (registered with
// mysql.RegisterReaderHandler) into t, the load time becoming createdDate;
// with staged, into t's staging table, the load time dropped and a key seen
// twice keeping its last row. Into t, a row whose key exists is skipped, as
// LOCAL always does (the caller counts the rows inserted).
func LoadDataSQL(t warehouse.Table, reader string, staged bool) string {
	into, last, mode := Quote(t.Name), Quote(warehouse.CreatedDate), ""
	if staged {
		into, last, mode = Quote(StagingTable(t)), "@loaded", "REPLACE "
	}
	cols := make([]string, 0, len(t.Columns)+1)
	for _, c := range t.Columns {
		cols = append(cols, Quote(c.Name))
	}
	cols = append(cols, last)
	return "LOAD DATA LOCAL INFILE '" + strings.ReplaceAll(reader, "'", "''") + "' " + mode + "INTO TABLE " + into +
		" CHARACTER SET utf8mb4 (" + strings.Join(cols, ", ") + ")"
}

// ApplyStagedSQL returns the one statement that applies t's staging table
// to t, in key order, by UpsertSQL's rules; its one argument is the load time.
func ApplyStagedSQL(t warehouse.Table) string {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = Quote(c.Name)
	}
	list := strings.Join(cols, ", ")
	return "INSERT INTO " + Quote(t.Name) + " (" + list + ", " + Quote(warehouse.CreatedDate) + ") SELECT " + list + ", ? FROM " +
		Quote(StagingTable(t)) + " ORDER BY " + quoteAll(t.Key) + " ON DUPLICATE KEY UPDATE " + updateClause(t, Quote(t.Name)+".")
}

// ExistingKeysSQL returns the query that lists the keys of t's rows whose
// first key column is one of n values; with n 0, between its two arguments
// (one range read of the primary key, for keys that are close together).
func ExistingKeysSQL(t warehouse.Table, n int) string {
	q := "SELECT " + quoteAll(t.Key) + " FROM " + Quote(t.Name) + " WHERE " + Quote(t.Key[0])
	if n == 0 {
		return q + " BETWEEN ? AND ?"
	}
	return q + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// AnyRowSQL returns the query that reads one row of t, if it has any.
func AnyRowSQL(t warehouse.Table) string { return "SELECT 1 FROM " + Quote(t.Name) + " LIMIT 1" }

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = Quote(n)
	}
	return strings.Join(q, ", ")
}
