package export

import (
	"strconv"
	"strings"
	"time"
)

// chunkSQL is the keyset query. The position predicate is the row
// comparison (ts, k1, ..., kn) > (?, ?, ..., ?) written out as nested
// OR/AND, the form MySQL's range optimizer turns into index ranges.
func (t *tableInfo) chunkSQL(after bool, limit int) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.Name))
	}
	b.WriteString(", " + t.posExpr + " FROM " + quoteIdent(t.Name) + " WHERE " + t.orderBy + " <= CAST(? AS DATETIME(6))")
	if after {
		b.WriteString(" AND " + t.afterSQL())
	}
	b.WriteString(" ORDER BY " + t.orderBy)
	for _, k := range t.Key {
		b.WriteString(", " + quoteIdent(k.Name))
	}
	if limit < unlimited {
		b.WriteString(" LIMIT " + strconv.Itoa(limit))
	}
	return b.String()
}

// keyRange narrows a key-order query: rows after a key (keyArgs), and for
// a range of a fanned-out run, only rows after the watermark position
// (since: afterArgs) and keys up to and including the range's last
// (through: keyArgs).
type keyRange struct {
	since, after, through bool
}

// keyOrderSQL selects list from the rows up to the bound (the first
// argument) in key order, narrowed by r: arguments in the order upper,
// since, after, through. A snapshot's chunks are this query (a range of the
// primary key: cheap for every table), and so are a range's.
func (t *tableInfo) keyOrderSQL(list string, r keyRange, limit int) string {
	var b strings.Builder
	b.WriteString("SELECT " + list + " FROM " + quoteIdent(t.Name) + " WHERE " + t.posExpr + " <= CAST(? AS DATETIME(6))")
	b.WriteString(t.narrow(r))
	b.WriteString(" ORDER BY " + t.keyList(""))
	if limit < unlimited {
		b.WriteString(" LIMIT " + strconv.Itoa(limit))
	}
	return b.String()
}

func (t *tableInfo) narrow(r keyRange) string {
	var s string
	if r.since {
		s += " AND " + t.afterSQL()
	}
	if r.after {
		s += " AND " + t.keyAfterSQL()
	}
	if r.through {
		s += " AND NOT " + t.keyAfterSQL()
	}
	return s
}

// selectList is every exported column, then the position timestamp.
func (t *tableInfo) selectList() string {
	var b strings.Builder
	for _, c := range t.Columns {
		b.WriteString(quoteIdent(c.Name) + ", ")
	}
	b.WriteString(t.posExpr)
	return b.String()
}

// keyList is the key columns, each followed by suffix (" DESC").
func (t *tableInfo) keyList(suffix string) string {
	var b strings.Builder
	for i, k := range t.Key {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(k.Name) + suffix)
	}
	return b.String()
}

// keyAfterSQL is the predicate "key > (?...)"; arguments from keyArgs.
func (t *tableInfo) keyAfterSQL() string {
	s, closing := "(", ")"
	for i, k := range t.Key {
		q, ph := quoteIdent(k.Name), k.keyPlaceholder()
		if i == len(t.Key)-1 {
			s += q + " > " + ph
			break
		}
		s += "(" + q + " > " + ph + " OR (" + q + " = " + ph + " AND "
		closing += "))"
	}
	return s + closing
}

func (t *tableInfo) keyArgs(p *position) ([]any, error) {
	var args []any
	for i, k := range t.Key {
		v, err := k.keyArg(p.Key[i])
		if err != nil {
			return nil, err
		}
		args = append(args, v)
		if i < len(t.Key)-1 {
			args = append(args, v)
		}
	}
	return args, nil
}

// afterSQL is the predicate "position > (?, key...)": a later timestamp,
// or the same one and a greater key; its arguments come from afterArgs.
func (t *tableInfo) afterSQL() string {
	ts := "CAST(? AS DATETIME(6))"
	return "(" + t.orderBy + " > " + ts + " OR (" + t.orderBy + " = " + ts + " AND " + t.keyAfterSQL() + "))"
}

func (t *tableInfo) afterArgs(p *position) ([]any, error) {
	ts := p.TS.UTC().Format("2006-01-02 15:04:05.000000")
	keys, err := t.keyArgs(p)
	if err != nil {
		return nil, err
	}
	return append([]any{ts, ts}, keys...), nil
}

// lastPositionSQL selects the greatest position (ts, key...) among the
// rows up to the bound (the argument).
func (t *tableInfo) lastPositionSQL() string {
	q := "SELECT " + t.orderBy
	for _, k := range t.Key {
		q += ", " + quoteIdent(k.Name)
	}
	q += " FROM " + quoteIdent(t.Name) + " WHERE " + t.orderBy + " <= CAST(? AS DATETIME(6)) ORDER BY " + t.orderBy + " DESC"
	for _, k := range t.Key {
		q += ", " + quoteIdent(k.Name) + " DESC"
	}
	return q + " LIMIT 1"
}

// countSQL counts the rows after from (nil: from the start) up to and
// including last (nil: every due row), in key order up to the bound upper for a snapshot, in
// position order otherwise: what a run that read from from to last must
// have exported.
func (t *tableInfo) countSQL(snapshot bool, upper time.Time, from, last *position) (string, []any, error) {
	q := "SELECT COUNT(*) FROM " + quoteIdent(t.Name) + " WHERE " + t.orderBy + " IS NOT NULL"
	var args []any
	after, argsOf := t.afterSQL, t.afterArgs
	if snapshot {
		q += " AND " + t.posExpr + " <= CAST(? AS DATETIME(6))"
		args = append(args, upper.UTC().Format("2006-01-02 15:04:05.000000"))
		after, argsOf = t.keyAfterSQL, t.keyArgs
	}
	if from != nil {
		q += " AND " + after()
		more, err := argsOf(from)
		if err != nil {
			return "", nil, err
		}
		args = append(args, more...)
	}
	if last == nil {
		if !snapshot {
			q += " AND " + t.orderBy + " <= CAST(? AS DATETIME(6))"
			args = append(args, upper.UTC().Format("2006-01-02 15:04:05.000000"))
		}
		return q, args, nil
	}
	q += " AND NOT " + after()
	more, err := argsOf(last)
	if err != nil {
		return "", nil, err
	}
	return q, append(args, more...), nil
}

// rangeArgs are the arguments of keyOrderSQL and rangeCountSQL after the
// bound, for the positions r names.
func (t *tableInfo) rangeArgs(since, after, through *position) ([]any, error) {
	var args []any
	if since != nil {
		a, err := t.afterArgs(since)
		if err != nil {
			return nil, err
		}
		args = append(args, a...)
	}
	for _, p := range []*position{after, through} {
		if p != nil {
			a, err := t.keyArgs(p)
			if err != nil {
				return nil, err
			}
			args = append(args, a...)
		}
	}
	return args, nil
}

// rangeCountSQL counts the rows of a key range up to the bound (arguments:
// upper, then rangeArgs).
func (t *tableInfo) rangeCountSQL(r keyRange) string {
	return "SELECT COUNT(*) FROM " + quoteIdent(t.Name) + " WHERE " + t.posExpr + " <= CAST(? AS DATETIME(6))" + t.narrow(r)
}
