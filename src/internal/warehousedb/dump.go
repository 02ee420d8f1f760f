package warehousedb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// DumpMode selects the bookkeeping columns Dump writes after the data columns.
type DumpMode int

// Dump modes.
const (
	// DumpData writes the data columns only: equal dumps mean equal data.
	DumpData DumpMode = iota
	// DumpModified adds "modified", 1 when modifiedDate is set and 0 when it
	// is NULL: equal dumps mean equal data and equal change history, whatever
	// the clock said (compare two runs of the same loads).
	DumpModified
	// DumpAll adds createdDate and modifiedDate verbatim.
	DumpAll
)

// BookkeepingLayout renders createdDate and modifiedDate (DATETIME(6)) in dumps.
const BookkeepingLayout = "2006-01-02T15:04:05.000000Z"

// DumpHeader returns the header Dump writes for t in mode.
func DumpHeader(t warehouse.Table, mode DumpMode) []string {
	h := t.Header()
	switch mode {
	case DumpModified:
		h = append(h, "modified")
	case DumpAll:
		h = append(h, warehouse.CreatedDate, warehouse.ModifiedDate)
	}
	return h
}

// Dump writes every row of t, ordered by its key, as a tablecsv CSV with the
// header DumpHeader(t, mode). Values are rendered as in processed CSVs, so a
// dump in DumpData mode of a table loaded from one processed file holds that
// file's rows. It returns the number of rows written.
func Dump(ctx context.Context, q queryer, t warehouse.Table, mode DumpMode, w io.Writer) (int64, error) {
	cols := make([]string, 0, len(t.Columns)+2)
	for _, c := range t.Columns {
		cols = append(cols, Quote(c.Name))
	}
	if mode != DumpData {
		cols = append(cols, Quote(warehouse.CreatedDate), Quote(warehouse.ModifiedDate))
	}
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = Quote(k)
	}
	rows, err := q.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+Quote(t.Name)+" ORDER BY "+strings.Join(keys, ", "))
	if err != nil {
		return 0, fmt.Errorf("dumping %s: %w", t.Name, err)
	}
	defer rows.Close()
	cw := tablecsv.NewWriter(w)
	if err := cw.WriteHeader(DumpHeader(t, mode)); err != nil {
		return 0, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	out := make([]tablecsv.Field, 0, len(cols))
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, fmt.Errorf("dumping %s: %w", t.Name, err)
		}
		out = out[:0]
		for i, c := range t.Columns {
			f, err := render(vals[i], c.Kind)
			if err != nil {
				return n, fmt.Errorf("dumping %s.%s: %w", t.Name, c.Name, err)
			}
			out = append(out, f)
		}
		switch mode {
		case DumpModified:
			out = append(out, tablecsv.Text(map[bool]string{true: "0", false: "1"}[vals[len(vals)-1] == nil]))
		case DumpAll:
			for _, v := range vals[len(t.Columns):] {
				f, err := renderTime(v, BookkeepingLayout)
				if err != nil {
					return n, fmt.Errorf("dumping %s: %w", t.Name, err)
				}
				out = append(out, f)
			}
		}
		if err := cw.Write(out); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("dumping %s: %w", t.Name, err)
	}
	return n, cw.Flush()
}

// Checksum returns the SHA-256 (hex) of t's dump in mode and its row count:
// two databases hold the same table when their checksums are equal.
func Checksum(ctx context.Context, q queryer, t warehouse.Table, mode DumpMode) (string, int64, error) {
	h := sha256.New()
	n, err := Dump(ctx, q, t, mode, h)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func render(v any, kind warehouse.Kind) (tablecsv.Field, error) {
	if v == nil {
		return tablecsv.Null, nil
	}
	switch kind {
	case warehouse.DateTime:
		return renderTime(v, warehouse.TimeLayout)
	case warehouse.Date:
		return renderTime(v, warehouse.DateLayout)
	}
	switch x := v.(type) {
	case []byte:
		return tablecsv.Text(string(x)), nil
	case string:
		return tablecsv.Text(x), nil
	case int64:
		return tablecsv.Text(strconv.FormatInt(x, 10)), nil
	case int32:
		return tablecsv.Text(strconv.FormatInt(int64(x), 10)), nil
	case uint64:
		return tablecsv.Text(strconv.FormatUint(x, 10)), nil
	default:
		return tablecsv.Text(fmt.Sprint(x)), nil
	}
}

// renderTime formats a DATETIME or DATE read with or without parseTime.
func renderTime(v any, layout string) (tablecsv.Field, error) {
	switch x := v.(type) {
	case nil:
		return tablecsv.Null, nil
	case time.Time:
		return tablecsv.Text(x.UTC().Format(layout)), nil
	case []byte:
		return renderTime(string(x), layout)
	case string:
		for _, in := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02"} {
			if t, err := time.ParseInLocation(in, x, time.UTC); err == nil {
				return tablecsv.Text(t.Format(layout)), nil
			}
		}
		return tablecsv.Field{}, fmt.Errorf("unexpected time value %q", x)
	default:
		return tablecsv.Field{}, fmt.Errorf("unexpected time value of type %T", v)
	}
}

// Checksums returns Checksum of every warehouse table, by table name.
func Checksums(ctx context.Context, q queryer, mode DumpMode) (map[string]string, error) {
	out := map[string]string{}
	for _, t := range warehouse.Tables() {
		sum, _, err := Checksum(ctx, q, t, mode)
		if err != nil {
			return nil, err
		}
		out[t.Name] = sum
	}
	return out, nil
}
