package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzScanner: the lexer's scanner accepts exactly what json.Valid does.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-2.5e+3,true,false,null,"x\u00e9\n"]}`, `[]`, `{}`, `0`, `-0.0E-0`, `"\ud800"`, `[01]`, `[1.]`,
		`{"a" : 1 , "b":[ ]}`, `[1,]`, `{"a":1,}`, "\"\x01\"", `["\x"]`, `[tru]`, `nul`, `1e`, `-`, `.5`, ` [ "a" ] `,
	} {
		f.Add([]byte(s))
	}
	addTestdata(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

// FuzzTransform: any input either fails with a reason or gives outputs that
// hold to the CSV contract; it never succeeds on bytes that are not one
// UTF-8 JSON value (a BOM aside).
func FuzzTransform(f *testing.F) {
	for _, s := range []string{`[]`, `{}`, `{"results":[{"id":1}]}`, `[{"url":"https://x/api/episode/1"}]`, "\xEF\xBB\xBF[]", `{"error":"x"}`} {
		f.Add([]byte(s))
	}
	addTestdata(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		sink := memSink{}
		rep, err := Transform(context.Background(), "raw/character/fuzz.json", fetchedAt, bytes.NewReader(b), sink)
		var inv *InvalidObjectError
		if err != nil {
			if !errors.As(err, &inv) || inv.Reason == "" {
				t.Fatalf("err = %v, want an *InvalidObjectError with a reason", err)
			}
			return
		}
		body := bytes.TrimPrefix(b, bom)
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("Transform accepted %q", b)
		}
		if rep.Bytes != int64(len(b)) {
			t.Errorf("read %d bytes of %d", rep.Bytes, len(b))
		}
		for name, out := range sink {
			if name == Rejected {
				for _, line := range bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n")) {
					if !json.Valid(line) {
						t.Errorf("rejected line %q is not JSON", line)
					}
				}
				continue
			}
			if rows := readCSV(t, out.String(), name); len(rows) != rep.Rows[name] {
				t.Errorf("%s: %d rows, report says %d", name, len(rows), rep.Rows[name])
			}
		}
	})
}

func addTestdata(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		if filepath.Ext(file[:len(file)-len(".json")]) != "" { // *.golden.json, *.report...
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
