package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/fooddb"
	"github.com/dataeng/rickmorty-pipeline/src/internal/samtemplate"
	"github.com/dataeng/rickmorty-pipeline/src/internal/tablecsv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
)

// `pipeline export --range-rows` fans a table out to range workers through
// the local queue; the parts hold every row once and the watermark moves; a
// second run writes nothing.
func TestExportRangeRows(t *testing.T) {
	db, dsn := testenv.MySQL(t)
	ctx := context.Background()
	if _, err := fooddb.Food(ctx, db, fooddb.Options{Seed: 3, Rows: map[string]int{fooddb.Orders: 2500}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{"export", "--data-dir", dir, "--mysql-dsn", dsn, "--tables", fooddb.Orders, "--lag", "0s", "--range-rows", "600", "--range-workers", "3", "--json"}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	var res exportResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if len(res.Tables) != 1 || res.Tables[0].Status != "fanned_out" || res.Ranges != 5 || res.DeadLetters != 0 {
		t.Fatalf("result %+v", res)
	}
	csvDir := filepath.Join(dir, "s3", localBucket, "exports", fooddb.Orders, "csv")
	parts, _ := filepath.Glob(filepath.Join(csvDir, "*_part-*.csv"))
	ids := map[string]int{}
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r := tablecsv.NewReader(bytes.NewReader(b))
		for i := 0; ; i++ {
			f, err := r.Read()
			if err != nil {
				break
			}
			if i == 0 {
				r.FieldCount = len(f)
				continue
			}
			ids[f[0].Value]++
		}
	}
	total := 0
	for _, n := range ids {
		total += n
	}
	if len(parts) != 5 || len(ids) != 2500 || total != 2500 {
		t.Fatalf("%d parts hold %d records of %d ids, want 5 parts, 2500 rows once each", len(parts), total, len(ids))
	}
	wm, err := os.ReadFile(filepath.Join(csvDir, "last_extract.txt"))
	if err != nil || !strings.Contains(string(wm), "rows=2500\n") {
		t.Fatalf("watermark %s %v", wm, err)
	}
	stdout.Reset()
	if code := run(ctx, args, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), `"up_to_date"`) {
		t.Fatalf("second run: exit %d: %s", code, stdout.String())
	}
}

// `pipeline run` and `serve` fan out as the deployed stack does: the
// template's EXPORT_RANGE_ROWS and range workers.
func TestTemplateRanges(t *testing.T) {
	tpl, err := samtemplate.Load("../../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rows, workers := templateRanges(tpl)
	want, _ := tpl.ParameterValue("ExportRangeRows", samtemplate.Stack{})
	if rows <= 0 || want != strconv.Itoa(rows) || workers < 2 {
		t.Errorf("rows %d (parameter %s), workers %d", rows, want, workers)
	}
}
