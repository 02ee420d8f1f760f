package transform

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// TestSnapshot transforms the real API snapshot (../shared/rickandmorty, when
// present) and checks the counts its README states.
func TestSnapshot(t *testing.T) {
	dir := testenv.Snapshot(t)
	fetched := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	outs := map[Resource]memSink{}
	for _, r := range []Resource{Character, Location, Episode} {
		f, err := os.Open(filepath.Join(dir, string(r)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		sink := memSink{}
		rep, err := Transform(context.Background(), "raw/"+string(r)+"/all.json", fetched, f, sink)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if rep.Rejected != 0 {
			t.Errorf("%s: %d rejected:\n%s", r, rep.Rejected, sink[Rejected])
		}
		if rep.Resource != r || rep.ResourceFrom != "url" || rep.Shape != Array {
			t.Errorf("%s: report %+v", r, rep)
		}
		outs[r] = sink
	}
	rows := func(r Resource, table string) [][]tablecsv.Field { return readCSV(t, outs[r][table].String(), table) }
	for _, tc := range []struct {
		r     Resource
		table string
		want  int
	}{
		{Character, warehouse.Characters, 826}, {Location, warehouse.Locations, 126}, {Episode, warehouse.Episodes, 51},
		{Character, warehouse.CharacterEpisodes, 1267}, {Episode, warehouse.CharacterEpisodes, 1266},
	} {
		if got := len(rows(tc.r, tc.table)); got != tc.want {
			t.Errorf("%s from %s: %d rows, want %d", tc.table, tc.r, got, tc.want)
		}
	}
	links := map[string]bool{}
	for _, r := range []Resource{Character, Episode} {
		for _, row := range rows(r, warehouse.CharacterEpisodes) {
			links[row[0].Value+","+row[1].Value] = true
		}
	}
	if len(links) != 1268 {
		t.Errorf("%d distinct character_episodes links, want 1268", len(links))
	}
	nullOrigin, nullLocation, emptyType := 0, 0, 0
	for _, row := range rows(Character, warehouse.Characters) {
		if row[6].Null {
			nullOrigin++
		}
		if row[8].Null {
			nullLocation++
		}
		if row[4].Value == "" && !row[4].Null {
			emptyType++
		}
		if strings.ContainsRune(row[1].Value, '\uFFFD') {
			t.Errorf("replacement character in %q", row[1].Value)
		}
	}
	if nullOrigin != 300 || nullLocation != 21 || emptyType != 401 {
		t.Errorf("NULL origin_id %d (want 300), NULL location_id %d (want 21), empty type %d (want 401)", nullOrigin, nullLocation, emptyType)
	}
}
