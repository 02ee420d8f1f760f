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
	"unicode/utf8"
)

// chunkReader returns at most n bytes per Read, as a network stream may:
// runes, escapes and tokens get split at every possible place.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// FuzzTransformChunks: how the raw object's bytes arrive (S3 streams them
// in arbitrary pieces) changes nothing: the same outputs, or the same
// reason and offset for an invalid object.
func FuzzTransformChunks(f *testing.F) {
	for _, s := range []string{`[]`, "\xEF\xBB\xBF[]", `{"results":[{"id":1}]}`, "[\"\xce\xb6\xce\"]", `["\u00e9\ud83e\udd16"]`, "[\"\xff\"]",
		`[{"url":"https://x/api/episode/1","name":"Zoë ζ"}]`} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(3))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil && filepath.Ext(strings.TrimSuffix(file, ".json")) == "" {
			f.Add(b, uint8(7))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		n := int(chunk%64) + 1
		whole, chunked := memSink{}, memSink{}
		rw, errW := Transform(context.Background(), "raw/character/fuzz.json", fetchedAt, bytes.NewReader(b), whole)
		rc, errC := Transform(context.Background(), "raw/character/fuzz.json", fetchedAt, chunkReader{bytes.NewReader(b), n}, chunked)
		var invW, invC *InvalidObjectError
		if errors.As(errW, &invW) != errors.As(errC, &invC) || (errW == nil) != (errC == nil) {
			t.Fatalf("in one piece: %v; in pieces of %d: %v", errW, n, errC)
		}
		if invW != nil {
			// Bytes that are not UTF-8 may be reported as malformed JSON
			// first when a read splits the bad rune (the source hands the
			// lexer a rune's first bytes before it sees the rest): the
			// object is invalid either way, only the reason differs.
			if (invW.Reason != invC.Reason || invW.Offset != invC.Offset) && utf8.Valid(b) {
				t.Fatalf("in one piece: %q at %d; in pieces of %d: %q at %d", invW.Reason, invW.Offset, n, invC.Reason, invC.Offset)
			}
			return
		}
		if rw.Records != rc.Records || rw.Rejected != rc.Rejected || rw.Bytes != rc.Bytes || len(whole) != len(chunked) {
			t.Fatalf("reports differ: %+v and, in pieces of %d, %+v", rw, n, rc)
		}
		for name, out := range whole {
			if c, ok := chunked[name]; !ok || !bytes.Equal(out.Bytes(), c.Bytes()) {
				t.Fatalf("%s differs when read in pieces of %d", name, n)
			}
		}
	})
}
