package export

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseWatermarkColumns: EXPORT_WATERMARK_COLUMNS never panics the cold
// start; what it accepts names tables and columns without blanks or empty
// names, and reads the same when written back in its own syntax.
func FuzzParseWatermarkColumns(f *testing.F) {
	for _, s := range []string{"", "orders=updated_at:created_at;*=modifiedDate:createdDate", " a = b : c ; ", "orders", "=x", "a=", "a=b;a=c",
		"a=b::c", ";;;", "characters`; DROP TABLE x; --=c", "*=*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseWatermarkColumns(s)
		if err != nil {
			if !strings.Contains(err.Error(), "EXPORT_WATERMARK_COLUMNS") {
				t.Fatalf("error %q does not name the variable", err)
			}
			return
		}
		var entries []string
		for table, cols := range m {
			if table == "" || table != strings.TrimSpace(table) || strings.ContainsAny(table, "=;") || len(cols) == 0 {
				t.Fatalf("%q: table %q with columns %q", s, table, cols)
			}
			for _, c := range cols {
				if c == "" || c != strings.TrimSpace(c) || strings.ContainsAny(c, ":;") {
					t.Fatalf("%q: table %q column %q", s, table, c)
				}
			}
			entries = append(entries, table+"="+strings.Join(cols, ":"))
		}
		again, err := ParseWatermarkColumns(strings.Join(entries, ";"))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("%q parsed to %v, written back and parsed to %v (%v)", s, m, again, err)
		}
	})
}
