// Package tablecsv reads and writes table rows as RFC 4180 CSV in which SQL
// NULL is distinct from the empty string.
//
// Encoding, the same in every CSV the pipeline writes (processed/ and the
// exports):
//   - UTF-8, comma separated, records end with "\n", a header row first;
//   - a field is quoted when it holds a comma, a double quote, CR or LF, or
//     when it is exactly `\N`; quotes inside are doubled;
//   - NULL is written as `\N` unquoted (MySQL's and Hive's convention);
//     the empty string is an empty field; the two-character text `\N` is
//     written quoted, `"\N"`, and reads back as text.
package tablecsv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// NullToken is the unquoted field that stands for SQL NULL.
const NullToken = `\N`

// Field is one value: text, or NULL.
type Field struct {
	Value string
	Null  bool
}

// Text returns a non-NULL field.
func Text(s string) Field { return Field{Value: s} }

// Null is the NULL field.
var Null = Field{Null: true}

// Writer writes CSV records.
type Writer struct {
	w   *bufio.Writer
	buf []byte
}

// NewWriter returns a Writer buffering into w; call Flush at the end.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10)}
}

// WriteHeader writes column names.
func (w *Writer) WriteHeader(names []string) error {
	w.buf = w.buf[:0]
	for i, n := range names {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = appendText(w.buf, n)
	}
	w.buf = append(w.buf, '\n')
	_, err := w.w.Write(w.buf)
	return err
}

// Write writes one record.
func (w *Writer) Write(fields []Field) error {
	w.buf = w.buf[:0]
	for i, f := range fields {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = AppendField(w.buf, f)
	}
	w.buf = append(w.buf, '\n')
	_, err := w.w.Write(w.buf)
	return err
}

// Flush writes any buffered data to the underlying writer.
func (w *Writer) Flush() error { return w.w.Flush() }

// AppendField appends the encoding of f to dst (without separator).
func AppendField(dst []byte, f Field) []byte {
	if f.Null {
		return append(dst, NullToken...)
	}
	return appendText(dst, f.Value)
}

func appendText(dst []byte, s string) []byte {
	if !needsQuotes(s) {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, '"')
		s = s[i+1:]
	}
	dst = append(dst, s...)
	return append(dst, '"')
}

func needsQuotes(s string) bool {
	return s == NullToken || strings.ContainsAny(s, ",\"\r\n")
}

// ParseError names the line and the problem.
type ParseError struct {
	Line int
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// Errors a Reader reports inside a ParseError.
var (
	ErrBareQuote    = errors.New(`bare " in an unquoted field`)
	ErrQuote        = errors.New(`extraneous or missing " in a quoted field`)
	ErrInvalidUTF8  = errors.New("text is not valid UTF-8")
	ErrFieldCount   = errors.New("wrong number of fields")
	ErrUnterminated = errors.New("quoted field not terminated at end of input")
)

// Reader reads CSV records written by Writer (or any RFC 4180 producer:
// CRLF line ends and a leading UTF-8 byte-order mark are accepted).
type Reader struct {
	r      *bufio.Reader
	line   int // line where the current record starts
	next   int // line number of the next line to read
	fields []Field
	text   []byte
	ends   []int
	quoted []bool
	first  bool
	end    []byte // line end of the last line read
	// FieldCount, when positive, makes Read fail on records with another count.
	FieldCount int
}

// NewReader returns a Reader.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), next: 1, first: true}
}

// Line is the line number where the last record read started.
func (r *Reader) Line() int { return r.line }

// Read returns the next record, or io.EOF. The returned slice is reused by
// the next call.
func (r *Reader) Read() ([]Field, error) {
	line, err := r.readLine()
	if err != nil {
		return nil, err
	}
	r.line = r.next - 1
	if r.first {
		r.first = false
		line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
	}
	r.text, r.ends, r.quoted = r.text[:0], r.ends[:0], r.quoted[:0]
	pos := 0
	for {
		if pos < len(line) && line[pos] == '"' {
			// quoted field, possibly spanning lines
			pos++
			for {
				i := bytes.IndexByte(line[pos:], '"')
				if i >= 0 {
					r.text = append(r.text, line[pos:pos+i]...)
					pos += i + 1
					if pos < len(line) && line[pos] == '"' {
						r.text = append(r.text, '"')
						pos++
						continue
					}
					if pos < len(line) && line[pos] != ',' {
						return nil, r.fail(ErrQuote)
					}
					break
				}
				r.text = append(r.text, line[pos:]...)
				r.text = append(r.text, r.end...) // the line end belongs to the field
				more, err := r.readLine()
				if err == io.EOF {
					return nil, r.fail(ErrUnterminated)
				}
				if err != nil {
					return nil, err
				}
				line, pos = more, 0
			}
			r.ends = append(r.ends, len(r.text))
			r.quoted = append(r.quoted, true)
		} else {
			i := bytes.IndexByte(line[pos:], ',')
			end := len(line)
			if i >= 0 {
				end = pos + i
			}
			f := line[pos:end]
			if bytes.IndexByte(f, '"') >= 0 {
				return nil, r.fail(ErrBareQuote)
			}
			r.text = append(r.text, f...)
			r.ends = append(r.ends, len(r.text))
			r.quoted = append(r.quoted, false)
			pos = end
		}
		if pos >= len(line) {
			break
		}
		pos++ // the comma
		if pos == len(line) {
			r.ends = append(r.ends, len(r.text))
			r.quoted = append(r.quoted, false)
			break
		}
	}
	if !utf8.Valid(r.text) {
		return nil, r.fail(ErrInvalidUTF8)
	}
	if r.FieldCount > 0 && len(r.ends) != r.FieldCount {
		return nil, r.fail(fmt.Errorf("%w: %d, want %d", ErrFieldCount, len(r.ends), r.FieldCount))
	}
	all := string(r.text) // one allocation per record
	r.fields = r.fields[:0]
	start := 0
	for i, end := range r.ends {
		v := all[start:end]
		if !r.quoted[i] && v == NullToken {
			r.fields = append(r.fields, Null)
		} else {
			r.fields = append(r.fields, Field{Value: v})
		}
		start = end
	}
	return r.fields, nil
}

func (r *Reader) fail(err error) error { return &ParseError{Line: r.line, Err: err} }

// readLine returns the next line without its line end; io.EOF when none is left.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = r.r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	r.next++
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
		if n > 0 && line[n-1] == '\r' {
			n--
		}
	}
	r.end = line[n:]
	return line[:n], nil
}
