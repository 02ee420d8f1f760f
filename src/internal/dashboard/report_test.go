package dashboard_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/dashboard"
	"github.com/dataeng/rickmorty-pipeline/src/internal/export"
	"github.com/dataeng/rickmorty-pipeline/src/internal/localrun"
)

func at(ms int) time.Time {
	return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
}

// The report holds what it is given as text, however hostile; it loads
// nothing and runs nothing.
func TestReportEscapesEverything(t *testing.T) {
	evil := `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
	run := dashboard.Run{
		Started: at(0), Finished: at(3000), Source: "fake API " + evil, Bucket: "b", Folder: "/tmp/" + evil, Database: "db",
		Failures: []string{"export: " + evil},
		Stages:   []dashboard.StageRow{{Stage: "transform", Seconds: 1.5, In: "3 raw objects", Out: evil}},
		Tables:   []dashboard.TableRows{{Table: "characters", Transformed: 20, Loaded: 20, Total: 20, Exported: 20}},
		Invocations: []localrun.Invocation{
			{Function: "TransformFunction", Start: at(0), End: at(100), Keys: []string{"raw/character/" + evil + ".json"}, Attempt: 1, Messages: 1},
		},
		Problems: []dashboard.Problem{{Kind: dashboard.Quarantined, Key: "quarantine/raw/" + evil, Source: "raw/" + evil, Stage: "transform", Reason: evil}},
		Exports:  []dashboard.ExportFile{{Table: "characters", Key: "exports/characters/csv/" + evil + ".csv", Format: "csv", Rows: 20}},
	}
	var buf bytes.Buffer
	if err := dashboard.WriteReport(&buf, run); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, bad := range []string{"<img", "<script", "onerror=\"", "src=\"http", "href=\"http", "@import", "url("} {
		if strings.Contains(html, bad) {
			t.Errorf("the report holds %q: markup or a network load", bad)
		}
	}
	if n := strings.Count(html, "&lt;img src=x onerror="); n != 9 {
		t.Errorf("the hostile text appears escaped %d times, want it in each of the 9 places it was given", n)
	}
	if !strings.Contains(html, `content="default-src 'none'; style-src 'unsafe-inline'`) {
		t.Error("no Content-Security-Policy forbidding scripts and loads")
	}
}

// The timeline puts overlapping invocations of a function on separate
// lanes, marks retries and redeliveries, and counts them.
func TestReportTimeline(t *testing.T) {
	invs := []localrun.Invocation{
		{Function: "ExtractFunction", Start: at(0), End: at(500), Attempt: 1, Messages: 1},
		{Function: "TransformFunction", Start: at(100), End: at(300), Keys: []string{"raw/a.json"}, Attempt: 1, Messages: 1, Failed: 1, Error: "S3 unavailable"},
		{Function: "TransformFunction", Start: at(150), End: at(250), Keys: []string{"raw/b.json"}, Attempt: 1, Messages: 1},
		{Function: "TransformFunction", Start: at(200), End: at(400), Keys: []string{"raw/c.json"}, Attempt: 1, Messages: 1},
		{Function: "TransformFunction", Start: at(1300), End: at(1400), Keys: []string{"raw/a.json"}, Attempt: 2, Redelivered: 1, Messages: 1},
		{Function: "LoadFunction", Queue: "LoadQueue", Start: at(600), End: at(900), Keys: []string{"processed/x/a.csv", "processed/x/b.csv"}, Attempt: 3, Redelivered: 1, Messages: 2},
		{Function: "ExportFunction", Start: at(2000), End: at(2100), Attempt: 1, Messages: 1},
	}
	var buf bytes.Buffer
	if err := dashboard.WriteReport(&buf, dashboard.Run{Started: at(0), Finished: at(2100), Invocations: invs}); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	if n := strings.Count(html, `<rect class="bar `); n != len(invs) {
		t.Errorf("%d bars, want one per invocation (%d)", n, len(invs))
	}
	if n := strings.Count(html, `<rect class="bar failed"`); n != 1 {
		t.Errorf("%d failed bars, want 1", n)
	}
	if n := strings.Count(html, `<path class="mark"`); n != 2 {
		t.Errorf("%d marks, want the transform retry and the load redelivery", n)
	}
	// Transform: three overlapping invocations, so three lanes (y = 24, 42, 60 + bar offset).
	ys := map[string]bool{}
	for _, m := range regexp.MustCompile(`<rect class="bar [a-z]+" x="[0-9.]+" y="([0-9.]+)"`).FindAllStringSubmatch(html, -1) {
		ys[m[1]] = true
	}
	if len(ys) != 1+3+1+1 {
		t.Errorf("lanes at %v: want 1 for Extract, 3 for Transform, 1 for Load, 1 for Export", ys)
	}
	for fn, want := range map[string]string{
		"TransformFunction": `data-field="invocations">4</td><td class="n" data-field="messages">4</td><td class="n" data-field="retried">1</td><td class="n" data-field="redelivered">1</td><td class="n" data-field="failed">1</td>`,
		"LoadFunction":      `data-field="invocations">1</td><td class="n" data-field="messages">2</td><td class="n" data-field="retried">1</td><td class="n" data-field="redelivered">1</td><td class="n" data-field="failed">0</td>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("%s counts: want %s", fn, want)
		}
	}
	if !strings.Contains(html, "retry (attempt 2)") || !strings.Contains(html, "1 redelivered (receive 3)") || !strings.Contains(html, "processed/x/b.csv") {
		t.Error("the tooltips do not say which invocation was a retry or a redelivery, or of which keys")
	}
}

func TestExportFilesRowCounts(t *testing.T) {
	files := dashboard.ExportFiles(export.Result{Tables: []export.TableResult{
		{Table: "characters", Rows: 826, Files: []string{"exports/characters/csv/c.csv", "exports/characters/parquet/c.parquet"}},
		{Table: "orders", Rows: 10, Files: []string{"exports/orders/csv/o_part-0001.csv", "exports/orders/csv/o_part-0002.csv", "exports/orders/parquet/o.parquet"}},
		{Table: "episodes", Rows: 0},
	}})
	want := []dashboard.ExportFile{
		{Table: "characters", Key: "exports/characters/csv/c.csv", Format: "csv", Rows: 826},
		{Table: "characters", Key: "exports/characters/parquet/c.parquet", Format: "parquet", Rows: 826},
		{Table: "orders", Key: "exports/orders/csv/o_part-0001.csv", Format: "csv", Rows: -1},
		{Table: "orders", Key: "exports/orders/csv/o_part-0002.csv", Format: "csv", Rows: -1},
		{Table: "orders", Key: "exports/orders/parquet/o.parquet", Format: "parquet", Rows: 10},
	}
	if len(files) != len(want) {
		t.Fatalf("files = %+v", files)
	}
	for i := range want {
		if files[i] != want[i] {
			t.Errorf("file %d = %+v, want %+v", i, files[i], want[i])
		}
	}
}
