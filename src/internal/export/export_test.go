package export

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fooddb"
)

func TestExportFoodTables(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := fooddb.Food(ctx, h.db, fooddb.Options{Seed: 11}); err != nil {
		t.Fatal(err)
	}
	h.advance(24 * 365 * time.Hour) // well after the seeded rows
	e := h.exporter(30*time.Second, 10)
	res := h.run(e, specsOf(fooddb.Tables()...)...)
	for _, tr := range res.Tables {
		if tr.Status != StatusExported || tr.Rows == 0 || len(tr.Files) != 2 || tr.From != "" || tr.To == "" {
			t.Errorf("%s: %+v", tr.Table, tr)
		}
		if len(tr.Warnings) == 0 || !strings.Contains(tr.Warnings[0], "no index") {
			t.Errorf("%s: want a warning about the missing index, got %v", tr.Table, tr.Warnings)
		}
		h.checkReplay(tr.Table)
		w, ok := h.watermark(tr.Table)
		if !ok || !w.Complete || w.Rows != tr.Rows || w.RunID != res.RunID || len(w.Files) != 2 {
			t.Errorf("%s: watermark %+v", tr.Table, w)
		}
	}

	// Nothing due: nothing written, watermark untouched.
	h.advance(time.Hour)
	before := h.list(h.prefix)
	res = h.run(e, specsOf(fooddb.Tables()...)...)
	for _, tr := range res.Tables {
		if tr.Status != StatusUpToDate || len(tr.Files) != 0 {
			t.Errorf("%s: second run %+v", tr.Table, tr)
		}
	}
	if after := h.list(h.prefix); len(after) != len(before) {
		t.Errorf("a run with nothing due wrote objects: %d -> %d", len(before), len(after))
	}

	// The business goes on; the next export carries exactly the changes.
	if _, err := fooddb.Mutate(ctx, h.db, fooddb.MutateOptions{Seed: 2, Inserts: 4, Updates: 3, At: h.now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Hour)
	res = h.run(e, specsOf(fooddb.Tables()...)...)
	for _, tr := range res.Tables {
		if tr.Status != StatusExported {
			t.Errorf("%s: after mutation %+v", tr.Table, tr)
		}
		if tr.Table != fooddb.Delivery && tr.Rows < 4 {
			t.Errorf("%s: %d rows after 4 inserts and 3 updates", tr.Table, tr.Rows)
		}
		h.checkReplay(tr.Table)
	}
}

func foodTables() []string { return fooddb.Tables() }

func seedFood(t *testing.T, h *harness, scale int) {
	t.Helper()
	if _, err := fooddb.Food(context.Background(), h.db, fooddb.Options{Seed: 5, Scale: scale}); err != nil {
		t.Fatal(err)
	}
}
