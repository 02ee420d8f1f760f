package localmysql

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maxSnapshotLine bounds one statement of a snapshot file (INSERTs are
// written in batches of about snapshotBatch bytes).
const (
	maxSnapshotLine = 64 << 20
	snapshotBatch   = 256 << 10
	// snapshotRows bounds the rows of one INSERT.
	snapshotRows = 1000
)

// systemDatabases are not saved.
var systemDatabases = map[string]bool{"information_schema": true, "mysql": true, "performance_schema": true, "sys": true}

func (m *Server) snapshotDir() string { return filepath.Join(m.dataDir, "mysql") }

// Save writes every database to <DataDir>/mysql/<database>.sql, a plain SQL
// dump (one statement per line) that Start replays. It waits for open
// write transactions to end and holds writers back while it runs, so the
// snapshot is consistent. Without a DataDir it does nothing.
func (m *Server) Save(ctx context.Context) error {
	if m.dataDir == "" {
		return nil
	}
	select {
	case m.handler.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("saving embedded MySQL: %w", ctx.Err())
	}
	defer func() { <-m.handler.lock }()
	conn, err := m.client.Conn(ctx)
	if err != nil {
		return fmt.Errorf("saving embedded MySQL: %w", err)
	}
	defer conn.Close()
	if err := os.MkdirAll(m.snapshotDir(), 0o755); err != nil {
		return fmt.Errorf("saving embedded MySQL: %w", err)
	}
	dbs, err := queryStrings(ctx, conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
	if err != nil {
		return fmt.Errorf("saving embedded MySQL: listing databases: %w", err)
	}
	keep := make(map[string]bool)
	for _, db := range dbs {
		if systemDatabases[strings.ToLower(db)] {
			continue
		}
		keep[db+".sql"] = true
		if err := m.dump(ctx, conn, db); err != nil {
			return fmt.Errorf("saving embedded MySQL: database %s: %w", db, err)
		}
	}
	// Dropped databases.
	entries, _ := os.ReadDir(m.snapshotDir())
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") && !keep[e.Name()] {
			os.Remove(filepath.Join(m.snapshotDir(), e.Name()))
		}
	}
	return nil
}

// dump writes one database's snapshot atomically.
func (m *Server) dump(ctx context.Context, conn *sql.Conn, db string) error {
	f, err := os.CreateTemp(m.snapshotDir(), "."+db+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op once renamed
	w := bufio.NewWriter(f)
	err = writeDump(ctx, conn, db, w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(m.snapshotDir(), db+".sql"))
}

func writeDump(ctx context.Context, conn *sql.Conn, db string, w *bufio.Writer) error {
	qdb := quoteIdent(db)
	var collation string
	if err := conn.QueryRowContext(ctx, "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", db).Scan(&collation); err != nil {
		return err
	}
	fmt.Fprintf(w, "-- Snapshot of database %s kept by the local stack's embedded MySQL (go-mysql-server), %s.\n", qdb, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "-- One statement per line; also loads into MySQL: mysql < %s.sql\n", db)
	fmt.Fprintf(w, "SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS=0;\nCREATE DATABASE IF NOT EXISTS %s COLLATE %s;\nUSE %s;\n", qdb, collation, qdb)

	rows, err := conn.QueryContext(ctx, "SHOW FULL TABLES FROM "+qdb)
	if err != nil {
		return err
	}
	var tables, views []string
	for rows.Next() {
		var name, kind string
		if err := rows.Scan(&name, &kind); err != nil {
			rows.Close()
			return err
		}
		if strings.EqualFold(kind, "VIEW") {
			views = append(views, name)
		} else {
			tables = append(tables, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range tables {
		var name, ddl string
		if err := conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+qdb+"."+quoteIdent(t)).Scan(&name, &ddl); err != nil {
			return fmt.Errorf("table %s: %w", t, err)
		}
		fmt.Fprintf(w, "DROP TABLE IF EXISTS %s;\n%s;\n", quoteIdent(t), oneLine(ddl))
		if err := dumpRows(ctx, conn, db, t, w); err != nil {
			return fmt.Errorf("table %s: %w", t, err)
		}
	}
	for _, v := range views {
		var name, ddl, cs, coll string
		if err := conn.QueryRowContext(ctx, "SHOW CREATE VIEW "+qdb+"."+quoteIdent(v)).Scan(&name, &ddl, &cs, &coll); err != nil {
			return fmt.Errorf("view %s: %w", v, err)
		}
		fmt.Fprintf(w, "DROP VIEW IF EXISTS %s;\n%s;\n", quoteIdent(v), oneLine(ddl))
	}
	_, err = w.WriteString("SET FOREIGN_KEY_CHECKS=1;\n")
	return err
}

// dumpRows writes the rows of a table as multi-row INSERT statements.
func dumpRows(ctx context.Context, conn *sql.Conn, db, table string, w *bufio.Writer) error {
	cols, err := queryStrings(ctx, conn, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? "+
		"AND UPPER(EXTRA) NOT LIKE '%VIRTUAL GENERATED%' AND UPPER(EXTRA) NOT LIKE '%STORED GENERATED%' ORDER BY ORDINAL_POSITION", db, table)
	if err != nil || len(cols) == 0 {
		return err
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = quoteIdent(c)
	}
	list := strings.Join(quoted, ",")
	rows, err := conn.QueryContext(ctx, "SELECT "+list+" FROM "+quoteIdent(db)+"."+quoteIdent(table))
	if err != nil {
		return err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	kinds := make([]valueKind, len(types))
	for i, t := range types {
		kinds[i] = kindOf(t.DatabaseTypeName())
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	prefix := "INSERT INTO " + quoteIdent(table) + " (" + list + ") VALUES "
	var stmt strings.Builder
	n := 0
	flush := func() error {
		if stmt.Len() == 0 {
			return nil
		}
		stmt.WriteString(";\n")
		_, err := w.WriteString(stmt.String())
		stmt.Reset()
		n = 0
		return err
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if stmt.Len() == 0 {
			stmt.WriteString(prefix)
		} else {
			stmt.WriteByte(',')
		}
		stmt.WriteByte('(')
		for i, v := range vals {
			if i > 0 {
				stmt.WriteByte(',')
			}
			writeLiteral(&stmt, v, kinds[i])
		}
		stmt.WriteByte(')')
		if n++; n >= snapshotRows || stmt.Len() >= snapshotBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return flush()
}

type valueKind int

const (
	kindString valueKind = iota
	kindNumber
	kindBinary
)

func kindOf(dbType string) valueKind {
	t := strings.TrimPrefix(strings.ToUpper(dbType), "UNSIGNED ")
	switch t {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "DECIMAL", "FLOAT", "DOUBLE", "YEAR":
		return kindNumber
	case "BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BIT", "GEOMETRY":
		return kindBinary
	}
	return kindString
}

// writeLiteral writes a value as a SQL literal: NULL, a number, X'hex' for
// binary data, or a quoted string with MySQL's backslash escapes.
func writeLiteral(b *strings.Builder, v sql.RawBytes, kind valueKind) {
	switch {
	case v == nil:
		b.WriteString("NULL")
	case kind == kindNumber:
		b.Write(v)
	case kind == kindBinary && len(v) == 0:
		b.WriteString("''")
	case kind == kindBinary:
		b.WriteString("X'")
		b.WriteString(hex.EncodeToString(v))
		b.WriteByte('\'')
	default:
		b.WriteByte('\'')
		for _, c := range v {
			switch c {
			case 0:
				b.WriteString(`\0`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\\':
				b.WriteString(`\\`)
			case '\'':
				b.WriteString(`\'`)
			case 0x1a:
				b.WriteString(`\Z`)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('\'')
	}
}

// oneLine puts a statement on one line: line breaks outside quotes become
// spaces, inside string literals they become \n escapes.
func oneLine(stmt string) string {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(stmt); i++ {
		c := stmt[i]
		switch {
		case quote == 0 && (c == '\'' || c == '"' || c == '`'):
			quote = c
		case quote != 0 && c == '\\' && quote != '`' && i+1 < len(stmt):
			b.WriteByte(c)
			i++
			c = stmt[i]
		case quote != 0 && c == quote:
			quote = 0
		}
		switch {
		case (c == '\n' || c == '\r') && (quote == '\'' || quote == '"'):
			if c == '\n' {
				b.WriteString(`\n`)
			} else {
				b.WriteString(`\r`)
			}
		case c == '\n' || c == '\r':
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func queryStrings(ctx context.Context, conn *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// restore replays the snapshot files of <DataDir>/mysql.
func (m *Server) restore(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(m.snapshotDir(), "*.sql"))
	if err != nil || len(files) == 0 {
		return err
	}
	conn, err := m.client.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, p := range files {
		if err := replay(ctx, conn, p); err != nil {
			return err
		}
	}
	return nil
}

func replay(ctx context.Context, conn *sql.Conn, p string) error {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxSnapshotLine)
	line := 0
	for sc.Scan() {
		line++
		stmt := strings.TrimSpace(sc.Text())
		if stmt == "" || strings.HasPrefix(stmt, "--") {
			continue
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("restoring %s, line %d (delete the file to start with an empty database): %w", p, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("restoring %s: %w", p, err)
	}
	return nil
}
