// Package transform turns one raw Rick and Morty API object into the
// warehouse tables' CSVs (the processed-CSV contract of package warehouse)
// and the JSON lines of the records it rejects.
//
// The object may be a page ({"info":{...},"results":[...]}), a JSON array of
// resources, or a single resource object: any API response. It is streamed
// one record at a time through a buffer (lexer.go) whose scanner checks
// the JSON syntax as strictly as encoding/json, in one pass; the object's
// size is not bounded by memory: only one JSON value (a record) is held at
// once, and a value larger than MaxValueBytes makes the object invalid.
//
// The resource (character, location, episode) comes from the items' url
// (…/api/<resource>/<id>, any host); when no item tells, from the key
// (raw/<resource>/...). Each resource fills fixed tables, all of which are
// written (a header alone when no record is valid):
//
//	character → characters, character_episodes (from the character's episode list)
//	episode   → episodes, character_episodes (from the episode's character list)
//	location  → locations
//
// Decisions, in one place:
//   - NULL is only origin_id / location_id when the API's url is "" (unknown);
//     every other empty string stays an empty string.
//   - Every field the API emits is required, with its JSON type; keys match
//     exactly (case-sensitive) and a repeated key rejects the record; unknown
//     keys are ignored, so an API that adds a field keeps working.
//   - Ids are JSON integers in 1..2147483647; a record's url must name its
//     own resource and id. created is RFC 3339, written as
//     warehouse.TimeLayout in UTC (sub-millisecond digits truncated);
//     air_date is "January 2, 2006", written as warehouse.DateLayout; the
//     episode code is S<season>E<number>. Years before 1000 are rejected
//     (MySQL DATETIME/DATE start there).
//   - Links are deduplicated and sorted by the other side's id per record.
//     Location residents are type-checked but not stored (characters carry
//     location_id).
//   - A repeated id within one object: the first valid record is kept and
//     later ones are rejected ("duplicate"); all copies share one fetch time,
//     so neither is newer, and keeping the first is what streaming allows
//     (the set of ids seen grows with the records: ~50 bytes each).
//   - Records are written in input order, so the same input gives the same
//     bytes. Rejected lines hold the raw key, the item's index, its id when
//     valid, every problem found, and the record as it came.
//   - A UTF-8 byte-order mark at the start is dropped (RFC 8259 allows
//     parsers to ignore it); any other byte sequence that is not UTF-8
//     makes the object invalid (a UTF-16 object included).
//   - Invalid objects (*InvalidObjectError): empty, malformed or truncated
//     JSON, not UTF-8, a top-level value that is not an object or array, an
//     API error body ({"error":...}), "results" not an array, data after the
//     JSON value, a value larger than MaxValueBytes, or no way to tell the
//     resource.
package transform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// MaxValueBytes bounds one JSON value held in memory: a record, or the
// top-level members other than "results" together. The largest real record
// is a few kilobytes.
const MaxValueBytes = 16 << 20

// maxPending bounds the records held while no item has told the resource.
const maxPending = 1000

// Rejected is the Sink output name of the rejected records (JSON lines).
const Rejected = "rejected"

// Sink receives Transform's outputs.
type Sink interface {
	// Create returns the writer of one output: a warehouse table name (its
	// CSV) or Rejected. Transform calls it at most once per name, and asks
	// for Rejected only when a record is rejected. The caller commits the
	// outputs when Transform succeeds and discards them when it fails.
	Create(name string) (io.Writer, error)
}

// Shape is the JSON shape of a raw object.
type Shape string

// Shapes of raw objects.
const (
	Page   Shape = "page"   // {"info":{...},"results":[...]}
	Array  Shape = "array"  // [resource, ...]
	Object Shape = "object" // one resource
)

// Report says what Transform read and wrote.
type Report struct {
	Resource     Resource       `json:"resource"`
	ResourceFrom string         `json:"resource_from"` // "url" or "key"
	Shape        Shape          `json:"shape"`
	Records      int            `json:"records"`  // items read
	Rows         map[string]int `json:"rows"`     // rows written per table
	Rejected     int            `json:"rejected"` // items rejected
	Duplicates   int            `json:"duplicates"`
	Bytes        int64          `json:"bytes"` // bytes read from the object
}

// InvalidObjectError is a permanent error: the object cannot be read as an
// API response at all, so retrying cannot help.
type InvalidObjectError struct {
	Reason string
	Offset int64 // byte offset where the problem was seen; -1 when none
}

func (e *InvalidObjectError) Error() string { return "invalid object: " + e.Reason }

func invalid(format string, args ...any) *InvalidObjectError {
	return &InvalidObjectError{Reason: fmt.Sprintf(format, args...), Offset: -1}
}

// Transform reads the raw object stored at key, fetched at fetchedAt, from r
// and writes its tables and rejected records to out.
//
// Errors: *InvalidObjectError when the object is unreadable (permanent);
// errors of r, of out's writers and of ctx are returned wrapped, unchanged
// otherwise (the caller decides whether they are transient). After an
// error, out's outputs are incomplete and must be discarded.
func Transform(ctx context.Context, key string, fetchedAt time.Time, r io.Reader, out Sink) (Report, error) {
	if err := checkKeyLengths(key); err != nil {
		return Report{Rows: map[string]int{}}, err
	}
	src := newSource(r)
	lx := newLexer(src, MaxValueBytes)
	t := &transformer{
		ctx:       ctx,
		key:       key,
		fetchedAt: warehouse.FormatTime(fetchedAt),
		out:       out,
		seen:      make(map[int64]int),
		rep:       Report{Rows: make(map[string]int)},
	}
	err := t.run(lx)
	if err == nil {
		err = t.finish()
	}
	t.rep.Bytes = src.read
	if err == nil {
		return t.rep, nil
	}
	var inv *InvalidObjectError
	var sinkErr *errSink
	switch {
	case src.readErr != nil:
		return t.rep, fmt.Errorf("reading %s: %w", key, src.readErr)
	case errors.As(err, &sinkErr):
		return t.rep, err
	case errors.As(err, &inv):
		return t.rep, inv
	}
	return t.rep, err // ctx.Err()
}

// transformer holds the state of one Transform call.
type transformer struct {
	ctx       context.Context
	key       string
	fetchedAt string
	out       Sink

	res     Resource // "" until an item's url or the key tells
	pending []pendingRecord
	pendSz  int

	tables  map[string]*tablecsv.Writer
	rejects *bufio.Writer
	rejEnc  *json.Encoder
	seen    map[int64]int // id → index of the kept record
	rep     Report

	fields []tablecsv.Field
	ints   []string // intField's cache
	f      recordFields
}

type pendingRecord struct {
	index int
	raw   []byte
}

func (t *transformer) run(lx *lexer) error {
	lx.skipBOM()
	c, ok := lx.peek()
	if !ok {
		if lx.err != nil {
			return lx.err
		}
		return invalid("empty object: no JSON value")
	}
	switch c {
	case '[':
		lx.pos++
		t.rep.Shape = Array
		if err := t.items(lx); err != nil {
			return err
		}
	case '{':
		lx.pos++
		if err := t.object(lx); err != nil {
			return err
		}
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 't', 'f', 'n':
		return invalid("not an API response: the JSON value is %s, want an object or an array", kind([]byte{c}))
	default:
		return lx.unexpected("looking for the beginning of a value")
	}
	if c, ok := lx.peek(); ok {
		return &InvalidObjectError{Reason: fmt.Sprintf("data after the JSON value (%s at byte %d)", quoteChar(c), lx.offset()), Offset: lx.offset()}
	}
	return lx.err
}

// items reads the elements of an array whose '[' has been read, and its ']'.
func (t *transformer) items(lx *lexer) error {
	if ok, err := lx.next(']'); ok || err != nil {
		return err
	}
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if err := t.ctx.Err(); err != nil {
				return err
			}
		}
		v, err := lx.value()
		if err != nil {
			return err
		}
		if err := t.record(i, v); err != nil {
			return err
		}
		if ok, err := lx.next(','); err != nil {
			return err
		} else if ok {
			continue
		}
		if ok, err := lx.next(']'); ok || err != nil {
			return err
		}
		return lx.unexpected("after array element")
	}
}

type member struct {
	key string
	val []byte
}

// object reads a top-level object whose '{' has been read: a page when it
// has "results", else one resource.
func (t *transformer) object(lx *lexer) error {
	var kept []member // members before "results", or all of a single resource
	size, results := 0, false
	var apiError []byte
	if ok, err := lx.next('}'); err != nil {
		return err
	} else if ok {
		t.rep.Shape = Object
		return t.record(0, []byte("{}"))
	}
	for {
		if c, ok := lx.peek(); !ok {
			return lx.stop()
		} else if c != '"' {
			return lx.unexpected("looking for the beginning of an object key string")
		}
		kv, err := lx.value()
		if err != nil {
			return err
		}
		name, _ := unquote(kv)
		if ok, err := lx.next(':'); err != nil {
			return err
		} else if !ok {
			return lx.unexpected("after object key")
		}
		if name == "results" {
			if results {
				return invalid(`the page has two "results" members`)
			}
			results = true
			t.rep.Shape = Page
			c, ok := lx.peek()
			if !ok {
				return lx.stop()
			}
			if c != '[' {
				v, err := lx.value()
				if err != nil {
					return err
				}
				return invalid(`not an API response: "results" is %s, want an array`, kind(v))
			}
			lx.pos++
			if err := t.items(lx); err != nil {
				return err
			}
		} else {
			v, err := lx.value()
			if err != nil {
				return err
			}
			if name == "error" {
				apiError = append([]byte(nil), v...)
			}
			if !results {
				size += len(name) + len(v)
				if size > MaxValueBytes {
					return invalid("the top-level object is larger than %d bytes and has no \"results\"", MaxValueBytes)
				}
				kept = append(kept, member{name, append([]byte(nil), v...)})
			}
		}
		if ok, err := lx.next(','); err != nil {
			return err
		} else if ok {
			continue
		}
		if ok, err := lx.next('}'); err != nil {
			return err
		} else if ok {
			break
		}
		return lx.unexpected("after object key:value pair")
	}
	if apiError != nil {
		v := string(apiError) // JSON text already: quoting it again would show \"...\"
		if len(v) > 80 {
			v = strings.ToValidUTF8(v[:80], "") + "..."
		}
		return invalid("an API error response: {\"error\":%s}", v)
	}
	if results {
		return nil
	}
	t.rep.Shape = Object
	return t.record(0, rebuild(kept))
}

// rebuild writes members back as one JSON object.
func rebuild(ms []member) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			buf.WriteByte(',')
		}
		_ = enc.Encode(m.key)       // a string always encodes
		buf.Truncate(buf.Len() - 1) // Encode's '\n'
		buf.WriteByte(':')
		buf.Write(m.val)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// record handles item index of the object.
func (t *transformer) record(index int, raw []byte) error {
	t.rep.Records++
	if t.res == "" {
		if r, ok := urlResource(raw); ok {
			return t.decide(r, "url", index, raw)
		}
		t.pending = append(t.pending, pendingRecord{index, append([]byte(nil), raw...)})
		t.pendSz += len(raw)
		if len(t.pending) >= maxPending || t.pendSz > MaxValueBytes {
			r, ok := ResourceFromKey(t.key)
			if !ok {
				return invalid("cannot tell the resource: none of the first %d items has an API url and the key is not under raw/<character|location|episode>/", len(t.pending))
			}
			return t.decide(r, "key", -1, nil)
		}
		return nil
	}
	return t.process(index, raw)
}

// decide fixes the resource, opens its tables and processes the pending
// records, then the current one (index >= 0).
func (t *transformer) decide(r Resource, from string, index int, raw []byte) error {
	t.res = r
	t.rep.Resource, t.rep.ResourceFrom = r, from
	t.tables = make(map[string]*tablecsv.Writer)
	for _, name := range r.Tables() {
		tab, _ := warehouse.Lookup(name)
		w, err := t.out.Create(name)
		if err != nil {
			return &errSink{name: name, err: err}
		}
		tw := tablecsv.NewWriter(sinkWriter{name: name, w: w})
		if err := tw.WriteHeader(tab.Header()); err != nil {
			return err
		}
		t.tables[name] = tw
		t.rep.Rows[name] = 0
	}
	pending := t.pending
	t.pending, t.pendSz = nil, 0
	for _, p := range pending {
		if err := t.process(p.index, p.raw); err != nil {
			return err
		}
	}
	if index >= 0 {
		return t.process(index, raw)
	}
	return nil
}

// finish settles the resource when no item told it and flushes the outputs.
func (t *transformer) finish() error {
	if t.res == "" {
		r, ok := ResourceFromKey(t.key)
		if !ok {
			if t.rep.Records == 0 {
				return invalid("cannot tell the resource: the object has no items and the key is not under raw/<character|location|episode>/")
			}
			return invalid("cannot tell the resource: no item has an API url and the key is not under raw/<character|location|episode>/")
		}
		if err := t.decide(r, "key", -1, nil); err != nil {
			return err
		}
	}
	for _, name := range t.res.Tables() {
		if err := t.tables[name].Flush(); err != nil {
			return err
		}
	}
	if t.rejects != nil {
		return t.rejects.Flush()
	}
	return nil
}

// urlResource returns the resource named by the url member of raw, if any.
func urlResource(raw []byte) (Resource, bool) {
	var r Resource
	var ok bool
	members(raw, func(key, val []byte) {
		if !ok && keyIs(key, "url") {
			if s, isStr := unquote(val); isStr {
				r, _, ok = parseURL(s)
			}
		}
	})
	return r, ok
}

// reject writes one rejected-record line.
func (t *transformer) reject(index int, id int64, raw []byte, reason string) error {
	t.rep.Rejected++
	if t.rejects == nil {
		w, err := t.out.Create(Rejected)
		if err != nil {
			return &errSink{name: Rejected, err: err}
		}
		t.rejects = bufio.NewWriterSize(sinkWriter{name: Rejected, w: w}, 32<<10)
		t.rejEnc = json.NewEncoder(t.rejects)
		t.rejEnc.SetEscapeHTML(false)
	}
	return t.rejEnc.Encode(rejectLine{Key: t.key, Index: index, ID: id, Reason: reason, Record: raw})
}

// rejectLine is one line of rejected/<...>.jsonl.
type rejectLine struct {
	Key    string          `json:"key"`          // the raw object's key
	Index  int             `json:"index"`        // position in the array or results (0 for a single object)
	ID     int64           `json:"id,omitempty"` // the record's id when it is valid
	Reason string          `json:"reason"`       // every problem found, "; "-separated
	Record json.RawMessage `json:"record"`       // the record as it came, compacted
}

// row writes one row of table name.
func (t *transformer) row(name string, fields []tablecsv.Field) error {
	if err := t.tables[name].Write(fields); err != nil {
		return err
	}
	t.rep.Rows[name]++
	return nil
}

// intField is n as a CSV field; the text of ids below 1<<16 is cached.
func (t *transformer) intField(n int64) tablecsv.Field {
	if n < 0 || n >= 1<<16 {
		return tablecsv.Text(strconv.FormatInt(n, 10))
	}
	if t.ints == nil {
		t.ints = make([]string, 1<<16)
	}
	if t.ints[n] == "" {
		t.ints[n] = strconv.FormatInt(n, 10)
	}
	return tablecsv.Text(t.ints[n])
}

func sortedUnique(ids []int64) []int64 {
	slices.Sort(ids)
	return slices.Compact(ids)
}
