package transform

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// The object is read by a lexer: a buffer over the source that hands out
// one complete JSON value at a time, checked by a validating scanner in a
// single pass (encoding/json's Decoder scans every value twice to decode it
// into a json.RawMessage). The scanner accepts exactly RFC 8259 JSON, as
// json.Valid does (FuzzScanner checks it); UTF-8 is checked by source.

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

// errMore: the value continues past the end of the buffer.
var errMore = errors.New("need more input")

// scanError is a syntax error at an offset of the scanned bytes.
type scanError struct {
	off int
	msg string
}

func (e *scanError) Error() string { return e.msg }

// scanner validates one JSON value in b.
type scanner struct {
	b     []byte
	depth int
}

func (s *scanner) fail(i int, context string) error {
	if i >= len(s.b) {
		return errMore
	}
	return &scanError{off: i, msg: fmt.Sprintf("invalid character %s %s", quoteChar(s.b[i]), context)}
}

func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c >= 0x20 && c < 0x7F:
		return "'" + string(rune(c)) + "'"
	}
	return fmt.Sprintf(`'\x%02x'`, c)
}

func (s *scanner) space(i int) int {
	for i < len(s.b) {
		switch s.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// value returns the index just past the value starting at b[i].
func (s *scanner) value(i int) (int, error) {
	if i >= len(s.b) {
		return i, errMore
	}
	switch c := s.b[i]; {
	case c == '"':
		return s.str(i)
	case c == '{':
		return s.object(i)
	case c == '[':
		return s.array(i)
	case c == '-' || '0' <= c && c <= '9':
		return s.number(i)
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	}
	return i, s.fail(i, "looking for the beginning of a value")
}

func (s *scanner) object(i int) (int, error) {
	if s.depth++; s.depth > maxDepth {
		return i, &scanError{off: i, msg: fmt.Sprintf("nesting deeper than %d", maxDepth)}
	}
	i = s.space(i + 1)
	if i < len(s.b) && s.b[i] == '}' {
		s.depth--
		return i + 1, nil
	}
	for {
		if i >= len(s.b) {
			return i, errMore
		}
		if s.b[i] != '"' {
			return i, s.fail(i, "looking for the beginning of an object key string")
		}
		var err error
		if i, err = s.str(i); err != nil {
			return i, err
		}
		i = s.space(i)
		if i >= len(s.b) || s.b[i] != ':' {
			return i, s.fail(i, "after object key")
		}
		if i, err = s.value(s.space(i + 1)); err != nil {
			return i, err
		}
		i = s.space(i)
		if i >= len(s.b) {
			return i, errMore
		}
		switch s.b[i] {
		case ',':
			i = s.space(i + 1)
		case '}':
			s.depth--
			return i + 1, nil
		default:
			return i, s.fail(i, "after object key:value pair")
		}
	}
}

func (s *scanner) array(i int) (int, error) {
	if s.depth++; s.depth > maxDepth {
		return i, &scanError{off: i, msg: fmt.Sprintf("nesting deeper than %d", maxDepth)}
	}
	i = s.space(i + 1)
	if i < len(s.b) && s.b[i] == ']' {
		s.depth--
		return i + 1, nil
	}
	for {
		var err error
		if i, err = s.value(i); err != nil {
			return i, err
		}
		i = s.space(i)
		if i >= len(s.b) {
			return i, errMore
		}
		switch s.b[i] {
		case ',':
			i = s.space(i + 1)
		case ']':
			s.depth--
			return i + 1, nil
		default:
			return i, s.fail(i, "after array element")
		}
	}
}

// plain marks the bytes a string holds as they are.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *scanner) str(i int) (int, error) {
	i++
	for {
		for i < len(s.b) && plain[s.b[i]] {
			i++
		}
		if i >= len(s.b) {
			return i, errMore
		}
		switch c := s.b[i]; c {
		case '"':
			return i + 1, nil
		case '\\':
			if i+1 >= len(s.b) {
				return i, errMore
			}
			switch s.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(s.b) {
						return k, errMore
					}
					if !isHex(s.b[k]) {
						return k, s.fail(k, "in \\u hexadecimal character escape")
					}
				}
				i += 6
			default:
				return i + 1, s.fail(i+1, "in string escape code")
			}
		default:
			return i, s.fail(i, "in string literal")
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. A number
// ending at the end of the buffer may continue: errMore.
func (s *scanner) number(i int) (int, error) {
	if s.b[i] == '-' {
		i++
	}
	if i >= len(s.b) {
		return i, errMore
	}
	switch {
	case s.b[i] == '0':
		i++
	case '1' <= s.b[i] && s.b[i] <= '9':
		for i < len(s.b) && isDigit(s.b[i]) {
			i++
		}
	default:
		return i, s.fail(i, "in numeric literal")
	}
	if i < len(s.b) && s.b[i] == '.' {
		i++
		if i >= len(s.b) {
			return i, errMore
		}
		if !isDigit(s.b[i]) {
			return i, s.fail(i, "after decimal point in numeric literal")
		}
		for i < len(s.b) && isDigit(s.b[i]) {
			i++
		}
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			i++
		}
		if i >= len(s.b) {
			return i, errMore
		}
		if !isDigit(s.b[i]) {
			return i, s.fail(i, "in exponent of numeric literal")
		}
		for i < len(s.b) && isDigit(s.b[i]) {
			i++
		}
	}
	if i >= len(s.b) {
		return i, errMore
	}
	return i, nil
}

func (s *scanner) literal(i int, word string) (int, error) {
	for k := 0; k < len(word); k++ {
		if i+k >= len(s.b) {
			return i + k, errMore
		}
		if s.b[i+k] != word[k] {
			return i + k, s.fail(i+k, "in literal "+word+" (expecting "+quoteChar(word[k])+")")
		}
	}
	return i + len(word), nil
}

// validJSON reports whether b is one JSON value (with surrounding space),
// like json.Valid, using the scanner.
func validJSON(b []byte) bool {
	// A number may end at the end of b: give it a delimiter.
	s := scanner{b: append(b[:len(b):len(b)], ' ')}
	end, err := s.value(s.space(0))
	return err == nil && s.space(end) == len(s.b)
}

// lexer hands out the JSON values and delimiters of a stream.
type lexer struct {
	r    io.Reader
	buf  []byte
	pos  int   // next byte of buf to read
	base int64 // stream offset of buf[0]
	eof  bool
	max  int // largest value held
	err  error
}

func newLexer(r io.Reader, max int) *lexer {
	return &lexer{r: r, buf: make([]byte, 0, 64<<10), max: max}
}

func (l *lexer) tooLarge() error {
	return &InvalidObjectError{
		Reason: fmt.Sprintf("a JSON value starting at byte %d is larger than %d bytes", l.offset(), l.max),
		Offset: l.offset(),
	}
}

// skipBOM drops a UTF-8 byte-order mark at the start of the input.
func (l *lexer) skipBOM() {
	for len(l.buf) < len(bom) && l.fill() {
	}
	if bytes.HasPrefix(l.buf, bom) {
		l.pos = len(bom)
	}
}

// offset is the stream offset of the next byte.
func (l *lexer) offset() int64 { return l.base + int64(l.pos) }

// fill reads more input, keeping buf[pos:]. It returns false at the end of
// the input or on a read error (l.err).
func (l *lexer) fill() bool {
	if l.eof || l.err != nil {
		return false
	}
	if l.pos > 0 {
		n := copy(l.buf, l.buf[l.pos:])
		l.base += int64(l.pos)
		l.buf, l.pos = l.buf[:n], 0
	}
	if len(l.buf) == cap(l.buf) {
		limit := l.max + 64<<10
		if cap(l.buf) >= limit {
			l.err = l.tooLarge()
			return false
		}
		grown := make([]byte, len(l.buf), min(2*cap(l.buf), limit))
		copy(grown, l.buf)
		l.buf = grown
	}
	n, err := l.r.Read(l.buf[len(l.buf):cap(l.buf)])
	l.buf = l.buf[:len(l.buf)+n]
	if err == io.EOF {
		l.eof = true
	} else if err != nil {
		l.err = err
	}
	return n > 0 || (!l.eof && l.err == nil)
}

// peek returns the next byte that is not space, without consuming it;
// ok is false at the end of the input (or on l.err).
func (l *lexer) peek() (byte, bool) {
	for {
		for l.pos < len(l.buf) {
			switch c := l.buf[l.pos]; c {
			case ' ', '\t', '\n', '\r':
				l.pos++
			default:
				return c, true
			}
		}
		if !l.fill() {
			return 0, false
		}
	}
}

// next consumes the next byte that is not space and reports whether it is c.
func (l *lexer) next(c byte) (bool, error) {
	got, ok := l.peek()
	if !ok {
		return false, l.stop()
	}
	if got != c {
		return false, nil
	}
	l.pos++
	return true, nil
}

// stop is the error when the input ends (or fails) where more is needed.
func (l *lexer) stop() error {
	if l.err != nil {
		return l.err
	}
	return &InvalidObjectError{
		Reason: fmt.Sprintf("truncated JSON: the object ends at byte %d inside a value", l.offset()),
		Offset: l.offset(),
	}
}

// syntax is the error for a byte that does not fit where it is.
func (l *lexer) syntax(off int64, msg string) error {
	return &InvalidObjectError{Reason: fmt.Sprintf("malformed JSON at byte %d: %s", off, msg), Offset: off}
}

// unexpected is the syntax error for the byte at the current position.
func (l *lexer) unexpected(context string) error {
	c, ok := l.peek()
	if !ok {
		return l.stop()
	}
	return l.syntax(l.offset(), "invalid character "+quoteChar(c)+" "+context)
}

// value consumes the next JSON value and returns its bytes, valid until the
// next call.
func (l *lexer) value() ([]byte, error) {
	if _, ok := l.peek(); !ok {
		return nil, l.stop()
	}
	for {
		s := scanner{b: l.buf[l.pos:]}
		end, err := s.value(0)
		if err == nil {
			if end > l.max {
				return nil, l.tooLarge()
			}
			v := l.buf[l.pos : l.pos+end]
			l.pos += end
			return v, nil
		}
		if err != errMore {
			var se *scanError
			errors.As(err, &se)
			return nil, l.syntax(l.offset()+int64(se.off), se.msg)
		}
		if len(l.buf)-l.pos > l.max {
			return nil, l.tooLarge()
		}
		if !l.fill() {
			if l.err != nil {
				return nil, l.err
			}
			l.pos = len(l.buf)
			return nil, l.stop()
		}
	}
}
