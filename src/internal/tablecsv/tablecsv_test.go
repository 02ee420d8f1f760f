package tablecsv

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	rows := [][]Field{
		{Text("1"), Text("Rick Sanchez"), Text(""), Null},
		{Text("2"), Text(`say "hi", then
leave`), Text(`\N`), Text("=cmd|' /C calc'!A0")},
		{Text("3"), Text("’ ζ Á"), Null, Text("a\r\nb")},
		{Text(""), Null, Text(" "), Text(",")},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader([]string{"id", "name", "type", "note"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	// Any RFC 4180 reader sees the same text (NULL shows as \N).
	std, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv cannot read our output: %v\n%s", err, buf.String())
	}
	if len(std) != len(rows)+1 || std[2][2] != `\N` || std[1][3] != `\N` {
		t.Errorf("encoding/csv read %q", std)
	}

	r := NewReader(&buf)
	header, err := r.Read()
	if err != nil || len(header) != 4 || header[0].Value != "id" {
		t.Fatalf("header = %v, %v", header, err)
	}
	for i, want := range rows {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("row %d = %#v, want %#v", i, got, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("after last row: %v, want io.EOF", err)
	}
}

func TestReaderAcceptsCRLFAndBOM(t *testing.T) {
	r := NewReader(strings.NewReader("\xEF\xBB\xBFid,name\r\n1,\"a\r\nb\"\r\n2,\\N"))
	var got [][]Field
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, append([]Field(nil), rec...))
	}
	want := [][]Field{{Text("id"), Text("name")}, {Text("1"), Text("a\r\nb")}, {Text("2"), Null}} // line ends inside quotes are kept as written
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}

func TestReaderErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name  string
		input string
		count int
		want  error
		line  int
	}{
		{"bare quote", "a,b\n1,x\"y\n", 0, ErrBareQuote, 2},
		{"text after quote", "a\n\"x\"y\n", 0, ErrQuote, 2},
		{"unterminated", "a\n1\n\"open\n", 0, ErrUnterminated, 3},
		{"invalid utf8", "a\n\xff\xfe\n", 0, ErrInvalidUTF8, 2},
		{"field count", "a,b\n1,2\n1,2,3\n", 2, ErrFieldCount, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.input))
			r.FieldCount = tt.count
			var err error
			for err == nil {
				_, err = r.Read()
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if pe.Line != tt.line {
				t.Errorf("line = %d, want %d", pe.Line, tt.line)
			}
		})
	}
}

func TestTrailingEmptyField(t *testing.T) {
	r := NewReader(strings.NewReader("a,\n"))
	got, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Field{Text("a"), Text("")}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}
