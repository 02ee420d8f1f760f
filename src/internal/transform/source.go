package transform

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// bom is the UTF-8 byte-order mark, accepted (and dropped) at the very start
// of an object.
var bom = []byte{0xEF, 0xBB, 0xBF}

// source is the reader under the lexer. It fails on bytes that are not
// UTF-8 (encoding/json would silently turn them into U+FFFD), and it
// remembers errors of the underlying reader, which are transient (a broken
// S3 stream), unlike what the lexer finds in the bytes.
type source struct {
	r       io.Reader
	read    int64 // bytes read from r
	tail    [utf8.UTFMax]byte
	ntail   int // bytes of an incomplete rune at the end of the last chunk
	need    int // length of that rune
	readErr error
	invalid *InvalidObjectError
}

func newSource(r io.Reader) *source { return &source{r: r} }

func (s *source) Read(p []byte) (int, error) {
	if s.invalid != nil {
		return 0, s.invalid
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.readErr = err
	}
	if bad, ok := s.validate(p[:n]); !ok {
		at := s.read + int64(bad)
		s.invalid = &InvalidObjectError{Reason: fmt.Sprintf("not valid UTF-8 at byte %d", at), Offset: at}
		return 0, s.invalid
	}
	s.read += int64(n)
	if err == io.EOF && s.ntail > 0 {
		at := s.read - int64(s.ntail)
		s.invalid = &InvalidObjectError{Reason: fmt.Sprintf("not valid UTF-8 at byte %d: the object ends inside a character", at), Offset: at}
		return 0, s.invalid
	}
	return n, err
}

// validate checks that c continues valid UTF-8, carrying an incomplete rune
// at its end over to the next chunk. On failure it returns the offset in c of
// the first bad byte (negative when the bad rune began in an earlier chunk).
func (s *source) validate(c []byte) (int, bool) {
	start := 0
	if s.ntail > 0 {
		tailStart := -s.ntail
		for s.ntail < s.need && start < len(c) {
			s.tail[s.ntail] = c[start]
			s.ntail++
			start++
		}
		if s.ntail < s.need {
			return 0, true
		}
		if !utf8.Valid(s.tail[:s.ntail]) {
			return tailStart, false
		}
		s.ntail = 0
	}
	c2 := c[start:]
	cut := len(c2)
	for i := len(c2) - 1; i >= 0 && i >= len(c2)-utf8.UTFMax+1; i-- {
		b := c2[i]
		if b < utf8.RuneSelf {
			break
		}
		if b >= 0xC0 { // a lead byte: is its rune complete?
			if n := runeLen(b); n > len(c2)-i {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(c2[:cut]) {
		for i := 0; i < cut; {
			r, size := utf8.DecodeRune(c2[i:cut])
			if r == utf8.RuneError && size <= 1 {
				return start + i, false
			}
			i += size
		}
		return start, false
	}
	if cut < len(c2) {
		s.ntail = copy(s.tail[:], c2[cut:])
		s.need = runeLen(c2[cut])
	}
	return 0, true
}

// runeLen is the length of the UTF-8 sequence that lead byte b starts (1 for
// bytes that cannot start one: utf8.Valid rejects them).
func runeLen(b byte) int {
	switch {
	case b >= 0xF0 && b < 0xF8:
		return 4
	case b >= 0xE0 && b < 0xF0:
		return 3
	case b >= 0xC0 && b < 0xE0:
		return 2
	}
	return 1
}

// errSink marks errors of the Sink's writers: they pass through Transform
// unchanged (the caller knows whether they are transient).
type errSink struct {
	name string
	err  error
}

func (e *errSink) Error() string { return fmt.Sprintf("writing %s: %v", e.name, e.err) }
func (e *errSink) Unwrap() error { return e.err }

// sinkWriter tags the errors of one Sink writer.
type sinkWriter struct {
	name string
	w    io.Writer
}

func (w sinkWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		return n, &errSink{name: w.name, err: err}
	}
	return n, nil
}
