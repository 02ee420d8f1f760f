package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dataeng/rickmorty-pipeline/src/internal/testenv"
	"github.com/dataeng/rickmorty-pipeline/src/internal/warehouse"
)

// runPipeline runs `pipeline run` with args and decodes its JSON summary.
func runPipeline(t *testing.T, wantCode int, args ...string) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"run", "--json", "--progress", "off"}, args...), &stdout, &stderr)
	if code != wantCode {
		t.Fatalf("pipeline run %v: exit %d, want %d\nstderr: %s\nstdout: %.2000s", args, code, wantCode, stderr.String(), stdout.String())
	}
	var res runResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout.String())
	}
	return res
}

// exportedRows reads every exported CSV of the data dir: per table, its rows
// without the columns that hold the time of the run (sorted, as text).
func exportedRows(t *testing.T, dataDir string) map[string][]string {
	t.Helper()
	volatile := map[string]bool{"fetched_at": true, "createdDate": true, "modifiedDate": true}
	out := map[string][]string{}
	root := filepath.Join(dataDir, "s3", localBucket, "exports")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".csv") {
			return err
		}
		table := strings.Split(strings.TrimPrefix(p, root+string(filepath.Separator)), string(filepath.Separator))[0]
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil {
			return err
		}
		for _, rec := range recs[1:] {
			var keep []string
			for i, v := range rec {
				if !volatile[recs[0][i]] {
					keep = append(keep, v)
				}
			}
			out[table] = append(out[table], strings.Join(keep, "\x1f"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rows := range out {
		slices.Sort(rows)
	}
	return out
}

// `pipeline run --offline` runs the whole chain on generated data, on the
// embedded engine and on MariaDB, with the same rows and the same exports;
// a second run on unchanged data does nothing downstream.
func TestRunOfflineEmbeddedAndMariaDB(t *testing.T) {
	_, dsn := testenv.MySQL(t)
	embeddedDir, serverDir := t.TempDir(), t.TempDir()
	// Smaller than the default 826/126/51 (checked by hand, see the README):
	// the embedded engine is slow under -race.
	size := []string{"--offline", "--characters", "150", "--locations", "45", "--episodes", "21"}
	embedded := runPipeline(t, 0, append(size, "--data-dir", embeddedDir, "--mysql-dsn", "")...)
	server := runPipeline(t, 0, append(size, "--data-dir", serverDir, "--mysql-dsn", dsn)...)

	want := map[string]int64{"characters": 150, "locations": 45, "episodes": 21}
	pages := 8 + 3 + 2
	for _, res := range []runResult{embedded, server} {
		if res.Extract == nil || res.Extract.Written != pages || res.Objects["raw"] != pages {
			t.Errorf("%s: extract %+v, raw objects %d; want the %d pages", res.Database, res.Extract, res.Objects["raw"], pages)
		}
		if res.Transform["transformed"] != pages || res.Load["loaded"] != res.Objects["processed"] || res.Objects["processed"] == 0 {
			t.Errorf("%s: transform %v, load %v, objects %v", res.Database, res.Transform, res.Load, res.Objects)
		}
		for table, n := range want {
			if got := res.Rows[table]; got.Total != n || got.Exported != n {
				t.Errorf("%s: %s %+v, want %d rows loaded and exported", res.Database, table, got, n)
			}
		}
		if links := res.Rows["character_episodes"]; links.Total == 0 || links.Exported != links.Total {
			t.Errorf("%s: character_episodes %+v", res.Database, links)
		}
		if len(res.Failures) != 0 || len(res.Problems) != 0 {
			t.Errorf("%s: failures %v, problems %v", res.Database, res.Failures, res.Problems)
		}
		checkReport(t, res)
	}
	if embedded.Rows["character_episodes"].Total != server.Rows["character_episodes"].Total {
		t.Errorf("links: embedded %+v, MariaDB %+v", embedded.Rows["character_episodes"], server.Rows["character_episodes"])
	}
	a, b := exportedRows(t, embeddedDir), exportedRows(t, serverDir)
	for _, tb := range warehouse.Tables() {
		if len(a[tb.Name]) == 0 || !slices.Equal(a[tb.Name], b[tb.Name]) {
			t.Errorf("exported %s differ: embedded %d rows, MariaDB %d rows", tb.Name, len(a[tb.Name]), len(b[tb.Name]))
		}
	}

	again := runPipeline(t, 0, append(size, "--data-dir", embeddedDir, "--mysql-dsn", "")...)
	if again.Report == embedded.Report {
		t.Errorf("the second run wrote over the first one's report %s", embedded.Report)
	}
	checkReport(t, again)
	if !again.Nothing || again.Extract.Unchanged != pages || again.Objects["raw"] != 0 || again.Objects["processed"] != 0 {
		t.Errorf("second run did downstream work: nothing changed %v, extract %+v, objects %v", again.Nothing, again.Extract, again.Objects)
	}
	for table, r := range again.Rows {
		if r.Exported != 0 || r.Total != embedded.Rows[table].Total {
			t.Errorf("second run: %s %+v", table, r)
		}
	}
}

// checkReport checks that the run left its report under <data-dir>/reports/
// with the run's row counts.
func checkReport(t *testing.T, res runResult) {
	t.Helper()
	if !filepath.IsAbs(res.Report) || filepath.Base(filepath.Dir(res.Report)) != "reports" || !strings.HasPrefix(filepath.Base(res.Report), "run-") || filepath.Ext(res.Report) != ".html" {
		t.Errorf("report path %q, want <data-dir>/reports/run-<time>.html", res.Report)
		return
	}
	b, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	for table, r := range res.Rows {
		want := fmt.Sprintf(`<tr data-table="%s"><td>%s</td><td class="n" data-field="transformed">%d</td><td class="n" data-field="loaded">%d</td><td class="n" data-field="total">%d</td><td class="n" data-field="exported">%d</td></tr>`,
			table, table, r.Transformed, r.Loaded, r.Total, r.Exported)
		if !strings.Contains(string(b), want) {
			t.Errorf("report %s lacks the row of %s: %s", res.Report, table, want)
		}
	}
}

// An --api-url given explicitly must answer: no silent fallback.
func TestRunUnreachableExplicitAPI(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"run", "--data-dir", t.TempDir(), "--api-url", "http://127.0.0.1:1/api", "--progress", "off"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "unreachable") || !strings.Contains(stderr.String(), "--offline") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
