package export

import (
	"fmt"
	"strings"
)

// DefaultWatermarkColumns are the columns a row's timestamp is read from
// when the configuration names none: COALESCE(modifiedDate, createdDate).
var DefaultWatermarkColumns = []string{"modifiedDate", "createdDate"}

// TableSpec is one table to export.
type TableSpec struct {
	Name string
	// WatermarkColumns are COALESCEd, in order, into the row's timestamp;
	// empty means DefaultWatermarkColumns.
	WatermarkColumns []string
}

// ParseWatermarkColumns reads EXPORT_WATERMARK_COLUMNS: semicolon-separated
// entries table=col1:col2..., where the row's timestamp is
// COALESCE(col1, col2, ...). The table "*" sets the default for every
// table without an entry of its own. Example:
//
//	orders=updated_at:created_at;audit_log=logged_at;*=modifiedDate:createdDate
//
// Blanks around names are ignored; an empty string means no override.
func ParseWatermarkColumns(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		table, cols, ok := strings.Cut(entry, "=")
		table = strings.TrimSpace(table)
		if !ok || table == "" {
			return nil, fmt.Errorf("EXPORT_WATERMARK_COLUMNS entry %q: want table=col1:col2", entry)
		}
		if _, dup := out[table]; dup {
			return nil, fmt.Errorf("EXPORT_WATERMARK_COLUMNS: table %q listed twice", table)
		}
		var names []string
		for _, c := range strings.Split(cols, ":") {
			c = strings.TrimSpace(c)
			if c == "" {
				return nil, fmt.Errorf("EXPORT_WATERMARK_COLUMNS entry %q: empty column name", entry)
			}
			names = append(names, c)
		}
		out[table] = names
	}
	return out, nil
}

// Specs builds the table list: each table with its entry of overrides (as
// returned by ParseWatermarkColumns), else the "*" entry, else the defaults.
func Specs(tables []string, overrides map[string][]string) []TableSpec {
	specs := make([]TableSpec, 0, len(tables))
	for _, t := range tables {
		cols := overrides[t]
		if cols == nil {
			cols = overrides["*"]
		}
		if cols == nil {
			cols = DefaultWatermarkColumns
		}
		specs = append(specs, TableSpec{Name: t, WatermarkColumns: cols})
	}
	return specs
}
