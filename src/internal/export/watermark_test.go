package export

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

func sampleWatermark() Watermark {
	return Watermark{
		Phase:      PhaseIncremental,
		Table:      "orders",
		Columns:    []string{"modifiedDate", "createdDate"},
		KeyColumns: []string{"id", "line_no"},
		Timestamp:  time.Date(2026, 11, 22, 7, 59, 30, 123456000, time.UTC),
		Key:        []json.RawMessage{json.RawMessage(`42`), json.RawMessage(`"a,b \"c\""`)},
		Rows:       1000,
		Files:      []string{"exports/orders/csv/orders_data_20261122_080000.csv", "exports/orders/parquet/orders_data_20261122_080000.parquet"},
		RunID:      "20261122T080000Z-0a1b2c3d",
		Complete:   true,
		UpdatedAt:  time.Date(2026, 11, 22, 8, 0, 3, 0, time.UTC),
	}
}

func TestWatermarkRoundTrip(t *testing.T) {
	w := sampleWatermark()
	b := w.Format()
	got, err := ParseWatermark(b)
	if err != nil {
		t.Fatalf("ParseWatermark(Format()) = %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, w)
	}
	want := `version=1
phase=incremental
table=orders
columns=["modifiedDate","createdDate"]
key_columns=["id","line_no"]
timestamp=2026-11-22T07:59:30.123456Z
key=[42,"a,b \"c\""]
rows=1000
files=["exports/orders/csv/orders_data_20261122_080000.csv","exports/orders/parquet/orders_data_20261122_080000.parquet"]
run_id=20261122T080000Z-0a1b2c3d
complete=true
updated_at=2026-11-22T08:00:03.000000Z
`
	if !strings.HasSuffix(string(b), want) {
		t.Errorf("Format =\n%s\nwant it to end with\n%s", b, want)
	}
	if !strings.HasPrefix(string(b), "# ") {
		t.Errorf("Format should start with an explanatory comment")
	}
}

func TestParseWatermarkRejects(t *testing.T) {
	good := string(sampleWatermark().Format())
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("sample lacks %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `field "version" missing`},
		{"only comments", "# nothing\n\n", `field "version" missing`},
		{"missing field", replace("rows=1000\n", ""), `field "rows" missing`},
		{"repeated field", good + "rows=1\n", `field "rows" repeated`},
		{"unknown field", good + "colour=blue\n", `unknown field "colour"`},
		{"no equals", good + "garbage\n", "want key=value"},
		{"version 2", replace("version=1", "version=2"), "unsupported version"},
		{"unknown phase", replace("phase=incremental", "phase=done"), "not snapshot or incremental"},
		{"local time", replace("timestamp=2026-11-22T07:59:30.123456Z", "timestamp=2026-11-22T08:59:30.123456+01:00"), "not a UTC instant"},
		{"milliseconds", replace("timestamp=2026-11-22T07:59:30.123456Z", "timestamp=2026-11-22T07:59:30.123Z"), "not a UTC instant"},
		{"bad date", replace("timestamp=2026-11-22T07:59:30.123456Z", "timestamp=2026-13-22T07:59:30.123456Z"), "not a UTC instant"},
		{"key not JSON", replace(`key=[42,"a,b \"c\""]`, "key=42"), "key"},
		{"key padded JSON", replace(`key=[42,"a,b \"c\""]`, `key=[42, "a,b \"c\""]`), "canonical"},
		{"key float", replace(`key=[42,"a,b \"c\""]`, `key=[4.2,"x"]`), "not a 64-bit integer"},
		{"key object", replace(`key=[42,"a,b \"c\""]`, `key=[{},"x"]`), "integer or a string"},
		{"key null", replace(`key=[42,"a,b \"c\""]`, `key=[null,"x"]`), "integer or a string"},
		{"key too long", replace(`key=[42,"a,b \"c\""]`, `key=[1,"x",3]`), "3 values for 2 key columns"},
		{"key empty", replace(`key=[42,"a,b \"c\""]`, `key=[]`), "at least one value"},
		{"key huge", replace(`key=[42,"a,b \"c\""]`, `key=[99999999999999999999,"x"]`), "not a 64-bit integer"},
		{"negative rows", replace("rows=1000", "rows=-1"), "not a non-negative integer"},
		{"padded rows", replace("rows=1000", "rows=01000"), "not a non-negative integer"},
		{"complete yes", replace("complete=true", "complete=yes"), "not true or false"},
		{"empty table", replace("table=orders", "table="), "want a name"},
		{"padded table", replace("table=orders", "table= orders"), "want a name"},
		{"no columns", replace(`columns=["modifiedDate","createdDate"]`, `columns=[]`), "at least one name"},
		{"files not array", replace(`files=["`, `files={"`), "files"},
		{"empty run id", replace("run_id=20261122T080000Z-0a1b2c3d", "run_id="), "empty or padded"},
		{"CR line ends", strings.ReplaceAll(good, "\n", "\r\n"), "control character"},
		{"NUL", replace("table=orders", "table=ord\x00ers"), "control character"},
		{"invalid UTF-8", replace("table=orders", "table=ord\xffers"), "not valid UTF-8"},
		{"too large", good + "#" + strings.Repeat("x", maxWatermarkSize) + "\n", "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWatermark([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseWatermark accepted\n%s", tt.in)
			}
			if !errors.Is(err, ErrWatermarkSyntax) {
				t.Errorf("error %v does not wrap ErrWatermarkSyntax", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseWatermarkAcceptsHandEdits(t *testing.T) {
	// Comments and blank lines anywhere, fields in any order.
	in := "# edited by hand\n\nkey=[7]\ntable=t\nversion=1\nphase=snapshot\ncolumns=[\"createdDate\"]\nkey_columns=[\"id\"]\n" +
		"timestamp=2020-01-01T00:00:00.000000Z\n# note\nrows=0\nfiles=[]\nrun_id=manual\ncomplete=false\nupdated_at=2020-01-01T00:00:00.000000Z"
	w, err := ParseWatermark([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if w.Table != "t" || string(w.Key[0]) != "7" || w.Complete || len(w.Files) != 0 {
		t.Fatalf("parsed %+v", w)
	}
}

// FuzzParseWatermark: ParseWatermark never panics, and whatever it accepts
// formats to a file it parses back to the same value (the strict parser
// and the writer agree).
func FuzzParseWatermark(f *testing.F) {
	f.Add(sampleWatermark().Format())
	f.Add([]byte("version=1\n"))
	f.Add([]byte("key=[1,\"x\"]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ParseWatermark(b)
		if err != nil {
			if !errors.Is(err, ErrWatermarkSyntax) {
				t.Fatalf("error %v does not wrap ErrWatermarkSyntax", err)
			}
			return
		}
		again, err := ParseWatermark(w.Format())
		if err != nil {
			t.Fatalf("accepted input formats to an unparseable file: %v\ninput:\n%q\nformatted:\n%s", err, b, w.Format())
		}
		if !reflect.DeepEqual(again, w) {
			t.Fatalf("round trip changed the value\n got %+v\nwant %+v", again, w)
		}
	})
}

// The committed seed corpus must hold real, accepted files too, or the
// fuzzer would only ever explore the error paths.
func TestFuzzCorpusValidEntriesParse(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzParseWatermark/valid_*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid_* corpus entries: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lit := strings.TrimSuffix(strings.TrimPrefix(string(b), "go test fuzz v1\n[]byte("), ")\n")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := ParseWatermark([]byte(s)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestAppendMicrosMatchesTimeFormat(t *testing.T) {
	layouts := []string{"2006-01-02T15:04:05Z", "2006-01-02T15:04:05.0Z", "2006-01-02T15:04:05.00Z", "2006-01-02T15:04:05.000Z",
		"2006-01-02T15:04:05.0000Z", "2006-01-02T15:04:05.00000Z", "2006-01-02T15:04:05.000000Z"}
	for _, tm := range []time.Time{
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2024, 2, 29, 7, 8, 9, 120000, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Date(1600, 3, 1, 12, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		for frac, layout := range layouts {
			got := string(appendMicros(nil, tm.UnixMicro(), frac, nil))
			if want := tm.Format(layout); got != want && tm.Year() <= 9999 {
				t.Errorf("appendMicros(%v, %d) = %s, want %s", tm, frac, got, want)
			}
			// The same from a cache that holds the day, another day, or none.
			for _, other := range []time.Time{tm.Add(-time.Second), tm.Add(48 * time.Hour), tm} {
				var c dayCache
				appendMicros(nil, other.UnixMicro(), frac, &c)
				if cached := string(appendMicros(nil, tm.UnixMicro(), frac, &c)); cached != got {
					t.Errorf("appendMicros(%v, %d) after %v = %s, want %s", tm, frac, other, cached, got)
				}
			}
		}
		days := floorDiv(tm.Unix(), 86400)
		if got, want := string(appendDays(nil, days)), tm.Format("2006-01-02"); got != want {
			t.Errorf("appendDays(%v) = %s, want %s", tm, got, want)
		}
		var c dayCache
		for _, d := range []int64{days, days + 1, days} {
			if got, want := string(c.appendDays(nil, d)), string(appendDays(nil, d)); got != want {
				t.Errorf("cached appendDays(%d) = %s, want %s", d, got, want)
			}
		}
	}
}

func TestAppendDecimalMatchesMySQL(t *testing.T) {
	// MySQL's rendering: |n| with at least scale+1 digits, the point before
	// the last scale, a minus sign for negatives.
	want := func(n int64, scale int) string {
		digits := strconv.FormatInt(n, 10)
		neg := n < 0
		if neg {
			digits = digits[1:]
		}
		for len(digits) <= scale {
			digits = "0" + digits
		}
		if scale > 0 {
			digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
		}
		if neg {
			digits = "-" + digits
		}
		return digits
	}
	e := newEncoder(nil, 0)
	for _, p := range []struct{ precision, scale int }{{9, 0}, {9, 2}, {9, 9}, {18, 0}, {18, 4}, {18, 18}} {
		c := newColumn("d", "decimal", "decimal", false, p.precision, p.scale, 0)
		for _, n := range []int64{0, 1, -1, 5, -5, 12, 123456789, -123456789, 999999999999999999, -999999999999999999} {
			if p.precision <= 9 && (n > 999999999 || n < -999999999) {
				continue
			}
			v := parquet.Int64Value(n)
			if c.physical == parquet.Int32 {
				v = parquet.Int32Value(int32(n))
			}
			if got := string(e.appendDecimal(nil, c, v)); got != want(n, p.scale) {
				t.Errorf("DECIMAL(%d,%d) %d = %s, want %s", p.precision, p.scale, n, got, want(n, p.scale))
			}
		}
	}
}
