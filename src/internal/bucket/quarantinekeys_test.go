package bucket

import (
	"strings"
	"testing"
)

func TestQuarantinedCopyPairsReportAndCopy(t *testing.T) {
	long := "raw/character/" + strings.Repeat("x", MaxKeyBytes) + ".json"
	for _, src := range []string{"raw/character/bad page.json", "processed/characters/x.csv", long} {
		copyKey, ok := QuarantinedCopy(ReportKey(src))
		if !ok || copyKey != QuarantineKey(src) {
			t.Errorf("QuarantinedCopy(ReportKey(%.40q)) = %q, %v; want %q", src, copyKey, ok, QuarantineKey(src))
		}
		if got := CopyReportKey(QuarantineKey(src)); got != ReportKey(src) {
			t.Errorf("CopyReportKey(QuarantineKey(%.40q)) = %q, want %q", src, got, ReportKey(src))
		}
	}
	for _, k := range []string{"quarantine/raw/a.json", "raw/a.json.error.json", "quarantine/.error.json", "rejected/a.jsonl"} {
		if c, ok := QuarantinedCopy(k); ok {
			t.Errorf("QuarantinedCopy(%q) = %q, true; want not a report", k, c)
		}
	}
}
