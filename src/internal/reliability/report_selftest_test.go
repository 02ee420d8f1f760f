package reliability

import (
	"bytes"
	"strings"
	"testing"
)

func TestTablePrintsEveryCaseAndCountsFailures(t *testing.T) {
	saved := report.rows
	report.rows = []*caseRow{
		{name: "a", done: "did a", checked: "checked a", result: "nothing lost"},
		{name: "b", done: "did b", checked: "checked b", notes: []string{"3 rows"}, result: "FAILED"},
		{name: "c", done: "did c", checked: "checked c"},
	}
	t.Cleanup(func() { report.rows = saved })
	var buf bytes.Buffer
	if n := printTable(&buf); n != 2 {
		t.Errorf("failed = %d, want 2 (one FAILED, one not finished)", n)
	}
	out := buf.String()
	for _, want := range []string{"CASE", "did a", "checked b (3 rows)", "not finished", "3 cases, 2 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
