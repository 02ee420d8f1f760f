package bucket

import (
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		raw, processed, rejected, quarantine string
	}{
		{"raw/character/page-0001.json", "processed/characters/character/page-0001.csv", "rejected/character/page-0001.jsonl", "quarantine/raw/character/page-0001.json"},
		{"raw/manual/rick and morty+1 100%/ζ.json", "processed/characters/manual/rick and morty+1 100%/ζ.csv", "rejected/manual/rick and morty+1 100%/ζ.jsonl", "quarantine/raw/manual/rick and morty+1 100%/ζ.json"},
		{"raw/episode/x.JSON", "processed/characters/episode/x.JSON.csv", "rejected/episode/x.JSON.jsonl", "quarantine/raw/episode/x.JSON"},
		{"raw/location", "processed/characters/location.csv", "rejected/location.jsonl", "quarantine/raw/location"},
	} {
		if got := ProcessedKey("characters", tc.raw); got != tc.processed {
			t.Errorf("ProcessedKey(%q) = %q, want %q", tc.raw, got, tc.processed)
		}
		if got := RejectedKey(tc.raw); got != tc.rejected {
			t.Errorf("RejectedKey(%q) = %q, want %q", tc.raw, got, tc.rejected)
		}
		if got := QuarantineKey(tc.raw); got != tc.quarantine {
			t.Errorf("QuarantineKey(%q) = %q, want %q", tc.raw, got, tc.quarantine)
		}
		if got := ReportKey(tc.raw); got != tc.quarantine+".error.json" {
			t.Errorf("ReportKey(%q) = %q", tc.raw, got)
		}
	}
	if got := QuarantineKey("processed/characters/p.csv"); got != "quarantine/processed/characters/p.csv" {
		t.Errorf("a processed key quarantines at %q", got)
	}
	if table, ok := ProcessedTable("processed/characters/character/page-0001.csv"); !ok || table != "characters" {
		t.Errorf("ProcessedTable = %q, %v", table, ok)
	}
	if _, ok := ProcessedTable("processed/characters"); ok {
		t.Error("a key with no folder under processed/ names a table")
	}
	if res, ok := RawResource("raw/character/page-0001.json"); !ok || res != "character" {
		t.Errorf("RawResource = %q, %v", res, ok)
	}
	if k := PageKey("character", 7); k != "raw/character/page-0007.json" {
		t.Errorf("PageKey = %q", k)
	}
	if k := PageKey("episode", 12345); k != "raw/episode/page-12345.json" {
		t.Errorf("PageKey = %q", k)
	}
	if k := WatermarkKey("exports/", "orders"); k != "exports/orders/csv/last_extract.txt" {
		t.Errorf("WatermarkKey = %q", k)
	}
	if k := ExportKey("exports/", "orders", Parquet, ExportPartStem("orders", "20240506_070809", 3)); k != "exports/orders/parquet/orders_data_20240506_070809_part-0003.parquet" {
		t.Errorf("ExportKey = %q", k)
	}
}

// A key too long for its quarantine copy and report goes under long-keys/,
// named by its hash, within S3's limit.
func TestLongKeys(t *testing.T) {
	longest := "raw/" + strings.Repeat("x", MaxKeyBytes-len("raw/")-5) + ".json"
	q := QuarantineKey(longest)
	if !strings.HasPrefix(q, QuarantinePrefix+"long-keys/") || !strings.HasSuffix(q, ".json") || len(ReportKey(longest)) > MaxKeyBytes {
		t.Errorf("the longest raw key quarantines at %q", q)
	}
	key := "raw/character/" + strings.Repeat("k", 1000-len("raw/character/")) + ".json"
	if err := CheckOutputKeys(key, []string{"characters", "character_episodes"}); err == nil || !strings.Contains(err.Error(), "over S3's 1024") {
		t.Errorf("CheckOutputKeys of a %d-byte key: %v", len(key), err)
	}
	if err := CheckOutputKeys("raw/character/page-0001.json", []string{"characters"}); err != nil {
		t.Error(err)
	}
}

func TestValidateExportPrefix(t *testing.T) {
	for p, ok := range map[string]bool{
		"exports/": true, "warehouse/exports/": true, "": false, "exports": false, "/exports/": false, "a//b/": false,
		"../x/": false, "raw/": false, "raw/exports/": false, "processed/x/": false, "quarantine/x/": false, "manifests/": false, "r/": true,
	} {
		if err := ValidateExportPrefix(p); (err == nil) != ok {
			t.Errorf("ValidateExportPrefix(%q) = %v", p, err)
		}
	}
}
