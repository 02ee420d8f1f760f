package transform

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestInvalidObjects(t *testing.T) {
	big := `["` + strings.Repeat("a", MaxValueBytes) + `"]`
	bigObject := `{"a":"` + strings.Repeat("a", MaxValueBytes/2) + `","b":"` + strings.Repeat("b", MaxValueBytes/2) + `"}`
	for _, tc := range []struct {
		name, key, in, reason string
	}{
		{"empty", "", "", "empty object"},
		{"whitespace", "", " \n\t ", "empty object"},
		{"bom only", "", "\xEF\xBB\xBF", "empty object"},
		{"truncated array", "", `[{"id":1,"name":"x"`, "truncated JSON"},
		{"truncated page", "", `{"info":{"count":1},"results":[{"id":1}`, "truncated JSON"},
		{"truncated string", "", `["abc`, "truncated JSON"},
		{"malformed", "", `[{"id":1,}]`, "malformed JSON at byte 9"},
		{"malformed later", "", `[{"id":1},{"id":2,}]`, "malformed JSON at byte 18"},
		{"garbage after", "", `[] x`, "data after the JSON value ('x' at byte 3)"},
		{"second value", "", `[] []`, "data after the JSON value"},
		{"string", "", `"hello"`, "the JSON value is a string"},
		{"number", "", `42`, "the JSON value is a number"},
		{"null", "", `null`, "the JSON value is null"},
		{"api error", "", `{"error":"There is nothing here"}`, `an API error response: {"error":"There is nothing here"}`},
		{"results object", "", `{"info":{},"results":{}}`, `"results" is an object`},
		{"results null", "", `{"info":{},"results":null}`, `"results" is null`},
		{"two results", "", `{"results":[],"results":[]}`, `two "results"`},
		{"invalid utf-8", "", "[\"ab\xFFcd\"]", "not valid UTF-8 at byte 4"},
		{"invalid utf-8 after bom", "", "\xEF\xBB\xBF[\"ab\xFFcd\"]", "not valid UTF-8 at byte 7"},
		{"overlong", "", "[\"\xC0\xAF\"]", "not valid UTF-8 at byte 2"},
		{"surrogate", "", "[\"\xED\xA0\x80\"]", "not valid UTF-8 at byte 2"},
		{"ends inside a character", "", "[\"\xE2\x80", "not valid UTF-8 at byte 2"},
		{"utf-16", "", "\xFF\xFE[\x00]\x00", "not valid UTF-8 at byte 0"},
		{"latin-1", "", "[\"caf\xE9\"]", "not valid UTF-8 at byte 5"},
		{"deep", "", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "malformed JSON at byte 10001: nesting deeper than 10000"},
		{"bad escape", "", `["\x"]`, `malformed JSON at byte 3: invalid character 'x' in string escape code`},
		{"control character", "", "[\"a\tb\"]", `malformed JSON at byte 3: invalid character '\x09' in string literal`},
		{"leading zero", "", `[01]`, `malformed JSON at byte 2: invalid character '1' after array element`},
		{"single quotes", "", `['a']`, `malformed JSON at byte 1: invalid character '\'' looking for the beginning of a value`},
		{"trailing comma", "", `[{"id":1},]`, `malformed JSON at byte 10: invalid character ']' looking for the beginning of a value`},
		{"garbage first", "", `<html>`, `malformed JSON at byte 0: invalid character '<' looking for the beginning of a value`},
		{"missing colon", "", `{"results" []}`, `malformed JSON at byte 11: invalid character '[' after object key`},
		{"huge value", "", big, "larger than 16777216 bytes"},
		{"huge single object", "", bigObject, "larger than 16777216 bytes"},
		{"no resource, empty", "raw/manual/x.json", `[]`, "cannot tell the resource: the object has no items"},
		{"no resource, items", "raw/manual/x.json", `[{"id":1},{"id":2}]`, "cannot tell the resource: no item has an API url"},
		{"no resource, not raw", "elsewhere/character/x.json", `{"id":1}`, "cannot tell the resource"},
		{"no resource, many items", "raw/manual/x.json", "[" + strings.Repeat(`{"id":1},`, maxPending) + `{"id":1}]`, "none of the first 1000 items"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "" {
				key = "raw/character/x.json"
			}
			for _, r := range []struct {
				name string
				r    io.Reader
			}{{"whole", strings.NewReader(tc.in)}, {"one byte at a time", iotest.OneByteReader(strings.NewReader(tc.in))}} {
				if len(tc.in) > 1<<20 && r.name != "whole" {
					continue
				}
				_, err := Transform(context.Background(), key, fetchedAt, r.r, memSink{})
				var inv *InvalidObjectError
				if !errors.As(err, &inv) {
					t.Fatalf("%s: err = %v, want an *InvalidObjectError", r.name, err)
				}
				if !strings.Contains(inv.Reason, tc.reason) {
					t.Errorf("%s: reason %q, want it to contain %q", r.name, inv.Reason, tc.reason)
				}
			}
		})
	}
}

// TestStreamsAcrossReadBoundaries: reads of one byte (a BOM, a multi-byte
// character, a value split anywhere) give the same bytes as whole reads.
func TestStreamsAcrossReadBoundaries(t *testing.T) {
	for _, name := range []string{"character-page", "location-page", "bom", "episode-single"} {
		in, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		whole, halves := memSink{}, memSink{}
		if _, err := Transform(context.Background(), "raw/x/y.json", fetchedAt, bytes.NewReader(in), whole); err != nil {
			t.Fatal(err)
		}
		if _, err := Transform(context.Background(), "raw/x/y.json", fetchedAt, iotest.OneByteReader(iotest.HalfReader(bytes.NewReader(in))), halves); err != nil {
			t.Fatalf("%s, one byte at a time: %v", name, err)
		}
		for out, b := range whole {
			if !bytes.Equal(b.Bytes(), halves[out].Bytes()) {
				t.Errorf("%s %s: one-byte reads wrote other bytes", name, out)
			}
		}
	}
}

// TestReadErrorsAreNotInvalid: a failing reader (a broken S3 stream, even one
// that ends early with io.ErrUnexpectedEOF) is the caller's transient
// error, never an invalid object.
func TestReadErrorsAreNotInvalid(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "character-page.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cause := range []error{errors.New("connection reset by peer"), io.ErrUnexpectedEOF} {
		r := io.MultiReader(bytes.NewReader(in[:len(in)/2]), iotest.ErrReader(cause))
		_, err := Transform(context.Background(), "raw/character/p.json", fetchedAt, r, memSink{})
		var inv *InvalidObjectError
		if errors.As(err, &inv) || !errors.Is(err, cause) {
			t.Errorf("err = %v, want %v and not an invalid object", err, cause)
		}
	}
}

type failingSink struct{ err error }

func (s failingSink) Create(string) (io.Writer, error) { return failingWriter(s), nil }

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestSinkAndContextErrorsPassThrough(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "character-page.json"))
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("s3 unavailable")
	_, err = Transform(context.Background(), "raw/character/p.json", fetchedAt, bytes.NewReader(in), failingSink{cause})
	var inv *InvalidObjectError
	if errors.As(err, &inv) || !errors.Is(err, cause) {
		t.Errorf("sink error: err = %v, want %v", err, cause)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Transform(ctx, "raw/character/p.json", fetchedAt, bytes.NewReader(in), memSink{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}

// TestKeyTellsTheResourceWhenNoItemDoes: items without a usable url under
// raw/<resource>/ are rejected against that resource.
func TestKeyTellsTheResourceWhenNoItemDoes(t *testing.T) {
	sink := memSink{}
	in := "[" + strings.Repeat(`{"id":1},`, maxPending) + `{"id":1}]`
	rep, err := Transform(context.Background(), "raw/location/x.json", fetchedAt, strings.NewReader(in), sink)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resource != Location || rep.ResourceFrom != "key" || rep.Rejected != maxPending+1 || rep.Rows["locations"] != 0 {
		t.Errorf("report %+v", rep)
	}
	if n := strings.Count(sink[Rejected].String(), "\n"); n != maxPending+1 {
		t.Errorf("%d rejected lines, want %d", n, maxPending+1)
	}
}
