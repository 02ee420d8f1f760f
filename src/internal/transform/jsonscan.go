package transform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// This file walks JSON values that the json.Decoder has already checked for
// syntax (every record arrives as a json.RawMessage). It matches keys
// exactly (encoding/json would match "ID" to "id") and sees duplicate keys,
// and it does so without allocating per field.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return i
}

// members calls fn for each member of the object b (valid JSON), with the
// key's raw bytes (quotes included) and the value's bytes.
func members(b []byte, fn func(key, val []byte)) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		ks := i
		i = skipString(b, i)
		key := b[ks:i]
		i = skipSpace(b, i)
		i = skipSpace(b, i+1) // ':'
		vs := i
		i = skipValue(b, i)
		fn(key, b[vs:i])
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
}

// elements calls fn for each element of the array b (valid JSON).
func elements(b []byte, fn func(i int, val []byte)) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return
	}
	i = skipSpace(b, i+1)
	for n := 0; i < len(b) && b[i] != ']'; n++ {
		vs := i
		i = skipValue(b, i)
		fn(n, b[vs:i])
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
}

// kind names the JSON type of v, for error messages.
func kind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// unquote decodes the JSON string v (quotes included).
func unquote(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// keyIs reports whether the raw key (quotes included) is name, escapes
// decoded.
func keyIs(raw []byte, name string) bool {
	if len(raw) == len(name)+2 && string(raw[1:len(raw)-1]) == name {
		return true
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	s, ok := unquote(raw)
	return ok && s == name
}

// errField collects the problems of one record, in field order, and reads
// its strings.
type errField struct {
	msgs []string
	raw  []byte // the record
	rs   string // string(raw): its strings are substrings of this one
}

// text decodes the JSON string v, a subslice of e.raw: without escapes, as a
// substring of e.rs (no allocation).
func (e *errField) text(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if e.rs != "" && bytes.IndexByte(v, '\\') < 0 {
		start := cap(e.raw) - cap(v) // v is e.raw[start:...]
		if start >= 0 && start+len(v) <= len(e.rs) {
			return e.rs[start+1 : start+len(v)-1], true
		}
	}
	return unquote(v)
}

func (e *errField) add(field, format string, args ...any) {
	e.msgs = append(e.msgs, field+": "+fmt.Sprintf(format, args...))
}

func (e *errField) ok() bool { return len(e.msgs) == 0 }

// str reads a required string field.
func (e *errField) str(field string, v []byte) string {
	if v == nil {
		e.add(field, "missing")
		return ""
	}
	s, ok := e.text(v)
	if !ok {
		e.add(field, "must be a string, got %s", kind(v))
	}
	// Every text column holds warehouse.TextMaxChars characters: a longer
	// value is this record's problem, not its whole file's at load time.
	if len(s) > warehouse.TextMaxChars {
		if n := utf8.RuneCountInString(s); n > warehouse.TextMaxChars {
			e.add(field, "text of %d characters is longer than the %d a column holds", n, warehouse.TextMaxChars)
		}
	}
	return s
}

// id reads a required id: a JSON integer in 1..2147483647 (MySQL INT).
func (e *errField) id(field string, v []byte) int64 {
	if v == nil {
		e.add(field, "missing")
		return 0
	}
	if kind(v) != "a number" {
		e.add(field, "must be a positive integer, got %s", kind(v))
		return 0
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	switch {
	case err != nil:
		e.add(field, "must be a positive integer, got %s", clip(string(v)))
	case n <= 0 || n > maxID:
		e.add(field, "must be in 1..%d, got %d", maxID, n)
	default:
		return n
	}
	return 0
}

// maxID is the largest id a MySQL INT column holds.
const maxID = 1<<31 - 1

// clip shortens s for an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
