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

// snapshotSQL is the snapshot's query: rows up to the bound, in key order
// after the last key read (a range of the primary key: cheap for every table).
func (t *tableInfo) snapshotSQL(after bool, limit int) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.Name))
	}
	b.WriteString(", " + t.posExpr + " FROM " + quoteIdent(t.Name) + " WHERE " + t.posExpr + " <= CAST(? AS DATETIME(6))")
	if after {
		b.WriteString(" AND " + t.keyAfterSQL())
	}
	b.WriteString(" ORDER BY ")
	for i, k := range t.Key {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(k.Name))
	}
	b.WriteString(" LIMIT " + strconv.Itoa(limit))
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

// afterSQL is the predicate "position > (?, key...)"; its arguments come
// from afterArgs.
func (t *tableInfo) afterSQL() string {
	ts := "CAST(? AS DATETIME(6))"
	s := "(" + t.orderBy + " > " + ts + " OR (" + t.orderBy + " = " + ts + " AND "
	closing := "))"
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

func (t *tableInfo) afterArgs(p *position) ([]any, error) {
	ts := p.TS.UTC().Format("2006-01-02 15:04:05.000000")
	args := []any{ts, ts}
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
// including last, in key order up to the bound upper for a snapshot, in
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
	q += " AND NOT " + after()
	more, err := argsOf(last)
	if err != nil {
		return "", nil, err
	}
	return q, append(args, more...), nil
}
