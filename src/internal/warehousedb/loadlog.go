package warehousedb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LoadLogTable records every object Load applied.
const LoadLogTable = "load_log"

// LoadEntry is one row of the load log: an object version applied to a table.
type LoadEntry struct {
	Bucket   string
	Key      string
	Version  string // "version:<VersionId>" or "etag:<ETag>": what makes redeliveries of the same bytes equal
	Table    string
	Rows     int64
	LoadedAt time.Time
}

// hash is the entry's identity: (bucket, key, version).
func (e LoadEntry) hash() []byte {
	h := sha256.New()
	h.Write([]byte(e.Bucket))
	h.Write([]byte{0})
	h.Write([]byte(e.Key))
	h.Write([]byte{0})
	h.Write([]byte(e.Version))
	return h.Sum(nil)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ClaimLoad records e inside the caller's transaction, before its rows are
// applied. It returns false when the log already holds the same (bucket, key,
// version): the object was loaded before and the caller should roll back. A
// concurrent transaction claiming the same object makes this one wait until
// that one commits (false) or rolls back (true).
func ClaimLoad(ctx context.Context, tx execer, e LoadEntry) (bool, error) {
	// ON DUPLICATE KEY UPDATE with no change affects 0 rows: the object was claimed
	// before. (No driver error type here, so the table definitions stay free of
	// the MySQL driver and the transform binary does not link it.)
	res, err := tx.ExecContext(ctx, "INSERT INTO `"+LoadLogTable+"` (`object_hash`, `bucket`, `object_key`, `version`, `table_name`, `row_count`, `loaded_at`) VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE `object_hash` = `object_hash`",
		e.hash(), e.Bucket, e.Key, e.Version, e.Table, e.Rows, e.LoadedAt)
	if err != nil {
		return false, fmt.Errorf("recording s3://%s/%s in %s: %w", e.Bucket, e.Key, LoadLogTable, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("recording s3://%s/%s in %s: %w", e.Bucket, e.Key, LoadLogTable, err)
	}
	return n == 1, nil
}

// FinishLoad stores the row count of a claimed entry, in the same transaction.
func FinishLoad(ctx context.Context, tx execer, e LoadEntry) error {
	if _, err := tx.ExecContext(ctx, "UPDATE `"+LoadLogTable+"` SET `row_count` = ? WHERE `object_hash` = ?", e.Rows, e.hash()); err != nil {
		return fmt.Errorf("recording s3://%s/%s in %s: %w", e.Bucket, e.Key, LoadLogTable, err)
	}
	return nil
}

// Loaded reports whether the log holds (bucket, key, version), and when it
// was loaded.
func Loaded(ctx context.Context, q rowQueryer, bucket, key, version string) (bool, time.Time, error) {
	e := LoadEntry{Bucket: bucket, Key: key, Version: version}
	var at time.Time
	err := q.QueryRowContext(ctx, "SELECT `loaded_at` FROM `"+LoadLogTable+"` WHERE `object_hash` = ?", e.hash()).Scan(&at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, time.Time{}, nil
	case err != nil:
		return false, time.Time{}, fmt.Errorf("looking up s3://%s/%s in %s: %w", bucket, key, LoadLogTable, err)
	}
	return true, at, nil
}

// LoadLog returns every entry of the log, oldest first.
func LoadLog(ctx context.Context, q queryer) ([]LoadEntry, error) {
	rows, err := q.QueryContext(ctx, "SELECT `bucket`, `object_key`, `version`, `table_name`, `row_count`, `loaded_at` FROM `"+LoadLogTable+"` ORDER BY `loaded_at`, `object_key`, `version`")
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", LoadLogTable, err)
	}
	defer rows.Close()
	var out []LoadEntry
	for rows.Next() {
		var e LoadEntry
		if err := rows.Scan(&e.Bucket, &e.Key, &e.Version, &e.Table, &e.Rows, &e.LoadedAt); err != nil {
			return nil, fmt.Errorf("reading %s: %w", LoadLogTable, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", LoadLogTable, err)
	}
	return out, nil
}
