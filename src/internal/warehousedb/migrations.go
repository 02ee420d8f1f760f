package warehousedb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MigrationsTable records the applied migrations.
const MigrationsTable = "schema_migrations"

// migrateLockWait bounds how long Migrate waits for another process that is
// migrating the same database.
const migrateLockWait = 60 * time.Second

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one embedded, versioned schema change: the file
// migrations/NNNN_name.sql. Its statements are separated by ";" at the end of
// a line and must be idempotent (CREATE TABLE IF NOT EXISTS, ...), so a
// migration interrupted half way is simply run again.
type Migration struct {
	Version    int
	Name       string
	Statements []string
	Checksum   string // SHA-256 of the file, hex
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[int]string{}
	for _, name := range names {
		base := path.Base(name)
		num, label, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || label == "" {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, base, v)
		}
		seen[v] = base
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		stmts := splitStatements(string(b))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration %s holds no statement", base)
		}
		ms = append(ms, Migration{Version: v, Name: label, Statements: stmts, Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// splitStatements drops "--" comment lines and splits the rest at ";" ending
// a line. The migration files are ours: no ";" ends a line inside a literal.
func splitStatements(src string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(strings.TrimRight(line, " \t\r"))
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			s := strings.TrimSpace(cur.String())
			stmts = append(stmts, strings.TrimSpace(strings.TrimSuffix(s, ";")))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// Migrate brings the database's schema up to date: it applies, in order, each
// embedded migration not yet recorded in schema_migrations. Processes racing
// on the same database (several cold starts) are serialized by a named lock
// held on one connection (GET_LOCK), and every step is idempotent, so a
// process that dies half way leaves nothing the next one cannot finish.
// A recorded migration whose checksum differs from the embedded file is an
// error: applied migrations must never be edited, only followed by new ones.
func Migrate(ctx context.Context, db *sql.DB) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrating: connecting: %w", err)
	}
	defer conn.Close()

	var schema sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&schema); err != nil {
		return fmt.Errorf("migrating: reading the current database: %w", err)
	}
	if !schema.Valid || schema.String == "" {
		return errors.New("migrating: the connection has no database selected (add /dbname to the DSN)")
	}
	lock := migrateLockName(schema.String)
	wait := migrateLockWait
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = max(time.Until(dl), time.Second)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lock, int(wait.Seconds())).Scan(&got); err != nil {
		return fmt.Errorf("migrating: taking lock %s: %w", lock, err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("migrating: lock %s still held by another process after %s", lock, wait)
	}
	defer func() {
		// Release even when ctx is done; if that fails, drop the connection
		// (which releases the lock) instead of returning it to the pool.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var released sql.NullInt64
		if rerr := conn.QueryRowContext(rctx, "SELECT RELEASE_LOCK(?)", lock).Scan(&released); rerr != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()

	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS `"+MigrationsTable+"` ("+
		"`version` INT NOT NULL, `name` VARCHAR(255) NOT NULL, `checksum` CHAR(64) NOT NULL, "+
		"`applied_at` DATETIME(6) NOT NULL, PRIMARY KEY (`version`)"+
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"); err != nil {
		return fmt.Errorf("migrating: creating %s: %w", MigrationsTable, err)
	}
	applied, err := appliedMigrations(ctx, conn)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return fmt.Errorf("migrating: migration %04d_%s was changed after it was applied (checksum %s, applied %s)", m.Version, m.Name, m.Checksum[:12], sum[:min(12, len(sum))])
			}
			continue
		}
		for i, stmt := range m.Statements {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrating: applying %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		// DDL commits implicitly in MySQL: the version is recorded after its
		// statements, which are idempotent should we die in between.
		if _, err := conn.ExecContext(ctx, "INSERT INTO `"+MigrationsTable+"` (`version`, `name`, `checksum`, `applied_at`) VALUES (?, ?, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE `version` = `version`",
			m.Version, m.Name, m.Checksum); err != nil {
			return fmt.Errorf("migrating: recording %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

func appliedMigrations(ctx context.Context, conn *sql.Conn) (map[int]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT `version`, `checksum` FROM `"+MigrationsTable+"`")
	if err != nil {
		return nil, fmt.Errorf("migrating: reading %s: %w", MigrationsTable, err)
	}
	defer rows.Close()
	applied := map[int]string{}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("migrating: reading %s: %w", MigrationsTable, err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrating: reading %s: %w", MigrationsTable, err)
	}
	return applied, nil
}

// migrateLockName is the server-wide lock name for migrating schema: per
// database, so tests on their own databases do not wait for each other, and
// within MySQL's 64-character limit.
func migrateLockName(schema string) string {
	name := "rickmorty.migrate." + schema
	if len(name) <= 64 {
		return name
	}
	sum := sha256.Sum256([]byte(schema))
	return "rickmorty.migrate." + hex.EncodeToString(sum[:16])
}
