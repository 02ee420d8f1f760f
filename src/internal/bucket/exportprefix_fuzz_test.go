package bucket

import (
	"strings"
	"testing"
)

// FuzzValidateExportPrefix: an EXPORT_PREFIX it accepts keeps every export
// key (the watermark, data files, part files) out of the areas that trigger
// the pipeline's functions, and out of "." and ".." segments.
func FuzzValidateExportPrefix(f *testing.F) {
	for _, s := range []string{"exports/", "analytics/food/", "raw/", "raw", "processed/x/", "./", "a/../b/", "/exports/", "", "exports", "rawdata/", "a//b/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidateExportPrefix(p) != nil {
			return
		}
		keys := []string{WatermarkKey(p, "characters"), ExportKey(p, "characters", CSV, ExportStem("characters", "20240102_030405", 0)),
			ExportKey(p, "characters", Parquet, ExportPartStem("characters", "20240102_030405", 7))}
		for _, key := range keys {
			for _, r := range reserved {
				if strings.HasPrefix(key, r) {
					t.Fatalf("prefix %q accepted: export key %q is under %s", p, key, r)
				}
			}
		}
		for _, seg := range strings.Split(p, "/")[:strings.Count(p, "/")] {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("prefix %q accepted with segment %q", p, seg)
			}
		}
	})
}
