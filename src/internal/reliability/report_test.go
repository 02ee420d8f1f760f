package reliability

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
)

// caseRow is one line of the suite's table.
type caseRow struct {
	name    string
	done    string
	checked string
	notes   []string
	result  string
}

// report collects the cases of one run of the suite.
var report struct {
	mu   sync.Mutex
	rows []*caseRow
}

// Row is the handle a case uses to add what it measured to its line.
type Row struct {
	mu  *sync.Mutex
	row *caseRow
}

// Case registers t as a case of the table: done says what the case does to
// the pipeline, checked what it verifies afterwards. The result column is
// filled when t ends: "nothing lost" when it passed, "FAILED" or "skipped:
// reason" otherwise.
func Case(t *testing.T, done, checked string) Row {
	t.Helper()
	r := &caseRow{name: strings.TrimPrefix(t.Name(), "TestReliability"), done: done, checked: checked}
	r.name = strings.TrimLeft(r.name, "_")
	report.mu.Lock()
	report.rows = append(report.rows, r)
	report.mu.Unlock()
	t.Cleanup(func() {
		report.mu.Lock()
		defer report.mu.Unlock()
		switch {
		case t.Failed():
			r.result = "FAILED"
		case t.Skipped():
			r.result = "skipped"
		default:
			r.result = "nothing lost"
		}
	})
	return Row{mu: &report.mu, row: r}
}

// Notef adds a measured fact to the case's "checked" column, such as the
// rows compared or the messages dead-lettered.
func (r Row) Notef(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.row.notes = append(r.row.notes, fmt.Sprintf(format, args...))
}

// Full reports whether the long cases run (`make reliability`); brief ones
// run in every `make test`.
func Full() bool { return os.Getenv("RELIABILITY_FULL") == "1" }

// requireFull skips a long case outside `make reliability`.
func requireFull(t *testing.T) {
	t.Helper()
	if !Full() {
		t.Skip("long case: runs under `make reliability` (RELIABILITY_FULL=1)")
	}
}

// printTable writes the table of every case registered so far.
func printTable(w io.Writer) (failed int) {
	report.mu.Lock()
	defer report.mu.Unlock()
	if len(report.rows) == 0 {
		return 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tDONE\tCHECKED\tRESULT")
	for _, r := range report.rows {
		checked := r.checked
		if len(r.notes) > 0 {
			checked += " (" + strings.Join(r.notes, "; ") + ")"
		}
		if r.result == "" {
			r.result = "not finished"
		}
		if r.result == "FAILED" || r.result == "not finished" {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.done, checked, r.result)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d cases, %d failed\n", len(report.rows), failed)
	return failed
}

func TestMain(m *testing.M) {
	code := m.Run()
	fmt.Println()
	printTable(os.Stdout)
	os.Exit(code)
}
