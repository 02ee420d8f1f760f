package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestGolden")

// fetchedAt is the fetch time every golden test uses.
var fetchedAt = time.Date(2026, 11, 22, 6, 0, 3, 512_000_000, time.UTC)

// TestGolden transforms each testdata/<case>.json (generated, API-shaped
// data) and compares every output with testdata/<case>.<output>.golden.*:
// the tables' CSVs, the rejected lines and the report. The cases cover each
// input shape of each resource and the API's quirks: unknown origin and
// location (url ""), empty strings, unsorted and repeated references,
// non-ASCII text, mirror hosts, CSV-special text, created with an offset and
// microseconds; plus rejects, a BOM, an empty page and mixed resources.
func TestGolden(t *testing.T) {
	cases := []struct{ name, key string }{
		{"character-page", "raw/character/page-0001.json"},
		{"character-array", "raw/manual/characters array.json"},
		{"character-single", "raw/manual/solo.json"},
		{"location-page", "raw/location/page-0001.json"},
		{"location-array", "raw/manual/locations.json"},
		{"location-single", "raw/location/50.json"},
		{"episode-page", "raw/episode/page-0001.json"},
		{"episode-array", "raw/manual/episodes.json"},
		{"episode-single", "raw/manual/episode 70.json"},
		{"character-rejects", "raw/character/rejects.json"},
		{"episode-rejects", "raw/episode/rejects.json"},
		{"location-rejects", "raw/location/rejects.json"},
		{"mixed-resources", "raw/character/mixed.json"},
		{"bom", "raw/location/bom.json"},
		{"empty-page", "raw/episode/page-0009.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			sink := memSink{}
			rep, err := Transform(context.Background(), tc.key, fetchedAt, bytes.NewReader(in), sink)
			if err != nil {
				t.Fatalf("Transform: %v", err)
			}
			if rep.Bytes != int64(len(in)) {
				t.Errorf("report says %d bytes read, the object has %d", rep.Bytes, len(in))
			}
			got := map[string][]byte{}
			for name, b := range sink {
				if name == Rejected {
					got[tc.name+".rejected.golden.jsonl"] = b.Bytes()
				} else {
					got[tc.name+"."+name+".golden.csv"] = b.Bytes()
					readCSV(t, b.String(), name) // the header is the contract's
				}
			}
			rj, _ := json.MarshalIndent(rep, "", "  ")
			got[tc.name+".report.golden.json"] = append(rj, '\n')
			if *update {
				old, _ := filepath.Glob(filepath.Join("testdata", tc.name+".*.golden.*"))
				for _, f := range old {
					os.Remove(f)
				}
				for name, b := range got {
					if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			files, _ := filepath.Glob(filepath.Join("testdata", tc.name+".*.golden.*"))
			var want []string
			for _, f := range files {
				want = append(want, filepath.Base(f))
			}
			var names []string
			for name := range got {
				names = append(names, name)
			}
			slices.Sort(names)
			if !slices.Equal(names, want) {
				t.Fatalf("outputs %v, golden files %v", names, want)
			}
			for _, name := range names {
				w, err := os.ReadFile(filepath.Join("testdata", name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[name], w) {
					t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got[name], w)
				}
			}
			// Same input, same bytes.
			again := memSink{}
			if _, err := Transform(context.Background(), tc.key, fetchedAt, bytes.NewReader(in), again); err != nil {
				t.Fatal(err)
			}
			for name, b := range sink {
				if !bytes.Equal(b.Bytes(), again[name].Bytes()) {
					t.Errorf("%s: a second run wrote other bytes", name)
				}
			}
			if strings.Contains(tc.name, "page") && rep.Shape != Page || strings.HasSuffix(tc.name, "-array") && rep.Shape != Array ||
				strings.HasSuffix(tc.name, "-single") && rep.Shape != Object {
				t.Errorf("shape %q", rep.Shape)
			}
		})
	}
}
