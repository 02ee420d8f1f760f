package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeLayout is how the watermark file writes instants: RFC 3339, UTC,
// always six fractional digits.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// maxWatermarkSize bounds what ParseWatermark accepts; a real file is a few
// hundred bytes.
const maxWatermarkSize = 64 << 10

// Watermark is a table's export position and a record of the run that
// stored it. It is the content of bucket.WatermarkKey(prefix, table):
// <prefix><table>/csv/last_extract.txt.
//
// In the incremental phase the position is (Timestamp, Key): every row
// whose position (COALESCE(watermark columns…), primary key…) is at or
// before it has been exported. In the snapshot phase every row with a
// timestamp at or before Timestamp and a key at or before Key has. Key holds one JSON value per primary-key column: a number for
// integer columns, a string (the MySQL literal) for every other type.
type Watermark struct {
	// Phase is PhaseSnapshot while a table's first export is under way
	// (Timestamp is then the snapshot's fixed upper bound and Key the last
	// primary key exported, in key order), PhaseIncremental after.
	Phase      string
	Table      string
	Columns    []string // watermark columns, COALESCE order
	KeyColumns []string // primary key columns
	Timestamp  time.Time
	Key        []json.RawMessage

	Rows      int64    // rows the run exported
	Files     []string // object keys the run stored
	RunID     string
	Complete  bool // false: the run stopped at its deadline with rows still due
	UpdatedAt time.Time
}

// Watermark phases.
const (
	PhaseSnapshot    = "snapshot"
	PhaseIncremental = "incremental"
)

// watermarkFields lists the keys of the file in the order Format writes them.
var watermarkFields = []string{
	"version", "phase", "table", "columns", "key_columns", "timestamp", "key",
	"rows", "files", "run_id", "complete", "updated_at",
}

// Format renders w as the watermark file: "#" comment lines, then one
// key=value line per field, UTF-8, "\n" line ends.
func (w Watermark) Format() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Export watermark of table %s: every row at or before (timestamp, key) has been exported.\n", oneLine(w.Table))
	b.WriteString("# Written by the exporter after the run's files were stored. Deleting this file makes the next run export the whole table.\n")
	line := func(k, v string) { b.WriteString(k + "=" + v + "\n") }
	line("version", "1")
	line("phase", w.Phase)
	line("table", w.Table)
	line("columns", jsonText(w.Columns))
	line("key_columns", jsonText(w.KeyColumns))
	line("timestamp", w.Timestamp.UTC().Format(TimeLayout))
	line("key", jsonText(w.Key))
	line("rows", strconv.FormatInt(w.Rows, 10))
	line("files", jsonText(nonNil(w.Files)))
	line("run_id", w.RunID)
	line("complete", strconv.FormatBool(w.Complete))
	line("updated_at", w.UpdatedAt.UTC().Format(TimeLayout))
	return b.Bytes()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings and raw JSON values validated by ParseWatermark or the exporter
	}
	return string(b)
}

// ErrWatermarkSyntax is wrapped by every error ParseWatermark returns.
var ErrWatermarkSyntax = errors.New("invalid watermark file")

// ParseWatermark reads a watermark file strictly: every field exactly once,
// no unknown field, canonical values only (so that Format(ParseWatermark(b))
// reproduces b's fields). Lines starting with "#" and blank lines are
// ignored. A file the exporter cannot trust is an error, never a guess: the
// table's export stops until someone fixes or deletes the file.
func ParseWatermark(b []byte) (Watermark, error) {
	var w Watermark
	fail := func(line int, format string, args ...any) (Watermark, error) {
		msg := fmt.Sprintf(format, args...)
		if line > 0 {
			return Watermark{}, fmt.Errorf("%w: line %d: %s", ErrWatermarkSyntax, line, msg)
		}
		return Watermark{}, fmt.Errorf("%w: %s", ErrWatermarkSyntax, msg)
	}
	if len(b) > maxWatermarkSize {
		return fail(0, "larger than %d bytes", maxWatermarkSize)
	}
	if !utf8.Valid(b) {
		return fail(0, "not valid UTF-8")
	}
	seen := map[string]bool{}
	lines := strings.Split(string(b), "\n")
	for i, text := range lines {
		n := i + 1
		if text == "" || text[0] == '#' {
			continue
		}
		if strings.ContainsFunc(text, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fail(n, "control character")
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			return fail(n, "want key=value")
		}
		if !slices.Contains(watermarkFields, k) {
			return fail(n, "unknown field %q", k)
		}
		if seen[k] {
			return fail(n, "field %q repeated", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "version":
			if v != "1" {
				err = fmt.Errorf("unsupported version %q (want 1)", v)
			}
		case "phase":
			if v != PhaseSnapshot && v != PhaseIncremental {
				err = fmt.Errorf("%q is not %s or %s", v, PhaseSnapshot, PhaseIncremental)
			}
			w.Phase = v
		case "table":
			w.Table, err = parseName(v)
		case "columns":
			w.Columns, err = parseNames(v)
		case "key_columns":
			w.KeyColumns, err = parseNames(v)
		case "timestamp":
			w.Timestamp, err = parseInstant(v)
		case "key":
			w.Key, err = parseKey(v)
		case "rows":
			w.Rows, err = parseCount(v)
		case "files":
			w.Files, err = parseFiles(v)
		case "run_id":
			if v == "" || strings.TrimSpace(v) != v {
				err = errors.New("empty or padded")
			}
			w.RunID = v
		case "complete":
			switch v {
			case "true":
				w.Complete = true
			case "false":
			default:
				err = fmt.Errorf("%q is not true or false", v)
			}
		case "updated_at":
			w.UpdatedAt, err = parseInstant(v)
		}
		if err != nil {
			return fail(n, "%s: %v", k, err)
		}
	}
	for _, k := range watermarkFields {
		if !seen[k] {
			return fail(0, "field %q missing", k)
		}
	}
	if len(w.Key) != len(w.KeyColumns) {
		return fail(0, "key has %d values for %d key columns", len(w.Key), len(w.KeyColumns))
	}
	return w, nil
}

func parseName(v string) (string, error) {
	if v == "" || strings.TrimSpace(v) != v || utf8.RuneCountInString(v) > 64 {
		return "", errors.New("want a name of 1 to 64 characters without surrounding blanks")
	}
	return v, nil
}

// strictJSON decodes v into dst and rejects anything but one canonical JSON
// value: the re-encoding must be identical to the input.
func strictJSON(v string, dst any) error {
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return errors.New("not valid JSON")
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	re, err := json.Marshal(dst)
	if err != nil || string(re) != v {
		return errors.New("not in canonical form (compact JSON, as the exporter writes it)")
	}
	return nil
}

func parseNames(v string) ([]string, error) {
	var names []string
	if err := strictJSON(v, &names); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("want at least one name")
	}
	for _, n := range names {
		if _, err := parseName(n); err != nil {
			return nil, fmt.Errorf("%q: %v", n, err)
		}
	}
	return names, nil
}

func parseFiles(v string) ([]string, error) {
	var files []string
	if err := strictJSON(v, &files); err != nil {
		return nil, err
	}
	if files == nil {
		return nil, errors.New("want a JSON array")
	}
	for _, f := range files {
		if f == "" {
			return nil, errors.New("empty object key")
		}
	}
	return files, nil
}

func parseInstant(v string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, v)
	if err != nil || t.Format(TimeLayout) != v {
		return time.Time{}, fmt.Errorf("%q is not a UTC instant like 2006-01-02T15:04:05.000000Z", v)
	}
	return t, nil
}

func parseCount(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
		return 0, fmt.Errorf("%q is not a non-negative integer", v)
	}
	return n, nil
}

// parseKey accepts a non-empty JSON array of integers and strings.
func parseKey(v string) ([]json.RawMessage, error) {
	var vals []any
	if err := strictJSON(v, &vals); err != nil {
		return nil, err
	}
	if len(vals) == 0 {
		return nil, errors.New("want at least one value")
	}
	key := make([]json.RawMessage, len(vals))
	for i, x := range vals {
		switch x := x.(type) {
		case string:
		case json.Number:
			if _, err := strconv.ParseInt(x.String(), 10, 64); err != nil {
				if _, err := strconv.ParseUint(x.String(), 10, 64); err != nil {
					return nil, fmt.Errorf("value %d: %s is not a 64-bit integer", i+1, x)
				}
			}
		default:
			return nil, fmt.Errorf("value %d: want an integer or a string", i+1)
		}
		b, _ := json.Marshal(x)
		key[i] = b
	}
	return key, nil
}
