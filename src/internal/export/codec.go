package export

import (
	"database/sql/driver"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
)

// kind is how a column's values travel from the driver to CSV and Parquet.
type kind int

const (
	kindInt      kind = iota // signed and unsigned integers up to INT UNSIGNED, YEAR: int64 from the driver
	kindUint64               // BIGINT UNSIGNED: uint64 from the driver
	kindFloat                // FLOAT: float32
	kindDouble               // DOUBLE: float64
	kindDecimal              // DECIMAL: text
	kindDate                 // DATE: time.Time
	kindDateTime             // DATETIME, TIMESTAMP: time.Time (UTC)
	kindText                 // character types, ENUM, SET, JSON, TIME, UUID, INET: text
	kindBinary               // BINARY, VARBINARY, BLOBs: bytes (base64 in CSV)
	kindBit                  // BIT(n): big-endian bytes, exported as an integer
)

// column is one exported column: its MySQL definition and its encodings.
type column struct {
	Name              string
	DataType          string // information_schema DATA_TYPE, lower case
	ColumnType        string // information_schema COLUMN_TYPE, e.g. "int(10) unsigned"
	Nullable          bool
	Unsigned          bool
	Precision, Scale  int // DECIMAL
	DatetimePrecision int // fractional digits of DATETIME, TIMESTAMP
	Index             int // position among the exported columns

	kind       kind
	node       parquet.Node // before optional wrapping
	physical   parquet.Kind
	flbaLen    int    // DECIMAL stored as FIXED_LEN_BYTE_ARRAY
	err        error  // the type cannot be exported
	generation string // GENERATION_EXPRESSION
	invisible  bool
}

// newColumn maps a MySQL column type to its kind and Parquet node.
//
// Integers use the narrowest signed Parquet INT that holds every value of
// the MySQL type (TINYINT UNSIGNED is INT(16), INT UNSIGNED is INT(64));
// BIGINT UNSIGNED is DECIMAL(20,0), which every engine reads (UINT(64) is
// not supported by Spark or Trino). DECIMAL(p,s) is DECIMAL(p,s) on INT32 (p <=
// 9), INT64 (p <= 18) or FIXED_LEN_BYTE_ARRAY. DATE is DATE; DATETIME and
// TIMESTAMP are TIMESTAMP(MICROS, adjusted to UTC); text is STRING; binary
// types are plain BYTE_ARRAY.
func newColumn(name, dataType, columnType string, nullable bool, precision, scale, dtPrecision int) *column {
	c := &column{
		Name: name, DataType: strings.ToLower(dataType), ColumnType: columnType, Nullable: nullable,
		Unsigned:  strings.Contains(strings.ToLower(columnType), "unsigned"),
		Precision: precision, Scale: scale, DatetimePrecision: dtPrecision,
	}
	signed := !c.Unsigned
	switch c.DataType {
	case "tinyint", "bool", "boolean":
		c.kind, c.node = kindInt, pick(signed, parquet.Int(8), parquet.Int(16))
	case "smallint":
		c.kind, c.node = kindInt, pick(signed, parquet.Int(16), parquet.Int(32))
	case "mediumint":
		c.kind, c.node = kindInt, parquet.Int(32)
	case "int", "integer":
		c.kind, c.node = kindInt, pick(signed, parquet.Int(32), parquet.Int(64))
	case "bigint":
		c.kind, c.node = kindInt, parquet.Int(64)
		if !signed {
			c.kind, c.flbaLen, c.node = kindUint64, 9, uint64Node
		}
	case "year":
		c.kind, c.node = kindInt, parquet.Int(16)
	case "float":
		c.kind, c.node = kindFloat, parquet.Leaf(parquet.FloatType)
	case "double", "real", "double precision":
		c.kind, c.node = kindDouble, parquet.Leaf(parquet.DoubleType)
	case "decimal", "numeric", "dec", "fixed":
		c.kind = kindDecimal
		switch {
		case precision < 1 || precision > 65 || scale < 0 || scale > precision:
			c.err = fmt.Errorf("DECIMAL precision %d scale %d out of range", precision, scale)
		case precision <= 9:
			c.node = parquet.Decimal(scale, precision, parquet.Int32Type)
		case precision <= 18:
			c.node = parquet.Decimal(scale, precision, parquet.Int64Type)
		default:
			c.flbaLen = decimalBytes(precision)
			c.node = parquet.Decimal(scale, precision, parquet.FixedLenByteArrayType(c.flbaLen))
		}
	case "date":
		c.kind, c.node = kindDate, parquet.Date()
	case "datetime", "timestamp":
		c.kind, c.node = kindDateTime, parquet.Timestamp(parquet.Microsecond)
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json",
		"time", "uuid", "inet4", "inet6":
		c.kind, c.node = kindText, parquet.String()
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.kind, c.node = kindBinary, parquet.Leaf(parquet.ByteArrayType)
	case "bit":
		c.kind, c.node = kindBit, parquet.Int(64)
		if precision >= 64 {
			c.flbaLen, c.node = 9, uint64Node
		}
	default:
		c.err = fmt.Errorf("type %s is not supported by the exporter", columnType)
	}
	if c.node != nil {
		c.physical = c.node.Type().Kind()
	}
	return c
}

// uint64Node holds 64-bit unsigned integers as DECIMAL(20,0): exact, and
// readable by engines that have no unsigned 64-bit type (Spark, Trino).
var uint64Node = parquet.Decimal(0, 20, parquet.FixedLenByteArrayType(9))

// uint64Value encodes n for uint64Node (9 bytes, big-endian two's complement).
func uint64Value(n uint64, arena []byte) (parquet.Value, []byte) {
	start := len(arena)
	arena = append(arena, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint64(arena[start+1:], n)
	return parquet.FixedLenByteArrayValue(arena[start:len(arena):len(arena)]), arena
}

// uint64Of decodes a uint64Node value.
func uint64Of(v parquet.Value) uint64 {
	b := v.ByteArray()
	return binary.BigEndian.Uint64(b[len(b)-8:])
}

func pick(cond bool, a, b parquet.Node) parquet.Node {
	if cond {
		return a
	}
	return b
}

// decimalBytes is the FIXED_LEN_BYTE_ARRAY length that holds any unscaled
// value of precision digits in two's complement.
func decimalBytes(precision int) int {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(precision)), nil)
	return (max.BitLen() + 1 + 7) / 8
}

// usableAsKey reports whether the column can be part of the keyset position.
func (c *column) usableAsKey() error {
	switch c.kind {
	case kindFloat, kindDouble:
		return errors.New("a floating-point key cannot give an exact position")
	}
	return c.err
}

// parquetNode is the column's node in the file schema.
func (c *column) parquetNode() parquet.Node {
	if c.Nullable {
		return parquet.Optional(c.node)
	}
	return parquet.Required(c.node)
}

// cell is one value of the current row, as the driver returned it: nil
// for NULL, int64, uint64, float32, float64, time.Time, or []byte for
// DECIMAL, text, binary and BIT columns (only valid until the next row).
type cell struct {
	value *driver.Value
}

func (x cell) null() bool {
	return *x.value == nil
}

// bytes is the value of a DECIMAL, text, binary or BIT column.
func (x cell) bytes() []byte {
	b, _ := (*x.value).([]byte)
	return b
}

// errZeroDate reports MySQL's zero date, which no other system can represent.
var errZeroDate = errors.New("zero date 0000-00-00 cannot be exported (the driver reads it as year 1)")

// encoder turns the driver's rows into Parquet values, column-major
// (columns); appendCSV renders a row of them as a CSV record. The reader
// goroutine does the first, the writer the second, so the two share the
// work of a run on two cores; and the CSV file can only ever say what the
// Parquet file says.
type encoder struct {
	cols  []*column
	vals  []driver.Value // the current row: the columns, then the extra values
	cells []cell         // one per value of vals
	dest  []any          // rows.Scan's destinations: call scanned after Scan
	scan  []any          // what dest points to
	days  []dayCache     // per column, for CSV dates
	b64   []byte
	big   big.Int
}

// newEncoder is an encoder of rows of cols followed by extra values.
func newEncoder(cols []*column, extra int) *encoder {
	n := len(cols) + extra
	e := &encoder{
		cols: cols, vals: make([]driver.Value, n), cells: make([]cell, n),
		dest: make([]any, n), scan: make([]any, n), days: make([]dayCache, len(cols)),
	}
	for i := range e.vals {
		e.cells[i] = cell{value: &e.vals[i]}
		e.dest[i] = &e.scan[i]
	}
	return e
}

// scanned makes the values rows.Scan stored through dest the current row.
func (e *encoder) scanned() {
	for i, v := range e.scan {
		e.vals[i] = v
	}
}

// bytesString views b as a string without copying; the string must not
// outlive b's content (tablecsv copies it at once).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// columns are the values of a batch of rows, column-major: cols[i][r] is
// the value of column i in row r, with its levels (the form the Parquet
// column writers take).
type columns [][]parquet.Value

// encode appends the Parquet values of the current row to cols (nil: new
// columns), copying byte arrays into arena, and checks NOT NULL columns.
// On error cols keep their previous rows only.
func (e *encoder) encode(cols columns, arena []byte) (columns, []byte, error) {
	if cols == nil {
		cols = make(columns, len(e.cols))
	}
	cols, arena, err := e.encodeRow(cols, arena)
	if err != nil {
		n := len(cols[len(cols)-1])
		for i := range cols {
			cols[i] = cols[i][:n]
		}
	}
	return cols, arena, err
}

func (e *encoder) encodeRow(cols columns, arena []byte) (columns, []byte, error) {
	for i, c := range e.cols {
		x := e.cells[i]
		if x.null() {
			if !c.Nullable {
				return cols, arena, fmt.Errorf("column %s is NOT NULL but the database returned NULL", c.Name)
			}
			cols[i] = append(cols[i], parquet.NullValue()) // levels 0
			continue
		}
		var v parquet.Value
		switch c.kind {
		case kindInt:
			n, ok := (*x.value).(int64)
			if !ok {
				return cols, arena, fmt.Errorf("column %s: driver returned %T, want int64", c.Name, *x.value)
			}
			if c.physical == parquet.Int32 {
				v = parquet.Int32Value(int32(n))
			} else {
				v = parquet.Int64Value(n)
			}
		case kindUint64:
			var n uint64
			switch u := (*x.value).(type) {
			case uint64:
				n = u
			case int64:
				n = uint64(u)
			default:
				return cols, arena, fmt.Errorf("column %s: driver returned %T, want uint64", c.Name, *x.value)
			}
			v, arena = uint64Value(n, arena)
		case kindFloat:
			f, ok := (*x.value).(float32)
			if !ok {
				return cols, arena, fmt.Errorf("column %s: driver returned %T, want float32", c.Name, *x.value)
			}
			v = parquet.FloatValue(f)
		case kindDouble:
			f, ok := (*x.value).(float64)
			if !ok {
				return cols, arena, fmt.Errorf("column %s: driver returned %T, want float64", c.Name, *x.value)
			}
			v = parquet.DoubleValue(f)
		case kindDecimal:
			var err error
			v, arena, err = c.decimalValue(x.bytes(), arena)
			if err != nil {
				return cols, arena, err
			}
		case kindDate, kindDateTime:
			t, ok := (*x.value).(time.Time)
			if !ok {
				return cols, arena, fmt.Errorf("column %s: driver returned %T, want time.Time", c.Name, *x.value)
			}
			if t.IsZero() {
				return cols, arena, fmt.Errorf("column %s: %w", c.Name, errZeroDate)
			}
			if c.kind == kindDate {
				v = parquet.Int32Value(int32(floorDiv(t.Unix(), 86400)))
			} else {
				v = parquet.Int64Value(t.UnixMicro())
			}
		case kindText, kindBinary:
			b := x.bytes()
			if c.kind == kindText && !utf8.Valid(b) {
				return cols, arena, fmt.Errorf("column %s: text is not valid UTF-8", c.Name)
			}
			start := len(arena)
			arena = append(arena, b...)
			v = parquet.ByteArrayValue(arena[start:len(arena):len(arena)])
		case kindBit:
			b := x.bytes()
			if len(b) > 8 {
				return cols, arena, fmt.Errorf("column %s: BIT value of %d bytes", c.Name, len(b))
			}
			var buf [8]byte
			copy(buf[8-len(b):], b)
			if n := binary.BigEndian.Uint64(buf[:]); c.flbaLen > 0 {
				v, arena = uint64Value(n, arena)
			} else {
				v = parquet.Int64Value(int64(n))
			}
		}
		if c.Nullable {
			// A value of an optional column: definition level 1. (The
			// column writers take a column's values; they read no column
			// index from them, and the levels of a required column's
			// values are 0, as they come.)
			v = v.Level(0, 1, i)
		}
		cols[i] = append(cols[i], v)
	}
	return cols, arena, nil
}

// appendCSV appends row r of cols as one CSV record (tablecsv encoding:
// \N for NULL, UTC datetimes with the column's fractional digits, DECIMAL
// with its scale, binary as base64).
func (e *encoder) appendCSV(dst []byte, cols columns, r int) []byte {
	for i, c := range e.cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		v := cols[i][r]
		if v.IsNull() {
			dst = append(dst, tablecsv.NullToken...)
			continue
		}
		switch c.kind {
		case kindInt:
			if c.physical == parquet.Int32 {
				dst = strconv.AppendInt(dst, int64(v.Int32()), 10)
			} else {
				dst = strconv.AppendInt(dst, v.Int64(), 10)
			}
		case kindUint64, kindBit:
			if c.flbaLen > 0 {
				dst = strconv.AppendUint(dst, uint64Of(v), 10)
			} else {
				dst = strconv.AppendUint(dst, uint64(v.Int64()), 10)
			}
		case kindFloat:
			dst = strconv.AppendFloat(dst, float64(v.Float()), 'g', -1, 32)
		case kindDouble:
			dst = strconv.AppendFloat(dst, v.Double(), 'g', -1, 64)
		case kindDecimal:
			dst = e.appendDecimal(dst, c, v)
		case kindDate:
			dst = e.days[i].appendDays(dst, int64(v.Int32()))
		case kindDateTime:
			dst = appendMicros(dst, v.Int64(), c.DatetimePrecision, &e.days[i])
		case kindText:
			dst = tablecsv.AppendField(dst, tablecsv.Text(bytesString(v.ByteArray())))
		case kindBinary:
			e.b64 = base64.StdEncoding.AppendEncode(e.b64[:0], v.ByteArray())
			dst = append(dst, e.b64...)
		}
	}
	return append(dst, '\n')
}

// appendDecimal renders an unscaled DECIMAL value with the column's scale,
// as MySQL does ("-0.05", "12.50", "7").
func (e *encoder) appendDecimal(dst []byte, c *column, v parquet.Value) []byte {
	var digits []byte
	neg := false
	switch c.physical {
	case parquet.Int32, parquet.Int64:
		// At most 18 digits: written from the end, with the point.
		n := v.Int64()
		if c.physical == parquet.Int32 {
			n = int64(v.Int32())
		}
		u := uint64(n)
		if n < 0 {
			u = uint64(-n)
		}
		var buf [48]byte
		i := len(buf)
		for range c.Scale {
			i--
			buf[i] = byte('0' + u%10)
			u /= 10
		}
		if c.Scale > 0 {
			i--
			buf[i] = '.'
		}
		for {
			i--
			buf[i] = byte('0' + u%10)
			if u /= 10; u == 0 {
				break
			}
		}
		if n < 0 {
			i--
			buf[i] = '-'
		}
		return append(dst, buf[i:]...)
	default:
		b := v.ByteArray()
		e.big.SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 {
			e.big.Sub(&e.big, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
			e.big.Neg(&e.big)
			neg = true
		}
		digits = e.big.Append(nil, 10)
	}
	if neg {
		dst = append(dst, '-')
	}
	if c.Scale == 0 {
		return append(dst, digits...)
	}
	if len(digits) <= c.Scale {
		dst = append(dst, '0', '.')
		for range c.Scale - len(digits) {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[:len(digits)-c.Scale]...)
	dst = append(dst, '.')
	return append(dst, digits[len(digits)-c.Scale:]...)
}

// civil returns the proleptic Gregorian date of a day count since
// 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
func civil(days int64) (y int64, m, d int) {
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// appendDays appends a day count since the epoch as 2006-01-02.
func appendDays(dst []byte, days int64) []byte {
	y, m, d := civil(days)
	if y < 0 || y > 9999 {
		return time.Unix(days*86400, 0).UTC().AppendFormat(dst, "2006-01-02")
	}
	dst = appendDigits(dst, int(y), 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, m, 2)
	dst = append(dst, '-')
	return appendDigits(dst, d, 2)
}

// dayCache keeps the last day a column rendered: rows come in key order,
// and neighbours often share a day.
type dayCache struct {
	days int64
	text []byte // empty: none yet
}

// appendDays is the package's appendDays, from the cache when days is the
// last day rendered (c may be nil: no cache).
func (c *dayCache) appendDays(dst []byte, days int64) []byte {
	if c == nil {
		return appendDays(dst, days)
	}
	if len(c.text) == 0 || c.days != days {
		c.text, c.days = appendDays(c.text[:0], days), days
	}
	return append(dst, c.text...)
}

// cached reports whether c holds days.
func (c *dayCache) cached(days int64) bool {
	return c != nil && len(c.text) > 0 && c.days == days
}

// appendMicros appends microseconds since the epoch as RFC 3339 UTC with
// frac fractional digits (0 to 6): 2006-01-02T15:04:05[.000000]Z. The date
// comes from days when it holds it (nil: no cache).
func appendMicros(dst []byte, us int64, frac int, days *dayCache) []byte {
	sec := floorDiv(us, 1_000_000)
	sub := int(us - sec*1_000_000)
	day := floorDiv(sec, 86400)
	sod := int(sec - day*86400)
	if frac < 0 || frac > 6 {
		return time.UnixMicro(us).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
	}
	if !days.cached(day) {
		if y, _, _ := civil(day); y < 0 || y > 9999 {
			return time.UnixMicro(us).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z")
		}
	}
	dst = days.appendDays(dst, day)
	// T15:04:05[.000000]Z, in one append.
	hh, mm, ss := sod/3600, sod/60%60, sod%60
	buf := [17]byte{'T', byte('0' + hh/10), byte('0' + hh%10), ':', byte('0' + mm/10), byte('0' + mm%10), ':', byte('0' + ss/10), byte('0' + ss%10)}
	n := 9
	if frac > 0 {
		for i := 6; i > frac; i-- {
			sub /= 10
		}
		buf[9] = '.'
		for i := 9 + frac; i > 9; i-- {
			buf[i] = byte('0' + sub%10)
			sub /= 10
		}
		n = 10 + frac
	}
	buf[n] = 'Z'
	return append(dst, buf[:n+1]...)
}

// appendDigits appends n, zero-padded to width digits.
func appendDigits(dst []byte, n, width int) []byte {
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return append(dst, buf[:width]...)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// decimalValue parses MySQL's rendering of a DECIMAL(p,s) ("-123.45",
// exactly s fractional digits) into the unscaled Parquet value.
func (c *column) decimalValue(b, arena []byte) (parquet.Value, []byte, error) {
	bad := func() (parquet.Value, []byte, error) {
		return parquet.Value{}, arena, fmt.Errorf("column %s: %q is not a DECIMAL(%d,%d) value", c.Name, b, c.Precision, c.Scale)
	}
	s := b
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	intPart, frac := s, []byte(nil)
	if i := indexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i+1:]
	}
	if len(frac) != c.Scale || len(intPart) == 0 || len(intPart)+len(frac) > c.Precision+1 {
		return bad()
	}
	if c.flbaLen == 0 {
		if len(intPart)+len(frac) > 18 {
			return bad()
		}
		var n int64
		for _, d := range intPart {
			if d < '0' || d > '9' {
				return bad()
			}
			n = n*10 + int64(d-'0')
		}
		for _, d := range frac {
			if d < '0' || d > '9' {
				return bad()
			}
			n = n*10 + int64(d-'0')
		}
		if neg {
			n = -n
		}
		if c.physical == parquet.Int32 {
			return parquet.Int32Value(int32(n)), arena, nil
		}
		return parquet.Int64Value(n), arena, nil
	}
	digits := make([]byte, 0, len(intPart)+len(frac))
	digits = append(append(digits, intPart...), frac...)
	n, ok := new(big.Int).SetString(string(digits), 10)
	if !ok {
		return bad()
	}
	if neg {
		n.Neg(n)
	}
	start := len(arena)
	arena = append(arena, make([]byte, c.flbaLen)...)
	putTwosComplement(arena[start:], n)
	return parquet.FixedLenByteArrayValue(arena[start:len(arena):len(arena)]), arena, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// putTwosComplement writes n big-endian in two's complement over all of dst.
func putTwosComplement(dst []byte, n *big.Int) {
	if n.Sign() >= 0 {
		n.FillBytes(dst)
		return
	}
	// -n = ^(n-1) for the magnitude: write |n|-1 and invert.
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	m.FillBytes(dst)
	for i := range dst {
		dst[i] = ^dst[i]
	}
}

// keyValue returns the current row's value of a key column as it is stored
// in the watermark file: a JSON number for integers, a JSON string holding
// the MySQL literal otherwise.
func (c *column) keyValue(x cell) (json.RawMessage, error) {
	if x.null() {
		return nil, fmt.Errorf("key column %s is NULL", c.Name)
	}
	switch c.kind {
	case kindInt, kindUint64:
		switch n := (*x.value).(type) {
		case int64:
			return strconv.AppendInt(nil, n, 10), nil
		case uint64:
			return strconv.AppendUint(nil, n, 10), nil
		}
	case kindBit:
		var buf [8]byte
		copy(buf[8-len(x.bytes()):], x.bytes())
		return strconv.AppendUint(nil, binary.BigEndian.Uint64(buf[:]), 10), nil
	case kindDecimal, kindText:
		return json.Marshal(string(x.bytes()))
	case kindBinary:
		return json.Marshal(base64.StdEncoding.EncodeToString(x.bytes()))
	case kindDate:
		if t, ok := (*x.value).(time.Time); ok {
			return json.Marshal(t.UTC().Format("2006-01-02"))
		}
	case kindDateTime:
		if t, ok := (*x.value).(time.Time); ok {
			return json.Marshal(t.UTC().Format("2006-01-02 15:04:05.000000"))
		}
	}
	return nil, fmt.Errorf("key column %s: unexpected value %T", c.Name, *x.value)
}

// keyArg converts a watermark key value back to a query argument, and
// keyPlaceholder is the SQL that compares it exactly with the column.
func (c *column) keyArg(v json.RawMessage) (any, error) {
	mismatch := func() (any, error) {
		return nil, fmt.Errorf("watermark key value %s does not fit key column %s (%s)", v, c.Name, c.ColumnType)
	}
	switch c.kind {
	case kindInt, kindBit:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			if c.kind == kindBit {
				u, err := strconv.ParseUint(string(v), 10, 64)
				if err != nil {
					return mismatch()
				}
				return u, nil
			}
			return mismatch()
		}
		return n, nil
	case kindUint64:
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return mismatch()
		}
		return n, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return mismatch()
	}
	switch c.kind {
	case kindBinary:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return mismatch()
		}
		return b, nil
	case kindDate:
		if _, err := time.Parse("2006-01-02", s); err != nil {
			return mismatch()
		}
	case kindDateTime:
		if _, err := time.Parse("2006-01-02 15:04:05.000000", s); err != nil {
			return mismatch()
		}
	case kindDecimal:
		if _, ok := new(big.Float).SetString(s); !ok {
			return mismatch()
		}
	}
	return s, nil
}

func (c *column) keyPlaceholder() string {
	switch c.kind {
	case kindDecimal:
		return fmt.Sprintf("CAST(? AS DECIMAL(%d,%d))", c.Precision, c.Scale)
	case kindDate:
		return "CAST(? AS DATE)"
	case kindDateTime:
		return "CAST(? AS DATETIME(6))"
	}
	return "?"
}

// Compressions lists the Parquet codecs Compression accepts.
var Compressions = []string{"zstd", "snappy", "gzip", "none"}

func codec(name string) (compress.Codec, error) {
	switch name {
	case "", "zstd":
		return &zstd.Codec{Level: zstd.SpeedFastest}, nil
	case "snappy":
		return &snappy.Codec{}, nil
	case "gzip":
		return &gzip.Codec{Level: gzip.BestSpeed}, nil
	case "none":
		return &uncompressed.Codec{}, nil
	}
	return nil, fmt.Errorf("unknown Parquet compression %q (want one of %s)", name, strings.Join(Compressions, ", "))
}

// parquetSchema is the file schema: one column per MySQL column, in table order.
func (t *tableInfo) parquetSchema() *parquet.Schema {
	fields := make([]parquet.Field, len(t.Columns))
	for i, c := range t.Columns {
		fields[i] = namedField{Node: c.parquetNode(), name: c.Name}
	}
	return parquet.NewSchema(t.Name, orderedGroup{fields: fields})
}

// orderedGroup is a group node whose fields keep the order given
// (parquet.Group sorts them by name).
type orderedGroup struct {
	parquet.Group
	fields []parquet.Field
}

func (g orderedGroup) Fields() []parquet.Field { return g.fields }

type namedField struct {
	parquet.Node
	name string
}

func (f namedField) Name() string { return f.name }

// Value is only used when Go values are deconstructed, which the exporter
// never does (it writes parquet.Row values); it supports maps for completeness.
func (f namedField) Value(base reflect.Value) reflect.Value {
	if base.Kind() == reflect.Map {
		return base.MapIndex(reflect.ValueOf(f.name))
	}
	return reflect.Value{}
}
