package transform

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// memSink keeps each output in memory.
type memSink map[string]*bytes.Buffer

func (m memSink) Create(name string) (io.Writer, error) {
	if _, ok := m[name]; ok {
		panic("Create called twice for " + name)
	}
	b := new(bytes.Buffer)
	m[name] = b
	return b, nil
}

// readCSV parses a processed CSV, checks its header against the warehouse
// contract and returns its rows.
func readCSV(tb testing.TB, text, table string) [][]tablecsv.Field {
	tb.Helper()
	tab, ok := warehouse.Lookup(table)
	if !ok {
		tb.Fatalf("no table %q", table)
	}
	r := tablecsv.NewReader(strings.NewReader(text))
	r.FieldCount = len(tab.Columns)
	head, err := r.Read()
	if err != nil {
		tb.Fatalf("%s header: %v", table, err)
	}
	for i, f := range head {
		if f.Value != tab.Columns[i].Name {
			tb.Fatalf("%s header column %d = %q, want %q", table, i, f.Value, tab.Columns[i].Name)
		}
	}
	var rows [][]tablecsv.Field
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows
		}
		if err != nil {
			tb.Fatalf("%s: %v", table, err)
		}
		rows = append(rows, append([]tablecsv.Field(nil), rec...))
	}
}
