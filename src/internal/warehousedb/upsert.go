package warehousedb

import (
	"strings"

	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// MaxPlaceholders is the most placeholders one statement may hold (the MySQL
// protocol counts them in 16 bits), which bounds the rows of an upsert.
const MaxPlaceholders = 65535

// UpsertArgs is the number of arguments per row of UpsertSQL: the data
// columns in CSV order, then the load time.
func UpsertArgs(t warehouse.Table) int { return len(t.Columns) + 1 }

// UpsertSQL returns the statement that upserts rows rows into t, with
// UpsertArgs placeholders per row: the data columns in CSV order followed by
// the load time, which becomes createdDate of the rows it inserts and
// modifiedDate of the rows whose values it changes.
//
// For versioned tables an existing row is overwritten only by data fetched
// at the same time or later, and modifiedDate moves only when a data column
// actually changes (compared byte for byte: the text collation is case- and
// accent-insensitive). The assignments are ordered so that the statement
// means the same whether the server evaluates them left to right (MySQL,
// MariaDB) or simultaneously (MariaDB's SIMULTANEOUS_ASSIGNMENT): modifiedDate
// first, reading the old values; each data column reading the old fetched_at;
// fetched_at last. Link tables are insert-only: a duplicate changes nothing.
//
// VALUES(col) is used rather than MySQL 8's "INSERT ... AS new" alias, which
// MariaDB does not parse.
func UpsertSQL(t warehouse.Table, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(Quote(t.Name))
	b.WriteString(" (")
	for _, c := range t.Columns {
		b.WriteString(Quote(c.Name))
		b.WriteString(", ")
	}
	b.WriteString(Quote(warehouse.CreatedDate))
	b.WriteString(") VALUES ")
	tuple := "(" + strings.Repeat("?, ", len(t.Columns)) + "?)"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	b.WriteString(updateClause(t, ""))
	return b.String()
}

// updateClause returns the assignments of ON DUPLICATE KEY UPDATE that
// apply a row to t by the rules UpsertSQL describes. With qualify (the
// table's quoted name and a dot), every reference to the table's current
// values is qualified, as INSERT ... SELECT needs when its source has the
// same column names.
func updateClause(t warehouse.Table, qualify string) string {
	if !t.Versioned {
		k := qualify + Quote(t.Key[0])
		return k + " = " + k
	}
	var b strings.Builder
	fetched := qualify + Quote(warehouse.FetchedAt)
	newer := "VALUES(" + Quote(warehouse.FetchedAt) + ") >= " + fetched
	var same []string
	for _, c := range t.Columns {
		if c.Name == warehouse.FetchedAt || t.IsKey(c.Name) {
			continue
		}
		q := Quote(c.Name)
		if c.Kind == warehouse.Text {
			same = append(same, "CAST("+qualify+q+" AS BINARY) <=> CAST(VALUES("+q+") AS BINARY)")
		} else {
			same = append(same, qualify+q+" <=> VALUES("+q+")")
		}
	}
	m := qualify + Quote(warehouse.ModifiedDate)
	b.WriteString(m + " = IF(" + newer + " AND NOT (" + strings.Join(same, " AND ") + "), VALUES(" + Quote(warehouse.CreatedDate) + "), " + m + ")")
	for _, c := range t.Columns {
		if c.Name == warehouse.FetchedAt || t.IsKey(c.Name) {
			continue
		}
		q := Quote(c.Name)
		b.WriteString(", " + qualify + q + " = IF(" + newer + ", VALUES(" + q + "), " + qualify + q + ")")
	}
	b.WriteString(", " + fetched + " = GREATEST(" + fetched + ", VALUES(" + Quote(warehouse.FetchedAt) + "))")
	return b.String()
}

// Quote returns name as a backtick-quoted MySQL identifier.
func Quote(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}
