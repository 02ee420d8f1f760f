package export

import (
	"bytes"
	"encoding/base64"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
)

const typesTable = `CREATE TABLE types (
  id BIGINT UNSIGNED NOT NULL,
  ti TINYINT NULL, tiu TINYINT UNSIGNED NULL, si SMALLINT NULL, siu SMALLINT UNSIGNED NULL,
  mi MEDIUMINT NULL, i INT NULL, iu INT UNSIGNED NULL, bi BIGINT NULL, biu BIGINT UNSIGNED NULL,
  yr YEAR NULL, flag TINYINT(1) NULL, bits BIT(10) NULL, f FLOAT NULL, d DOUBLE NULL,
  d52 DECIMAL(5,2) NULL, d150 DECIMAL(15,0) NULL, d184 DECIMAL(18,4) NULL, d3010 DECIMAL(30,10) NULL,
  dt DATE NULL, t0 DATETIME NULL, t3 DATETIME(3) NULL, t6 DATETIME(6) NULL, ts TIMESTAMP(6) NULL,
  tm TIME NULL, c CHAR(3) NULL, vc VARCHAR(50) NULL, tx TEXT NULL, en ENUM('a','b c') NULL, st SET('x','y') NULL,
  js JSON NULL, bin VARBINARY(16) NULL, bl BLOB NULL,
  req VARCHAR(10) NOT NULL,
  createdDate DATETIME(6) NOT NULL, modifiedDate DATETIME(6) NULL,
  PRIMARY KEY (id)
) DEFAULT CHARSET=utf8mb4`

// wantTypes is the Parquet type of each column.
var wantTypes = map[string]string{
	"id": "DECIMAL(20,0)/FIXED_LEN_BYTE_ARRAY", "ti": "INT(8)", "tiu": "INT(16)", "si": "INT(16)", "siu": "INT(32)", "mi": "INT(32)",
	"i": "INT(32)", "iu": "INT(64)", "bi": "INT(64)", "biu": "DECIMAL(20,0)/FIXED_LEN_BYTE_ARRAY", "yr": "INT(16)", "flag": "INT(8)",
	"bits": "INT(64)", "f": "FLOAT", "d": "DOUBLE",
	"d52": "DECIMAL(5,2)/INT32", "d150": "DECIMAL(15,0)/INT64", "d184": "DECIMAL(18,4)/INT64", "d3010": "DECIMAL(30,10)/FIXED_LEN_BYTE_ARRAY",
	"dt": "DATE", "t0": "TIMESTAMP(UTC,MICROS)", "t3": "TIMESTAMP(UTC,MICROS)", "t6": "TIMESTAMP(UTC,MICROS)", "ts": "TIMESTAMP(UTC,MICROS)",
	"tm": "STRING", "c": "STRING", "vc": "STRING", "tx": "STRING", "en": "STRING", "st": "STRING", "js": "STRING",
	"bin": "BYTE_ARRAY", "bl": "BYTE_ARRAY", "req": "STRING", "createdDate": "TIMESTAMP(UTC,MICROS)", "modifiedDate": "TIMESTAMP(UTC,MICROS)",
}

// typeName describes a leaf's logical (or physical) type.
func typeName(n parquet.Node) string {
	lt := n.Type().LogicalType()
	if lt == nil {
		return n.Type().Kind().String()
	}
	switch v := lt.Value.(type) {
	case *format.IntType:
		if v.IsSigned {
			return "INT(" + strconv.Itoa(int(v.BitWidth)) + ")"
		}
		return "UINT(" + strconv.Itoa(int(v.BitWidth)) + ")"
	case *format.DecimalType:
		return "DECIMAL(" + strconv.Itoa(int(v.Precision)) + "," + strconv.Itoa(int(v.Scale)) + ")/" + n.Type().Kind().String()
	case *format.TimestampType:
		unit := "?"
		if _, ok := v.Unit.Value.(*format.MicroSeconds); ok {
			unit = "MICROS"
		}
		if v.IsAdjustedToUTC {
			return "TIMESTAMP(UTC," + unit + ")"
		}
		return "TIMESTAMP(local," + unit + ")"
	case *format.DateType:
		return "DATE"
	case *format.StringType:
		return "STRING"
	}
	return lt.String()
}

// fromParquet renders a Parquet value the way the CSV renders its column,
// from the Parquet type alone; datetimes are compared as instants.
func fromParquet(t *testing.T, n parquet.Node, v parquet.Value) string {
	if v.IsNull() {
		return tablecsv.NullToken
	}
	var lv any
	if lt := n.Type().LogicalType(); lt != nil {
		lv = lt.Value
	}
	switch lt := lv.(type) {
	case *format.IntType:
		if !lt.IsSigned {
			return strconv.FormatUint(uint64(v.Int64()), 10)
		}
		if n.Type().Kind() == parquet.Int32 {
			return strconv.FormatInt(int64(v.Int32()), 10)
		}
		return strconv.FormatInt(v.Int64(), 10)
	case *format.DecimalType:
		var u *big.Int
		switch n.Type().Kind() {
		case parquet.Int32:
			u = big.NewInt(int64(v.Int32()))
		case parquet.Int64:
			u = big.NewInt(v.Int64())
		default:
			b := v.ByteArray()
			u = new(big.Int).SetBytes(b)
			if len(b) > 0 && b[0]&0x80 != 0 {
				u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
			}
		}
		s := u.String()
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		scale := int(lt.Scale)
		for len(s) <= scale {
			s = "0" + s
		}
		if scale > 0 {
			s = s[:len(s)-scale] + "." + s[len(s)-scale:]
		}
		if neg {
			s = "-" + s
		}
		return s
	case *format.DateType:
		return time.Unix(int64(v.Int32())*86400, 0).UTC().Format("2006-01-02")
	case *format.TimestampType:
		return time.UnixMicro(v.Int64()).UTC().Format(time.RFC3339Nano)
	case *format.StringType:
		return string(v.ByteArray())
	}
	switch n.Type().Kind() {
	case parquet.ByteArray:
		return base64.StdEncoding.EncodeToString(v.ByteArray())
	case parquet.Float:
		return strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)
	case parquet.Double:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64)
	}
	t.Fatalf("unexpected Parquet type %v", n.Type())
	return ""
}

// sameInstant compares a CSV datetime with a Parquet one by instant.
func sameInstant(csvText, pqText string) bool {
	a, err1 := time.Parse(time.RFC3339Nano, csvText)
	b, err2 := time.Parse(time.RFC3339Nano, pqText)
	return err1 == nil && err2 == nil && a.Equal(b)
}

// checkParquetEqualsCSV reads a Parquet file with parquet-go and compares
// it with its CSV twin row by row and value by value, and its types with want.
func checkParquetEqualsCSV(t *testing.T, pq, csv []byte, want map[string]string) {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(pq), int64(len(pq)))
	if err != nil {
		t.Fatalf("opening Parquet: %v", err)
	}
	header, recs := readCSV(t, csv)
	fields := f.Schema().Fields()
	var names []string
	for i, fl := range fields {
		names = append(names, fl.Name())
		if want != nil && typeName(fl) != want[fl.Name()] {
			t.Errorf("column %s: Parquet type %s, want %s", fl.Name(), typeName(fl), want[fl.Name()])
		}
		_ = i
	}
	if !slices.Equal(names, header) {
		t.Fatalf("Parquet columns %v, CSV header %v", names, header)
	}
	if f.NumRows() != int64(len(recs)) {
		t.Fatalf("Parquet holds %d rows, CSV %d", f.NumRows(), len(recs))
	}
	for _, rg := range f.RowGroups() {
		if rg.NumRows() > 64 {
			t.Errorf("row group of %d rows, configured 64", rg.NumRows())
		}
	}
	if cc := f.Metadata().RowGroups[0].Columns[0].MetaData.Codec; cc != format.Zstd {
		t.Errorf("codec %v, want ZSTD", cc)
	}
	r := parquet.NewReader(f)
	defer r.Close()
	rows := make([]parquet.Row, 1)
	for i := 0; ; i++ {
		n, err := r.ReadRows(rows)
		if n == 0 {
			if i != len(recs) {
				t.Fatalf("read %d Parquet rows, want %d (%v)", i, len(recs), err)
			}
			break
		}
		row := rows[0]
		for j, fl := range fields {
			got := fromParquet(t, fl, row[j])
			c := recs[i][j]
			wantText := c.Value
			if c.Null {
				wantText = tablecsv.NullToken
			}
			if got == wantText || (!c.Null && sameInstant(c.Value, got)) {
				continue
			}
			if c.Null != row[j].IsNull() || got != wantText {
				t.Errorf("row %d column %s: Parquet %q, CSV %q", i, fl.Name(), got, wantText)
			}
		}
	}
}

func TestTypesCSVGoldenAndParquetTwin(t *testing.T) {
	h := newHarness(t)
	h.exec(typesTable)
	h.exec(`INSERT INTO types VALUES
	 (1, NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL, '', '2029-01-01 00:00:00', NULL),
	 (2, -128,0,-32768,0,-8388608,-2147483648,0,-9223372036854775808,0, 1901,0,b'0000000000', -3.5,-1e-300,
	  -999.99,-999999999999999,-99999999999999.9999,-99999999999999999999.9999999999,
	  '1000-01-01','1000-01-01 00:00:00','1000-01-01 00:00:00.000','1000-01-01 00:00:00.000000','1970-01-01 00:00:01.000000',
	  '-838:59:59','','','',  'a','', '[]', '', '', '\\N', '2029-01-01 00:00:00.000001', NULL),
	 (3, 127,255,32767,65535,8388607,2147483647,4294967295,9223372036854775807,18446744073709551615, 2155,1,b'1111111111', 3.4e38,1.7976931348623157e308,
	  999.99,999999999999999,99999999999999.9999,99999999999999999999.9999999999,
	  '9999-12-31','9999-12-31 23:59:59','9999-12-31 23:59:59.999','9999-12-31 23:59:59.999999','2038-01-19 03:14:07.999999',
	  '838:59:59','abc','a,b "q" \\N','line1\nline2\r\nend','b c','x,y','{"k": [1, "v"]}', X'00FF10', X'DEADBEEF', 'ü✓配', '2029-01-01 00:00:00', '2029-06-01 12:00:00.5'),
	 (18446744073709551615, 0,1,2,3,4,5,6,7,8, 2000,1,b'101', 0.1,0.1, 0.05,0,0.0001,-0.0000000001,
	  '2024-02-29','2024-02-29 12:34:56','2024-02-29 12:34:56.789','2024-02-29 12:34:56.789012','2024-02-29 12:34:56.789012',
	  '12:00:00','\\N','\\N','=1+1','a','y','null', NULL, '', 'x', '2029-01-02 00:00:00', NULL)`)
	h.advance(time.Hour)
	res := h.run(h.exporter(0, 2), specsOf("types")...)
	tr := res.Tables[0]
	if tr.Rows != 4 || len(tr.Files) != 2 {
		t.Fatalf("%+v", tr)
	}
	csv := h.get(tr.Files[0])
	want := `id,ti,tiu,si,siu,mi,i,iu,bi,biu,yr,flag,bits,f,d,d52,d150,d184,d3010,dt,t0,t3,t6,ts,tm,c,vc,tx,en,st,js,bin,bl,req,createdDate,modifiedDate
1,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,\N,,2029-01-01T00:00:00.000000Z,\N
2,-128,0,-32768,0,-8388608,-2147483648,0,-9223372036854775808,0,1901,0,0,-3.5,-1e-300,-999.99,-999999999999999,-99999999999999.9999,-99999999999999999999.9999999999,1000-01-01,1000-01-01T00:00:00Z,1000-01-01T00:00:00.000Z,1000-01-01T00:00:00.000000Z,1970-01-01T00:00:01.000000Z,-838:59:59,,,,a,,[],,,"\N",2029-01-01T00:00:00.000001Z,\N
3,127,255,32767,65535,8388607,2147483647,4294967295,9223372036854775807,18446744073709551615,2155,1,1023,3.4e+38,1.7976931348623157e+308,999.99,999999999999999,99999999999999.9999,99999999999999999999.9999999999,9999-12-31,9999-12-31T23:59:59Z,9999-12-31T23:59:59.999Z,9999-12-31T23:59:59.999999Z,2038-01-19T03:14:07.999999Z,838:59:59,abc,"a,b ""q"" \N","line1
line2` + "\r" + `
end",b c,"x,y","{""k"": [1, ""v""]}",AP8Q,3q2+7w==,ü✓配,2029-01-01T00:00:00.000000Z,2029-06-01T12:00:00.500000Z
18446744073709551615,0,1,2,3,4,5,6,7,8,2000,1,5,0.1,0.1,0.05,0,0.0001,-0.0000000001,2024-02-29,2024-02-29T12:34:56Z,2024-02-29T12:34:56.789Z,2024-02-29T12:34:56.789012Z,2024-02-29T12:34:56.789012Z,12:00:00,"\N","\N",=1+1,a,y,null,\N,,x,2029-01-02T00:00:00.000000Z,\N
`
	if string(csv) != want {
		t.Errorf("CSV =\n%s\nwant\n%s", csv, want)
	}
	checkParquetEqualsCSV(t, h.get(tr.Files[1]), csv, wantTypes)
}

// The food tables' Parquet files equal their CSV twins too.
func TestFoodParquetEqualsCSV(t *testing.T) {
	h := newHarness(t)
	seedFood(t, h, 3)
	h.advance(24 * 365 * time.Hour)
	res := h.run(h.exporter(0, 9), specsOf(foodTables()...)...)
	for _, tr := range res.Tables {
		checkParquetEqualsCSV(t, h.get(tr.Files[1]), h.get(tr.Files[0]), nil)
	}
}

// Rows of megabytes end batches and row groups early: memory stays
// bounded by bytes, not only by row counts.
func TestLargeValuesBoundRowGroups(t *testing.T) {
	h := newHarness(t)
	defer func(old int64) { maxRowGroupBytes = old }(maxRowGroupBytes)
	maxRowGroupBytes = 8 << 20
	h.exec("CREATE TABLE docs (id INT PRIMARY KEY, body LONGTEXT NOT NULL, createdDate DATETIME(6) NOT NULL, modifiedDate DATETIME(6) NULL)")
	h.exec("INSERT INTO docs SELECT seq, CONCAT(seq, REPEAT('lorem ipsum ', 50000)), ?, NULL FROM seq_1_to_40", dt6(h.now().Add(-time.Hour)))
	e := h.exporter(0, 1000)
	e.RowGroupRows = 100_000
	tr := h.run(e, specsOf("docs")...).Tables[0]
	if tr.Rows != 40 || tr.CSVBytes < 20e6 {
		t.Fatalf("%+v", tr)
	}
	pq := h.get(tr.Files[1])
	f, err := parquet.OpenFile(bytes.NewReader(pq), int64(len(pq)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.RowGroups()); n < 2 {
		t.Errorf("%d row groups for 24 MB of text, want it split by size", n)
	}
	h.checkReplay("docs")
}
